"""How far each model's autoencoder is from the noise-free truth of held-out simulated studies.

    python docs/one_command/reconstructions.py OUT.png MODEL [MODEL ...] [-n 8]

For ``n`` studies simulated at centre_a with the fine-structure benchmark's held-out seeds, each
autoencoder reconstructs the counts (through its rate calibration, scaled to the true total) and the
relative L1 distance to the noise-free expected counts is printed (mean and per study). OUT.png shows
the posterior trunk of the first study: truth, counts, then each model's reconstruction, on one grey
scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generator_fine_structure import HELD_OUT_SEED, Autoencoder, reconstruct

from synthscan.generator.storage import load_pipeline
from synthscan.simulator import load_site, simulate_study

TRUNK = (slice(150, 550), slice(20, 236))
"""Posterior rows and columns shown: chest to knees of a 1024 x 256 study."""


def panel(images: list[np.ndarray]) -> Image.Image:
    """The trunk of each image side by side, inverted grey scaled to the first's 99.5th percentile."""
    top = np.percentile(images[0][TRUNK], 99.5)
    tiles = [
        np.pad(
            (255 * (1 - np.clip(image[TRUNK] / top, 0, 1))).astype(np.uint8),
            ((0, 0), (0, 6)),
            constant_values=128,
        )
        for image in images
    ]
    grid = np.concatenate(tiles, axis=1)
    return Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("models", nargs="+", help="generator folders or shipped names")
    parser.add_argument("-n", type=int, default=8, help="held-out studies [default: 8]")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    site = load_site("centre_a")
    studies = [simulate_study(site, HELD_OUT_SEED + i) for i in range(args.n)]
    shown = [studies[0].expected[1], studies[0].counts[1]]
    for model in args.models:
        autoencoder = Autoencoder.of(load_pipeline(model))
        errors = []
        for study in studies:
            truth = study.expected.astype(np.float64)
            recon = reconstruct(autoencoder, study.counts, float(truth.sum())).astype(np.float64)
            errors.append(float(np.abs(recon - truth).sum() / truth.sum()))
            if study is studies[0]:
                shown.append(recon[1])
        print(
            f"{model}: relative L1 {np.mean(errors):.4f} (per study {', '.join(f'{e:.3f}' for e in errors)})"
        )
    panel(shown).save(args.out)


if __name__ == "__main__":
    main()
