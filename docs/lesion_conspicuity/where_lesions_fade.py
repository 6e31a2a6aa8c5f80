"""At which noise level a generator's UNet loses the metastases' contrast: an SDEdit probe.

    python docs/lesion_conspicuity/where_lesions_fade.py HELD_OUT DETECTOR [--model default] [--t T ...]

HELD_OUT's metastasis studies are encoded (posterior means), noised to timestep t by the model's own
forward process, denoised back to t = 0 by deterministic DDIM (20 steps over [0, t], the conditional
model under each study's own condition, no guidance: the samples' lesions hardly move with the scale),
decoded and redrawn as Poisson counts at each study's own counts per view
(``docs/normal_hot_spots/where_ribs_go.py``'s probe, on metastases). Each row: the lesions the
detector finds, their contrast and area, and the AUC that a held-out lesion stands out more
(``evaluation.lesions.conspicuity``, as ``measure.py``). Lesions kept up to a t and lost beyond it say
where the reverse process stops carrying them; lost from the lowest t on, the denoiser itself smooths
them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, conspicuity, count_lesions, score_studies
from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "normal_hot_spots"))
from autoencoder_detectability import reconstructed_counts
from generator_fine_structure import Autoencoder
from where_ribs_go import denoise, probe_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("held_out")
    parser.add_argument("detector")
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("--t", type=int, nargs="+", default=[10, 50, 100, 200, 300, 500, 999])
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    pipeline = load_pipeline(args.model)
    detector = LesionDetector.load(args.detector)
    held = Dataset.open(args.held_out)
    # every metastasis; the autoencoder with its decoder calibration, as samples are decoded
    probe = probe_setup(pipeline, held, n=None, label="metastasis")._replace(ae=Autoencoder.of(pipeline))
    counts, ids, network, ae, scaling, z0, alphas = probe
    records = [r for r in held.records if r.label == "metastasis"]
    real = count_lesions(detector, held, records)
    pixel_area = (detector.config.bin_factor * held.info.pixel_spacing_mm) ** 2

    def row(name: str, latents: torch.Tensor | None) -> None:
        rng = np.random.default_rng(0)
        codes = [None] * len(counts) if latents is None else [z / scaling for z in latents]
        studies = np.stack(
            [reconstructed_counts(ae, c, rng, latent=z) for c, z in zip(counts, codes, strict=True)]
        )
        scored = score_studies(detector, studies, [None] * len(studies), held.info.pixel_spacing_mm)
        seen = conspicuity(real, [s | {"label": "metastasis"} for s in scored], pixel_area)
        side = seen["synthetic"]
        c, a = side["contrast_quartiles"], side["area_mm2_quartiles"]
        print(
            f"| {name} | {side['n_lesions'] / len(records):.1f} | {c[1]:.2f} [{c[0]:.2f}, {c[2]:.2f}] "
            f"| {a[1]:.0f} | {seen['contrast_auc']:.3f} |",
            flush=True,
        )

    print(f"{len(records)} held-out metastasis studies of {args.held_out}; model {args.model or 'default'}")
    print(
        "| probe | lesions per study | contrast, median [quartiles] | area mm², median | AUC held-out > row |"
    )
    print("|---|---|---|---|---|")
    row("autoencoder only (t = 0)", None)
    for t in args.t:
        noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(t))
        noisy = alphas[t].sqrt() * z0 * scaling + (1 - alphas[t]).sqrt() * noise
        snr = float(alphas[t] / (1 - alphas[t]))
        row(f"from t = {t} (SNR {snr:.3g})", denoise(network, noisy, ids, alphas, t))


if __name__ == "__main__":
    main()
