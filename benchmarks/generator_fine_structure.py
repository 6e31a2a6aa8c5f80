"""Does the generator keep fine bone structure? Its autoencoder against the truth, its samples against data.

    python benchmarks/generator_fine_structure.py [--model DIR | --autoencoder DIR] [--site centre_a] \
        [-n 8] [--samples 8] [--reference DATASET] [--lesions N [--lesion-detector DIR]] \
        [--out FILE.json] [--png FILE.png]

1. **Reconstruction** of ``n`` held-out studies simulated afresh (seeds 900000…, never trained on);
   first the transform alone (``round_trip_*``: the noise-free expectation binned, then upsampled as
   the pipeline does, no network), then the autoencoder:
   each study's Poisson counts are encoded and decoded by the model's autoencoder, and the decoded
   expected counts are compared with the simulator's *noise-free* expectation of the same study:

   - ``midband_power_ratio``: power at 0.1-0.2 cycles/pixel over power at 0.02-0.05 (ribs, vertebral
     end plates, joint margins live in the first band), reconstruction over truth (1 = kept; above 1
     the autoencoder copies counting noise, as one scored against its own input does);
   - ``edge_sharpness_ratio``: mean gradient magnitude inside the body, reconstruction over truth;
   - ``posterior_over_anterior_ratio``: the reconstruction's posterior/anterior count ratio over the
     truth's (the decoder's split between the views; sampling redraws it for models that store one);
   - ``rib_modulation_post`` and ``vertebral_modulation_post``: the realism instrument's
     noise-corrected measures (:mod:`synthscan.evaluation.realism`) on Poisson counts drawn from the
     reconstruction and from the truth at the same total, reconstruction over truth.

2. **Samples** (``--samples`` normal studies) against ``--reference`` studies (the training data or
   the same site): the same mid-band power ratio on the counts with the Poisson floor subtracted, and
   the two modulations, as medians of each set.

3. **Lesions** (``--lesions N``): the first N held-out simulated metastasis studies, encoded and
   decoded like the others; for every hot lesion the simulator placed (its pixel and diameter in each
   view) the contrast of a disk of its diameter against a ring around it, ``mean(disk) / mean(ring) -
   1``, on the reconstruction's and on the truth's noise-free expected counts:
   ``lesion_contrast_ratio`` is their median ratio over lesions and views (1 = drawn as they are,
   0 = erased). A diffusion model on these latents cannot generate a lesion the decoder cannot draw.
   With ``--lesion-detector DIR`` (:mod:`synthscan.evaluation.lesions`, trained on simulated studies'
   lesion ground truth), also the share of the true lesions it finds in the studies' counts and in
   Poisson counts drawn from their reconstructions: whether a reader-like detector still sees them.

Ratios well below 1 mean the autoencoder smooths what a reader would look for; since the diffusion
model can only generate what the decoder can draw, the reconstruction bounds the samples.
"""

from __future__ import annotations

import argparse
import json
from typing import NamedTuple

import numpy as np
import torch
from diffusers import AutoencoderKL
from scipy import ndimage

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, score_studies, visible_hot_lesions
from synthscan.evaluation.realism import Study, bone_texture
from synthscan.generator.calibration import RateCalibration
from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.storage import load_pipeline
from synthscan.generator.transform import expected_counts, to_model
from synthscan.render import render_grid
from synthscan.simulator import load_site, simulate_study

MID, LOW = (0.1, 0.2), (0.02, 0.05)
HELD_OUT_SEED = 900_000


class Autoencoder(NamedTuple):
    """What the reconstruction measures need: the autoencoder, the model images' bin factor and the
    decoder's rate calibration (a model's, so reconstructions are drawn as its samples are)."""

    vae: AutoencoderKL
    bin_factor: int
    calibration: RateCalibration | None = None

    @classmethod
    def of(cls, pipeline: SynthScanPipeline) -> Autoencoder:
        return cls(pipeline.vae, pipeline.config.bin_factor, pipeline.calibration)


def band_power(view: np.ndarray, band: tuple[float, float], floor: float = 0.0) -> float:
    """Mean power of the mean-subtracted view in a radial frequency band, per count, minus ``floor``.

    Normalised so that Poisson noise alone has power 1 at every frequency (``floor=1`` removes it).
    """
    power = np.abs(np.fft.rfft2(view - view.mean())) ** 2 / max(view.sum(), 1e-9)
    radius = np.hypot(np.fft.fftfreq(view.shape[0])[:, None], np.fft.rfftfreq(view.shape[1])[None, :])
    inside = (radius >= band[0]) & (radius < band[1])
    return float(power[inside].mean() - floor)


def midband_ratio(study: np.ndarray, floor: float = 0.0) -> float:
    """Mid-band over low-band power, both views summed (``floor=1`` for Poisson counts)."""
    mid = sum(band_power(v, MID, floor) for v in study)
    low = sum(band_power(v, LOW, floor) for v in study)
    return mid / low


def edge_sharpness(study: np.ndarray) -> float:
    """Mean gradient magnitude over the body (smoothed counts above 10 % of their 99th percentile)."""
    values = []
    for view in study.astype(np.float64):
        body = ndimage.gaussian_filter(view, 2) > 0.1 * np.percentile(view, 99)
        values.append(np.hypot(*np.gradient(view))[body].mean())
    return float(np.mean(values))


def textures(counts: np.ndarray) -> dict[str, float]:
    texture = bone_texture(Study(counts, counts))
    return {k: texture[k] for k in ("rib_modulation_post", "vertebral_modulation_post")}


@torch.no_grad()
def reconstruct(
    ae: Autoencoder, counts: np.ndarray, total: float, latent: torch.Tensor | None = None
) -> np.ndarray:
    """The autoencoder's expected counts (2, H, W) of one study's ``counts``, scaled to ``total``;
    ``latent`` (unscaled, (C, h, w)): decode it instead of the counts' own code."""
    if latent is None:
        latent = ae.vae.encode(to_model(counts[None], ae.bin_factor)[0]).latent_dist.mean[0]
    decoded = ae.vae.decode(latent[None]).sample
    return expected_counts(decoded, torch.tensor([total]), ae.bin_factor, calibration=ae.calibration)[
        0
    ].numpy()


def reconstruction(ae: Autoencoder, site: str, n: int) -> dict[str, list[float]]:
    config = load_site(site)
    f = ae.bin_factor
    rng = np.random.default_rng(0)
    out: dict[str, list[float]] = {}
    for i in range(n):
        study = simulate_study(config, HELD_OUT_SEED + i)
        total = float(study.expected.sum())
        recon = reconstruct(ae, study.counts, total).astype(np.float64)
        truth = study.expected.astype(np.float64)
        exact, _ = to_model(study.expected[None], f)  # the noise-free image: no network, only the transform
        round_trip = expected_counts(exact, torch.tensor([total]), f)[0].numpy().astype(np.float64)
        row = {
            "round_trip_midband_power_ratio": midband_ratio(round_trip) / midband_ratio(truth),
            "midband_power_ratio": midband_ratio(recon) / midband_ratio(truth),
            "edge_sharpness_ratio": edge_sharpness(recon) / edge_sharpness(truth),
            "posterior_over_anterior_ratio": (recon[1].sum() / recon[0].sum())
            / (truth[1].sum() / truth[0].sum()),
        }
        recon_t, truth_t = textures(rng.poisson(recon)), textures(rng.poisson(truth))
        row |= {k: recon_t[k] / truth_t[k] for k in recon_t}
        for k, v in row.items():
            out.setdefault(k, []).append(float(v))
    return out


def reconstruction_panels(ae: Autoencoder, site: str) -> list[tuple[np.ndarray, str]]:
    """The first held-out study: noise-free truth, its counts, and the autoencoder's expected counts."""
    study = simulate_study(load_site(site), HELD_OUT_SEED)
    recon = reconstruct(ae, study.counts, float(study.expected.sum()))
    return [(study.expected, "noise-free truth"), (study.counts, "counts"), (recon, "autoencoder")]


def lesion_contrast(view: np.ndarray, centre: tuple[float, float], diameter_px: float) -> float:
    """``mean(disk) / mean(ring) - 1`` of a lesion: disk of its diameter, ring from 1.5 to 2.5 radii."""
    rows, cols = np.ogrid[: view.shape[0], : view.shape[1]]
    distance = np.hypot(rows - centre[0], cols - centre[1])
    radius = max(diameter_px / 2, 1.0)
    disk, ring = distance <= radius, (distance >= 1.5 * radius) & (distance <= 2.5 * radius)
    return float(view[disk].mean() / max(view[ring].mean(), 1e-9) - 1)


def metastasis_reconstructions(ae: Autoencoder, site: str, n: int) -> list[tuple]:
    """The first ``n`` held-out simulated metastasis studies with hot lesions, and their reconstructions."""
    config = load_site(site)
    pairs, seed = [], HELD_OUT_SEED
    while len(pairs) < n:
        study, seed = simulate_study(config, seed), seed + 1
        if study.label == "metastasis" and any(x["kind"] == "hot" for x in study.meta["lesions"]):
            pairs.append((study, reconstruct(ae, study.counts, float(study.expected.sum()))))
    return pairs


def lesion_contrast_ratios(pairs: list[tuple]) -> list[float]:
    """Reconstruction over truth contrast of every hot lesion visible in a view."""
    ratios = []
    for study, recon in pairs:
        for lesion in (x for x in study.meta["lesions"] if x["kind"] == "hot"):
            for v, key in enumerate(("pixel_anterior", "pixel_posterior")):
                centre, size = lesion[key], lesion["diameter_mm"] / study.meta["pixel_spacing_mm"]
                truth = lesion_contrast(study.expected[v], centre, size)
                if truth > 0.1:  # visible in this view
                    ratios.append(lesion_contrast(recon[v], centre, size) / truth)
    return ratios


def lesions_detected(detector: LesionDetector, pairs: list[tuple]) -> dict[str, dict[str, float]]:
    """Share of true hot lesions a lesion detector finds in the studies' counts and in Poisson counts of
    their reconstructions (same total), and the lesions it counts per study in each."""
    rng = np.random.default_rng(0)
    spacing = pairs[0][0].meta["pixel_spacing_mm"]
    truths = [visible_hot_lesions(study.meta, spacing) for study, _ in pairs]
    out = {}
    for name, counts in (
        ("counts", np.stack([study.counts for study, _ in pairs])),
        ("reconstruction", rng.poisson(np.stack([recon for _, recon in pairs]))),
    ):
        rows = score_studies(detector, counts, truths, spacing)
        out[name] = {
            "lesions_found": sum(r["found"] for r in rows) / sum(r["true_hot"] for r in rows),
            "detected_per_study": float(np.mean([r["detected"] for r in rows])),
            "false_marks_per_study": float(np.mean([r["false_marks"] for r in rows])),
        }
    out["true_hot_per_study"] = float(np.mean([len(t) for t in truths]))
    return out


def sample_statistics(counts: np.ndarray) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for study in counts:
        row = {"midband_power_ratio": midband_ratio(study.astype(np.float64), floor=1.0), **textures(study)}
        for k, v in row.items():
            out.setdefault(k, []).append(float(v))
    return out


def medians(values: dict[str, list[float]]) -> dict[str, float]:
    return {k: float(np.nanmedian(v)) for k, v in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument(
        "--autoencoder",
        default=None,
        help="measure this autoencoder folder instead of a model's (a training run's autoencoder/final,"
        " before its diffusion stage ends); not with --samples",
    )
    parser.add_argument(
        "--bin-factor", type=int, default=2, help="with --autoencoder: its transform.bin_factor"
    )
    parser.add_argument("--site", default="centre_a", help="simulator site of the held-out studies")
    parser.add_argument("-n", type=int, default=8, help="held-out studies reconstructed")
    parser.add_argument("--samples", type=int, default=0, help="normal samples measured (0: none)")
    parser.add_argument("--reference", default=None, help="dataset the samples are compared with")
    parser.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--png", default=None, help="also draw truth, counts and reconstruction here")
    parser.add_argument("--lesions", type=int, default=0, help="metastasis studies for lesion contrast")
    parser.add_argument(
        "--lesion-detector",
        default=None,
        help="with --lesions: a saved lesion detector (evaluation/lesions.py)",
    )
    args = parser.parse_args()
    if args.lesion_detector and not args.lesions:
        parser.error("--lesion-detector needs --lesions N")
    if args.autoencoder and (args.model or args.samples):
        parser.error("--autoencoder measures an autoencoder alone: no --model, no --samples")
    if args.autoencoder:
        ae = Autoencoder(AutoencoderKL.from_pretrained(args.autoencoder).eval(), args.bin_factor)
    else:
        pipeline = load_pipeline(args.model, device="cpu")
        ae = Autoencoder.of(pipeline)
    if args.png:
        render_grid(reconstruction_panels(ae, args.site), columns=3).save(args.png)
    results = {"reconstruction_over_truth": medians(reconstruction(ae, args.site, args.n))}
    if args.lesions:
        pairs = metastasis_reconstructions(ae, args.site, args.lesions)
        ratios = lesion_contrast_ratios(pairs)
        results["lesions"] = {
            "lesion_contrast_ratio": float(np.median(ratios)),
            "quartiles": [float(q) for q in np.percentile(ratios, [25, 75])],
            "lesion_views": len(ratios),
        }
        if args.lesion_detector:
            results["lesions"]["detector"] = lesions_detected(
                LesionDetector.load(args.lesion_detector), pairs
            )
    if args.samples:
        generators = [torch.Generator().manual_seed(s) for s in range(args.samples)]
        output = pipeline(["normal"] * args.samples, generator=generators)
        results["samples"] = medians(sample_statistics(output.counts))
    if args.reference:
        reference = Dataset.open(args.reference)
        records = reference.filter(label="normal")[: max(args.samples, args.n)]
        counts = np.stack([s.counts for s in reference.iter_studies(records)])
        results["reference"] = medians(sample_statistics(counts))
    print(json.dumps(results, indent=2))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
