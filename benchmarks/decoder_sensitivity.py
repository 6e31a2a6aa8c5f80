"""Where do the hot spots of normal samples come from? The decoder's answer to latent errors.

    python benchmarks/decoder_sensitivity.py --real HELD_OUT --lesion-detector DET [--model DIR] \
        [-n 40] [--noise 0 0.1 0.2 0.4] [--out FILE.json]

Normal samples of the shipped default carry 2-3 lesion-detector marks where held-out normal studies
carry about 0.6. Three measurements separate the suspects (DET: ``synthscan evaluate
lesion-detector``, trained on simulated lesion ground truth):

1. **The decoder under latent errors.** ``n`` held-out normal studies are encoded; Gaussian noise of
   standard deviation ``s`` (in the UNet's scaled latent units; the shipped default's latents have a
   per-channel SD of 0.24-0.86 there) is added to each latent, which is decoded and finished as a
   sample is (cut to the study's own rows, scaled to its counts per view, Poisson redrawn, as in
   ``autoencoder_detectability``).
   Marks per study against ``s``: how strongly the decoder turns small latent errors into hot spots.
2. **The samples' latents.** Per-channel standard deviation and mean squared Laplacian (high-frequency
   energy) of the latents the pipeline decodes (recorded at the decoder's input) for ``n`` normal
   samples, beside those of the encoded held-out normals: an over-noisy or off-scale latent shows here.
3. **Marks per sample**, normal and metastasis (seeds 100…), beside the held-out studies' own counts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from autoencoder_detectability import reconstructed_counts  # sibling scripts: run as benchmarks/…
from generator_fine_structure import Autoencoder

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, score_studies
from synthscan.generator.models import latents_to_unet
from synthscan.generator.storage import load_pipeline
from synthscan.generator.transform import to_model


def laplacian_energy(z: torch.Tensor) -> list[float]:
    """Mean squared 4-neighbour Laplacian of (B, C, h, w) latents per channel, over the interior."""
    lap = 4 * z[..., 1:-1, 1:-1] - z[..., :-2, 1:-1] - z[..., 2:, 1:-1] - z[..., 1:-1, :-2] - z[..., 1:-1, 2:]
    return lap.square().mean(dim=(0, 2, 3)).tolist()


def latent_statistics(z: torch.Tensor) -> dict[str, list[float]]:
    return {"channel_std": z.std(dim=(0, 2, 3)).tolist(), "laplacian_energy": laplacian_energy(z)}


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--real", required=True, help="held-out studies with normal ones")
    parser.add_argument("--lesion-detector", required=True, help="synthscan evaluate lesion-detector folder")
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("-n", type=int, default=40, help="studies and samples per group [default: 40]")
    parser.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=[0.0, 0.1, 0.2, 0.4],
        help="latent noise levels, scaled latent units [default: 0 0.1 0.2 0.4]",
    )
    parser.add_argument("--out", default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    dataset = Dataset.open(args.real)
    records = [r for r in dataset.records if r.label == "normal"][: args.n]
    if len(records) < args.n:
        parser.error(f"{args.real} has {len(records)} normal studies; lower -n")
    detector = LesionDetector.load(args.lesion_detector)
    pipeline = load_pipeline(args.model, device="cpu")
    vae = pipeline.vae
    ae = Autoencoder.of(pipeline)
    spacing = dataset.info.pixel_spacing_mm

    def marks(counts: np.ndarray) -> float:
        return float(
            np.mean([r["detected"] for r in score_studies(detector, counts, [None] * len(counts), spacing)])
        )

    counts = np.stack([s.counts for s in dataset.iter_studies(records)]).astype(np.int32)
    encoded = torch.cat([vae.encode(to_model(c[None], ae.bin_factor)[0]).latent_dist.mean for c in counts])
    results: dict = {
        "model_sha256": pipeline.sha256,
        "real": Path(args.real).name,
        "n": args.n,
        "held_out_marks": marks(counts),
        "held_out_latents": latent_statistics(latents_to_unet(encoded, vae.config)),
        "reconstruction_marks": {},
    }
    # noise of SD s in the UNet's units is s / scale in the autoencoder's (per channel when scaled so)
    std = vae.config.get("latents_std")
    scale = vae.config.scaling_factor
    scale = scale if std is None else scale / torch.tensor(std).view(-1, 1, 1)
    for s in args.noise:
        rng, noise = np.random.default_rng(0), torch.Generator().manual_seed(1)
        redrawn = [
            reconstructed_counts(ae, c, rng, latent=z + s / scale * torch.randn(z.shape, generator=noise))
            for c, z in zip(counts, encoded, strict=True)
        ]
        results["reconstruction_marks"][str(s)] = marks(np.stack(redrawn))
        print(
            f"latent noise {s}: {results['reconstruction_marks'][str(s)]:.2f} marks per reconstructed normal"
        )

    recorded: list[torch.Tensor] = []
    decode = vae.decode

    def recording_decode(z: torch.Tensor, *args, **kwargs):
        recorded.append(latents_to_unet(z, vae.config))  # the decoder's input, in the UNet's units
        return decode(z, *args, **kwargs)

    vae.decode = recording_decode
    for label in ("normal", "metastasis"):
        recorded.clear()
        samples = []
        for start in range(0, args.n, 8):
            seeds = range(100 + start, 100 + min(args.n, start + 8))
            samples.append(
                pipeline(
                    [label] * len(seeds), generator=[torch.Generator().manual_seed(s) for s in seeds]
                ).counts
            )
        results[f"{label}_sample_marks"] = marks(np.concatenate(samples))
        if label == "normal":
            results["normal_sample_latents"] = latent_statistics(torch.cat(recorded))
    del vae.decode  # the class method again
    print(
        f"marks per study: held-out normal {results['held_out_marks']:.2f}; samples normal "
        f"{results['normal_sample_marks']:.2f}, metastasis {results['metastasis_sample_marks']:.2f}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
