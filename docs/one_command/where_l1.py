"""Where each autoencoder's distance to the noise-free truth lies: bone, soft tissue or background.

    python docs/one_command/where_l1.py MODEL [MODEL ...] [-n 8]

The relative L1 of ``reconstructions.py`` (the same studies) split by the truth's pixels: bone is the
brightest tenth of the pixels, background the pixels below 2 % of the 99th percentile, soft tissue the
rest. Each share is that region's absolute error over the study's total counts (the three add up to
the relative L1); the soft-tissue bias is the region's signed error over its own counts, positive
where the reconstruction spreads bone counts into the tissue around it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generator_fine_structure import HELD_OUT_SEED, Autoencoder, reconstruct

from synthscan.generator.storage import load_pipeline
from synthscan.simulator import load_site, simulate_study


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", help="generator folders or shipped names")
    parser.add_argument("-n", type=int, default=8, help="held-out studies [default: 8]")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    site = load_site("centre_a")
    studies = [simulate_study(site, HELD_OUT_SEED + i) for i in range(args.n)]
    for model in args.models:
        autoencoder = Autoencoder.of(load_pipeline(model))
        rows = []
        for study in studies:
            truth = study.expected.astype(np.float64)
            recon = reconstruct(autoencoder, study.counts, float(truth.sum())).astype(np.float64)
            bone = truth >= np.quantile(truth, 0.9)
            background = truth < 0.02 * np.quantile(truth, 0.99)
            soft = ~bone & ~background
            error = np.abs(recon - truth)
            rows.append(
                [error[region].sum() / truth.sum() for region in (bone, soft, background)]
                + [(recon - truth)[soft].sum() / truth[soft].sum()]
            )
        bone_l1, soft_l1, background_l1, soft_bias = np.mean(rows, axis=0)
        print(
            f"{model}: relative L1 {bone_l1 + soft_l1 + background_l1:.4f} = bone {bone_l1:.4f}"
            f" + soft tissue {soft_l1:.4f} + background {background_l1:.4f};"
            f" soft-tissue bias {soft_bias:+.3f}"
        )


if __name__ == "__main__":
    main()
