"""The first N held-out metastasis studies of a burden class above N samples of a set, head to thigh.

    python docs/lesion_conspicuity/side_by_side.py OUT.png HELD_OUT SET [--burden 4-10] [-n 3]

Each study as ``synthscan view`` draws it (anterior | posterior, its display window), cut to its upper
half; the sample set's studies are its first N records.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import requested_burden
from synthscan.render import display_image


def strip(dataset: Dataset, records: list) -> np.ndarray:
    """Each study's views (anterior | posterior) cut to their upper half, side by side, grey gaps between
    studies."""
    parts = []
    for record in records:
        counts = dataset.read(record).counts
        half = counts.shape[1] // 2
        views = [display_image(view[:half]) for view in counts]
        parts += [views[0], np.full((half, 2), 255, np.uint8), views[1], np.full((half, 6), 160, np.uint8)]
    return np.concatenate(parts[:-1], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out")
    parser.add_argument("held_out")
    parser.add_argument("set")
    parser.add_argument("--burden", default="4-10")
    parser.add_argument("-n", type=int, default=3)
    args = parser.parse_args()
    held, samples = Dataset.open(args.held_out), Dataset.open(args.set)
    real = [r for r in held.records if r.label == "metastasis" and requested_burden(r) == args.burden]
    rows = [strip(held, real[: args.n]), strip(samples, samples.records[: args.n])]
    gap = np.full((10, rows[0].shape[1]), 255, dtype=np.uint8)
    Image.fromarray(np.concatenate([rows[0], gap, rows[1]])).save(args.out, optimize=True)


if __name__ == "__main__":
    main()
