"""At which noise level a generator's UNet draws the normals' false hot spots: an SDEdit probe.

    python docs/normal_hot_spots/where_spots_arise.py HELD_OUT DETECTOR [--model default] [--t T ...]
        [--pure-noise] [--as-sampled]

The probe of ``where_ribs_go.py`` (HELD_OUT's first 40 normal studies encoded, noised to timestep t by
the model's own forward process, denoised back by deterministic DDIM under each study's own condition,
no guidance, decoded and redrawn as Poisson counts in each study's own window and counts per view),
scored by the lesion detector DETECTOR: marks per study at each t. Held-out normals carry their own
marks (injection sites, shoulders; the t = 0 row is the autoencoder alone), so the curve says from which
noise level on the UNet adds spots: at low t, it is the last, fine-detail steps (and the decoder);
only at high t, the spots come with the body it lays out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, score_studies
from synthscan.generator.storage import load_pipeline
from synthscan.generator.transform import AcquisitionWindow, expected_counts, poisson_counts

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoencoder_detectability import reconstructed_counts
from where_ribs_go import denoise, probe_setup


def marks(detector: LesionDetector, studies: list[np.ndarray], spacing: float) -> np.ndarray:
    rows = score_studies(detector, np.stack(studies), [None] * len(studies), spacing)
    return np.array([row["detected"] for row in rows])


def as_sampled(pipeline, latents: torch.Tensor, counts: list[np.ndarray]) -> np.ndarray:
    """Counts from scaled latents as the pipeline finishes a sample: decoded, calibrated, cut to the
    model's acquisition window with drawn margins; each study's own total and posterior/anterior ratio."""
    generators = [torch.Generator().manual_seed(i) for i in range(len(latents))]
    decoded = torch.cat([pipeline.decode_latents(latents[i : i + 8]) for i in range(0, len(latents), 8)])
    totals = torch.tensor([float(c.sum()) for c in counts])
    ratios = torch.tensor([float(c[1].sum() / max(c[0].sum(), 1)) for c in counts])
    margins = torch.stack([torch.rand(2, generator=g) for g in generators])
    window = AcquisitionWindow.from_dict(pipeline.config.get("acquisition_window"))
    rate = expected_counts(
        decoded, totals, pipeline.config.bin_factor, window, margins, ratios, pipeline.calibration
    )
    return poisson_counts(rate, generators)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("held_out")
    parser.add_argument("detector")
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("--t", type=int, nargs="+", default=[50, 100, 200, 300, 500, 700, 850, 999])
    parser.add_argument(
        "--pure-noise",
        action="store_true",
        help="also from t = 999 without the study in it (a sample; the t = 999 row's noise)",
    )
    parser.add_argument(
        "--as-sampled",
        action="store_true",
        help="finish the denoised latents as the pipeline does (calibration, drawn window margins, the "
        "study's own total and view ratio) instead of in the study's own window (the held-out and t = 0 "
        "rows stay as they are)",
    )
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    pipeline = load_pipeline(args.model)
    detector = LesionDetector.load(args.detector)
    dataset = Dataset.open(args.held_out)
    spacing = dataset.info.pixel_spacing_mm
    counts, ids, network, ae, scaling, z0, alphas = probe_setup(pipeline, dataset)
    own = marks(detector, counts, spacing)
    rng = np.random.default_rng(0)
    base = marks(detector, [reconstructed_counts(ae, c, rng) for c in counts], spacing)
    print(f"held-out normals as acquired: {own.mean():.2f} marks per study (n={len(own)})")
    print(f"t 0 (autoencoder only): {base.mean():.2f}")
    for t in args.t + ([-1] if args.pure_noise else []):
        noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(t % 1000))
        noisy = alphas[t].sqrt() * z0 * scaling + (1 - alphas[t]).sqrt() * noise
        if t < 0:  # pure noise: what the study leaks into t = 999 withheld
            t, noisy = 999, noise
        latent = denoise(network, noisy, ids, alphas, t)
        if args.as_sampled:
            studies = list(as_sampled(pipeline, latent, counts))
        else:
            rng = np.random.default_rng(0)
            studies = [
                reconstructed_counts(ae, c, rng, latent=z / scaling)
                for z, c in zip(latent, counts, strict=True)
            ]
        found = marks(detector, studies, spacing)
        snr = float(alphas[t] / (1 - alphas[t]))
        source = "pure noise" if noisy is noise else f"SNR {snr:.3g}"
        print(f"t {t} ({source}): {found.mean():.2f} marks per study", flush=True)


if __name__ == "__main__":
    main()
