"""How far each model's autoencoder is from the noise-free truth of held-out simulated studies.

    python docs/one_command/reconstructions.py OUT.png MODEL [MODEL ...] [-n 8] [--regions]

For ``n`` studies simulated at centre_a with the fine-structure benchmark's held-out seeds, each
autoencoder reconstructs the counts (through its rate calibration, scaled to the true total) and the
relative L1 distance to the noise-free expected counts is printed (mean and per study). OUT.png shows
the posterior trunk of the first study: truth, counts, then each model's reconstruction, on one grey
scale. ``--regions`` splits each model's L1 by the truth's pixels: bone is the brightest tenth,
background the pixels below 2 % of the 99th percentile, soft tissue the rest (each share is that
region's absolute error over the study's counts, so the three add up to the L1); the soft-tissue bias
is that region's signed error over its own counts, positive where bone counts spread into the tissue
around them.
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


def regions(recon: np.ndarray, truth: np.ndarray) -> list[float]:
    """Bone, soft-tissue and background shares of the relative L1, then the soft-tissue bias."""
    bone = truth >= np.quantile(truth, 0.9)
    background = truth < 0.02 * np.quantile(truth, 0.99)
    soft = ~bone & ~background
    error = np.abs(recon - truth)
    shares = [error[region].sum() / truth.sum() for region in (bone, soft, background)]
    return [*shares, (recon - truth)[soft].sum() / truth[soft].sum()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", help="PNG to write")
    parser.add_argument("models", nargs="+", help="generator folders or shipped names")
    parser.add_argument("-n", type=int, default=8, help="held-out studies [default: 8]")
    parser.add_argument("--regions", action="store_true", help="split each L1 by region")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    site = load_site("centre_a")
    studies = [simulate_study(site, HELD_OUT_SEED + i) for i in range(args.n)]
    shown = [studies[0].expected[1], studies[0].counts[1]]
    for model in args.models:
        autoencoder = Autoencoder.of(load_pipeline(model))
        errors, splits = [], []
        for study in studies:
            truth = study.expected.astype(np.float64)
            recon = reconstruct(autoencoder, study.counts, float(truth.sum())).astype(np.float64)
            errors.append(float(np.abs(recon - truth).sum() / truth.sum()))
            splits.append(regions(recon, truth))
            if study is studies[0]:
                shown.append(recon[1])
        print(
            f"{model}: relative L1 {np.mean(errors):.4f} (per study {', '.join(f'{e:.3f}' for e in errors)})"
        )
        if args.regions:
            bone, soft, background, bias = np.mean(splits, axis=0)
            print(
                f"    bone {bone:.4f} + soft tissue {soft:.4f} + background {background:.4f};"
                f" soft-tissue bias {bias:+.3f}"
            )
    panel(shown).save(args.out)


if __name__ == "__main__":
    main()
