"""Where do a generator's border artefacts come from? Counts in the border bands, stage by stage.

    python benchmarks/generator_artefacts.py --data TRAINING_DATASET [--model DIR] [-n 12] [--out FILE.json]

For each band (top and bottom 8 rows, outer 4 columns, bottom 200 rows) it reports the counts per
study (median and max over studies), and the share of each view the realism instrument's plain body
mask covers (``body_fraction``: haze around the body raises it), of:

- ``data``: the training (or same-site) studies, the reference: a sample may not exceed its max;
- ``reconstruction``: the autoencoder's expected counts of those studies (encode → decode, no
  diffusion), with the total of each study, upsampled bilinearly as the pipeline does and, to isolate
  the upsampling, by nearest neighbour;
- ``reconstruction_padded``: the same with the model image padded by 64 rows and 16 columns of zeros
  before encoding (the decoder then never sees the image border): isolates the border effects of the
  convolutions' zero padding and of training the autoencoder on row crops;
- ``reconstruction_calibrated``: the reconstruction through the model's decoder rate calibration,
  for a model with one (:mod:`synthscan.generator.calibration`; its samples are drawn through it);
- ``samples_no_window`` and ``samples``: expected counts of ``n`` samples (normal, seeds 0…n-1)
  without and with the acquisition window (:class:`synthscan.generator.transform.AcquisitionWindow`),
  and ``samples_counts``: their Poisson counts with it.

Artefacts present in the reconstruction come from the autoencoder, not from the latent diffusion or
the sampler; bilinear vs nearest shows the upsampling's share; the window removes what lies outside
the acquired rows whatever its cause.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from synthscan.dataset import Dataset
from synthscan.evaluation.realism import simple_body
from synthscan.generator.sampling import SampleRequest
from synthscan.generator.storage import load_pipeline
from synthscan.generator.transform import AcquisitionWindow, expected_counts, mirror_posterior, to_model

BANDS = ("top8", "bottom8", "sides4", "bottom200", "body_fraction")


def band_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Counts per study (B, 2, H, W) in each border band."""
    c = np.asarray(counts, dtype=np.float64)
    return {
        "top8": c[:, :, :8].sum(axis=(1, 2, 3)),
        "bottom8": c[:, :, -8:].sum(axis=(1, 2, 3)),
        "sides4": c[..., :4].sum(axis=(1, 2, 3)) + c[..., -4:].sum(axis=(1, 2, 3)),
        "bottom200": c[:, :, -200:].sum(axis=(1, 2, 3)),
    }


def summary(counts: np.ndarray) -> dict[str, dict[str, float]]:
    """Median and max over studies of each band's counts, and of the body fraction (haze)."""
    bands = band_counts(counts)
    bands["body_fraction"] = np.array([simple_body(view).mean() for study in counts for view in study])
    return {k: {"median": float(np.median(v)), "max": float(v.max())} for k, v in bands.items()}


@torch.no_grad()
def measure(pipeline, dataset: Dataset, n_studies: int, n_samples: int) -> dict[str, dict]:
    f = pipeline.config.bin_factor
    counts = np.stack([s.counts for s in dataset.iter_studies(dataset.records[:n_studies])])
    totals = torch.tensor(counts.reshape(len(counts), -1).sum(axis=1), dtype=torch.float32)
    vae = pipeline.vae
    x, _ = to_model(counts, f)
    decoded = vae.decode(vae.encode(x).latent_dist.mean).sample
    padded = F.pad(x, (16, 16, 64, 64))
    decoded_padded = vae.decode(vae.encode(padded).latent_dist.mean).sample[:, :, 64:-64, 16:-16]
    nearest = F.interpolate(decoded.square(), scale_factor=f, mode="nearest")
    nearest = mirror_posterior(nearest * (totals / nearest.sum(dim=(1, 2, 3)))[:, None, None, None])
    results = {
        "data": summary(counts),
        "reconstruction": summary(expected_counts(decoded, totals, f).numpy()),
        "reconstruction_nearest": summary(nearest.numpy()),
        "reconstruction_padded": summary(expected_counts(decoded_padded, totals, f).numpy()),
    }
    if calibration := pipeline.calibration:
        calibrated = expected_counts(decoded, totals, f, calibration=calibration)
        results["reconstruction_calibrated"] = summary(calibrated.numpy())
    requests = [SampleRequest(f"s{i}", "normal", None, i) for i in range(n_samples)]
    generators = [torch.Generator().manual_seed(r.seed) for r in requests]
    stored = pipeline.config.get("acquisition_window")
    rows = pipeline.matrix[0]
    pipeline.register_to_config(acquisition_window=AcquisitionWindow(rows, rows).to_dict())
    loose = pipeline(["normal"] * n_samples, generator=generators, return_expected=True)
    pipeline.register_to_config(acquisition_window=stored)
    generators = [torch.Generator().manual_seed(r.seed) for r in requests]
    windowed = pipeline(["normal"] * n_samples, generator=generators, return_expected=True)
    results["samples_no_window"] = summary(loose.expected)
    results["samples"] = summary(windowed.expected)
    results["samples_counts"] = summary(windowed.counts)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="training (or same-site) dataset")
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("-n", type=int, default=12, help="studies reconstructed and samples drawn")
    parser.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()
    pipeline = load_pipeline(args.model, device="cpu")
    results = measure(pipeline, Dataset.open(args.data), args.n, args.n)
    print(f"{'stage':<24}" + "".join(f"{band + ' med/max':>22}" for band in BANDS))
    for stage, bands in results.items():
        cells = "".join(f"{bands[b]['median']:>12.4g}/{bands[b]['max']:<9.4g}" for b in BANDS)
        print(f"{stage:<24}{cells}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
