"""Trunks of the first studies of a label (normal: posterior) of several datasets, one dataset per row.

    python docs/own_latents_decoder/trunks.py OUT.png DATASET [DATASET ...] [-n 4] [--label L] [--view V]

``--label``/``--view`` pick another label's studies (e.g. amyloidosis) or the anterior view (the heart).
Each study's view in the display window of ``synthscan view`` (``synthscan.render``),
cut to 8-42 % of the body's height (shoulders to the lower ribs; the body's extent as
``docs/normal_hot_spots/where.py`` measures it), native width, resampled to 300 rows; the
dataset's path, as given, above its row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from synthscan.dataset import Dataset
from synthscan.render import display_image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "normal_hot_spots"))
from where import extent

ROWS, GAP, CAPTION = 300, 6, 14


def trunk(view: np.ndarray) -> np.ndarray:
    top, bottom = extent(view.sum(axis=1))
    start = top + int(0.08 * (bottom - top))
    image = display_image(view)[start : start + int(0.34 * (bottom - top))]
    return np.asarray(Image.fromarray(image).resize((image.shape[1], ROWS), Image.Resampling.BILINEAR))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("-n", type=int, default=4)
    parser.add_argument("--label", default="normal")
    parser.add_argument("--view", choices=["anterior", "posterior"], default="posterior")
    args = parser.parse_args()
    view = ("anterior", "posterior").index(args.view)
    rows = []
    for folder in args.datasets:
        dataset = Dataset.open(folder)
        records = [r for r in dataset.records if r.label == args.label][: args.n]
        crops = [trunk(dataset.read(r).counts[view].astype(np.float32)) for r in records]
        gap = np.full((ROWS, GAP), 160, np.uint8)
        strip = np.concatenate([x for c in crops for x in (c, gap)][:-1], axis=1)
        label = Image.new("L", (strip.shape[1], CAPTION), 255)
        ImageDraw.Draw(label).text((2, 1), folder, fill=0, font=ImageFont.load_default())
        rows.append(np.concatenate([np.asarray(label), strip]))
    width = max(r.shape[1] for r in rows)
    sheet = np.full((sum(r.shape[0] + GAP for r in rows) - GAP, width), 160, np.uint8)
    y = 0
    for r in rows:
        sheet[y : y + r.shape[0], : r.shape[1]] = r
        y += r.shape[0] + GAP
    Image.fromarray(sheet).save(args.out, optimize=True)


if __name__ == "__main__":
    main()
