"""Where normal bodies end: median landmark rows of datasets' normal studies, and of an autoencoder's
reconstructions of them.

    python docs/condition_mix/body_landmarks.py DATASET [DATASET ...] [--reconstruct HELD_OUT --model default]

Landmarks as ``score_drivers.py`` measures them (first 120 normal studies of each dataset). With
``--reconstruct``, also HELD_OUT's first 60 normals as acquired and through ``--model``'s autoencoder
(encoded, decoded through its rate calibration, cut to their own rows, Poisson-redrawn at their own
counts: ``benchmarks/autoencoder_detectability.py``): whether the decoder or the diffusion model puts
the feet where they are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from score_drivers import LANDMARKS, landmarks, study_landmarks

from synthscan.dataset import Dataset
from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from autoencoder_detectability import reconstructed_counts
from generator_fine_structure import Autoencoder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*")
    parser.add_argument(
        "--reconstruct", default=None, help="held-out dataset whose normals are reconstructed"
    )
    parser.add_argument(
        "--model", default=None, help="generator whose autoencoder reconstructs [default: default]"
    )
    args = parser.parse_args()
    print("normal studies, median row of | " + " | ".join(LANDMARKS))
    for root in args.datasets:
        dataset = Dataset.open(root)
        print(f"{root} | " + " | ".join(f"{v:g}" for v in landmarks(dataset, dataset.records)))
    if args.reconstruct:
        dataset = Dataset.open(args.reconstruct)
        records = [r for r in dataset.records if r.label == "normal"][:60]
        ae = Autoencoder.of(load_pipeline(args.model, device="cpu"))
        rng = np.random.default_rng(0)
        acquired = [s.counts.astype(np.int32) for s in dataset.iter_studies(records)]
        rebuilt = [reconstructed_counts(ae, c, rng) for c in acquired]
        for name, studies in (("as acquired", acquired), ("reconstructed", rebuilt)):
            rows = np.median([study_landmarks(c) for c in studies], axis=0)
            print(f"{args.reconstruct}, 60 normals {name} | " + " | ".join(f"{v:g}" for v in rows))


if __name__ == "__main__":
    main()
