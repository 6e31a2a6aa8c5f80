"""At which noise level a generator's UNet loses the posterior ribs: an SDEdit probe.

    python docs/normal_hot_spots/where_ribs_go.py HELD_OUT [--model default] [--t T ...]

HELD_OUT's first 40 normal studies are encoded (posterior means), noised to timestep t by the
model's own forward process, denoised back to t = 0 by deterministic DDIM (20 steps over [0, t], the
conditional model under each study's own condition, no guidance: the samples' rib share does not
move with the guidance scale), decoded and redrawn as Poisson counts at each study's own counts per
view (``rib_period.py --reconstruct``). The normals' rib-band share (``rib_period.py``) at each t
says where the reverse process loses the ribs: at the autoencoder's own reconstruction (t = 0 row)
if the UNet keeps them from there, at the samples' level (about 0.4) if it redraws them. Beside it, the
noisy latent rescaled (x_t / sqrt(ᾱ_t)) and decoded without a denoiser: what the noise alone does.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from synthscan.dataset import Dataset
from synthscan.generator.models import global_scaling_factor
from synthscan.generator.storage import load_pipeline
from synthscan.generator.train import pretrained_conditioning
from synthscan.generator.transform import to_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from autoencoder_detectability import reconstructed_counts
from generator_fine_structure import Autoencoder
from rib_period import mean_spectrum, rib_share

STEPS = 20


def denoise(
    network: torch.nn.Module, latents: torch.Tensor, ids: torch.Tensor, alphas: torch.Tensor, t: int
) -> torch.Tensor:
    """Deterministic DDIM (v-prediction) from timestep ``t`` to clean latents (ᾱ = 1 after the last step).

    At most STEPS distinct timesteps: a short span (t = 10) takes one step per timestep, never a repeat.
    """
    grid = np.unique(np.linspace(t, 0, STEPS + 1).round().astype(int))[::-1]
    x = latents
    for now, nxt in itertools.pairwise(grid):
        a_now, a_next = alphas[now], alphas[nxt] if nxt > 0 else torch.tensor(1.0)
        v = network(x, torch.full((len(x),), int(now)), class_labels=ids).sample
        x0 = a_now.sqrt() * x - (1 - a_now).sqrt() * v
        eps = (1 - a_now).sqrt() * x + a_now.sqrt() * v
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x


class Probe(NamedTuple):
    """What an SDEdit probe of a pipeline needs: the held-out normals' counts and conditions, the
    conditioned network, the autoencoder, the latent scaling, the studies' latents and the schedule."""

    counts: list[np.ndarray]
    ids: torch.Tensor
    network: torch.nn.Module
    ae: Autoencoder
    scaling: float
    z0: torch.Tensor
    alphas: torch.Tensor


def probe_setup(pipeline, dataset: Dataset, n: int | None = 40, label: str = "normal") -> Probe:
    """The first ``n`` (None: all) ``label`` studies of ``dataset`` encoded (posterior means) for
    ``pipeline``'s probe."""
    if (
        pipeline.config.get("latent_patch", 1) != 1
        or pipeline.scheduler.config.prediction_type != "v_prediction"
    ):
        raise SystemExit("the probe handles unfolded latents and v-prediction models only")
    scaling = global_scaling_factor(pipeline.vae.config)
    records = [r for r in dataset.records if r.label == label][:n]
    counts = [dataset.read(r).counts for r in records]
    ids, _, network = pretrained_conditioning(pipeline, records)
    network.eval()
    ae = Autoencoder(pipeline.vae, pipeline.config.bin_factor)
    x, _ = to_model(np.stack(counts), ae.bin_factor)
    z0 = torch.cat([pipeline.vae.encode(x[i : i + 8]).latent_dist.mean for i in range(0, len(x), 8)])
    return Probe(counts, torch.from_numpy(ids), network, ae, scaling, z0, pipeline.scheduler.alphas_cumprod)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("held_out")
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("--t", type=int, nargs="+", default=[10, 25, 50, 100, 200, 300, 500, 700, 999])
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    pipeline = load_pipeline(args.model)
    counts, ids, network, ae, scaling, z0, alphas = probe_setup(pipeline, Dataset.open(args.held_out))
    rng = np.random.default_rng(0)
    reconstructed = [reconstructed_counts(ae, c, rng) for c in counts]
    print(f"t 0 (autoencoder only): rib-band share {rib_share(mean_spectrum(reconstructed)):.3f}")
    for t in args.t:
        noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(t))
        noisy = alphas[t].sqrt() * z0 * scaling + (1 - alphas[t]).sqrt() * noise
        shares = []
        for latent in (denoise(network, noisy, ids, alphas, t), noisy / alphas[t].sqrt()):
            rng = np.random.default_rng(0)
            studies = [
                reconstructed_counts(ae, c, rng, latent=z / scaling)
                for z, c in zip(latent, counts, strict=True)
            ]
            shares.append(rib_share(mean_spectrum(studies)))
        snr = float(alphas[t] / (1 - alphas[t]))
        print(f"t {t} (SNR {snr:.3g}): rib-band share {shares[0]:.3f} denoised, {shares[1]:.3f} left noisy")


if __name__ == "__main__":
    main()
