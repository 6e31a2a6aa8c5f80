"""How conspicuous the detected lesions of metastasis studies are: held-out studies, the autoencoder's
reconstructions of them, and sample sets (``evaluation.lesions.conspicuity``, as the fidelity reports
give it).

    python docs/lesion_conspicuity/measure.py HELD_OUT DETECTOR [--model default] [SET ...]

One table row per dataset: lesions detected in its metastasis studies, their peak over the surrounding
bone and area (median [quartiles]), and the AUC that a held-out lesion stands out more than one of the
row's (0.5: as conspicuous). The reconstructions are Poisson counts drawn from the model's autoencoder
(``benchmarks/autoencoder_detectability.py``'s ``reconstructed_counts``, seed 0): what the latent space
keeps, before any diffusion.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from autoencoder_detectability import reconstructed_counts
from generator_fine_structure import Autoencoder

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, conspicuity, count_lesions, score_studies
from synthscan.generator.storage import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("held_out")
    parser.add_argument("detector")
    parser.add_argument("sets", nargs="*")
    parser.add_argument(
        "--model", default="default", help="whose autoencoder reconstructs the held-out studies"
    )
    args = parser.parse_args()
    detector = LesionDetector.load(args.detector)
    held = Dataset.open(args.held_out)
    metastases = [r for r in held.records if r.label == "metastasis"]
    real = count_lesions(detector, held, metastases)
    pixel_area = (detector.config.bin_factor * held.info.pixel_spacing_mm) ** 2

    ae, rng = Autoencoder.of(load_pipeline(args.model)), np.random.default_rng(0)
    rows = {"held-out studies": real}
    with torch.no_grad():
        recon = np.stack([reconstructed_counts(ae, held.read(r).counts, rng) for r in metastases])
    scored = score_studies(detector, recon, [None] * len(recon), held.info.pixel_spacing_mm)
    rows[f"their reconstructions ({args.model}'s autoencoder)"] = [
        r | {"label": "metastasis"} for r in scored
    ]
    for root in args.sets:
        dataset = Dataset.open(root)
        rows[root] = count_lesions(detector, dataset, dataset.records)

    print(
        "| metastasis studies | studies | lesions | contrast, median [quartiles] | area mm², median "
        "| AUC held-out > row |"
    )
    print("|---|---|---|---|---|---|")
    for name, studies in rows.items():
        seen = conspicuity(real, studies, pixel_area)
        side = seen["synthetic"]
        c, a = side["contrast_quartiles"], side["area_mm2_quartiles"]
        n = sum(row["label"] == "metastasis" for row in studies)
        if c is None:
            print(f"| {name} | {n} | 0 | | | |")
            continue
        print(
            f"| {name} | {n} | {side['n_lesions']} | {c[1]:.2f} [{c[0]:.2f}, {c[2]:.2f}] | {a[1]:.0f} "
            f"| {seen['contrast_auc']:.3f} |"
        )


if __name__ == "__main__":
    main()
