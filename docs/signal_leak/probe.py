"""python docs/signal_leak/probe.py HELD_OUT [MODEL]

Where is the soft-tissue spread lost? SD of the four log ratios on held-out MDP normals, their
autoencoder round trips, and normal MDP samples at guidance 1 (10 and 30 steps)."""

import sys

import numpy as np
import torch
from synthscan.evaluation.tracer import soft_tissue_measures
from synthscan.generator.storage import load_pipeline
from synthscan.generator.transform import expected_counts, poisson_counts, to_model

from synthscan.dataset import Dataset

N = 48


def mdp_normals(held: Dataset, n: int = N) -> list:
    """The first ``n`` held-out normal studies with MDP."""
    return [r for r in held.records if r.label == "normal" and r.tracer == "MDP"][:n]


def show(name: str, values: list) -> None:
    """One row: the SD and the median of each of the four log ratios."""
    v = np.array(values)
    sd, median = np.nanstd(v, axis=0), np.nanmedian(v, axis=0)
    print(
        f"{name:30s} SD {' '.join(f'{x:.3f}' for x in sd)}  median {' '.join(f'{x:.3f}' for x in median)}",
        flush=True,
    )


def main() -> None:
    held = Dataset.open(sys.argv[1])
    pipe = load_pipeline(sys.argv[2] if len(sys.argv) > 2 else None)
    n = N
    studies = [s.counts for s in held.iter_studies(mdp_normals(held))]
    show("real MDP normals", [soft_tissue_measures(c) for c in studies])
    vals = []
    with torch.no_grad():
        for i in range(0, n, 8):
            c = np.stack(studies[i : i + 8]).astype(np.float32)
            x, scale = to_model(c, pipe.config.bin_factor)
            lat = pipe.vae.encode(x).latent_dist.mean
            dec = pipe.vae.decode(lat).sample
            tot = torch.tensor(c.sum(axis=(1, 2, 3)))
            ratio = torch.tensor(c[:, 1].sum(axis=(1, 2)) / c[:, 0].sum(axis=(1, 2)))
            rate = expected_counts(dec, tot, pipe.config.bin_factor, None, None, ratio, pipe.calibration)
            vals += [
                soft_tissue_measures(k)
                for k in poisson_counts(rate, [torch.Generator().manual_seed(j) for j in range(len(rate))])
            ]
    show("AE round trip", vals)
    for steps, scale in [(10, 1.0), (30, 1.0), (10, None)]:
        vals = []
        for s0 in range(0, n, 16):
            seeds = range(900000 + s0, 900000 + s0 + 16)
            out = pipe(
                ["normal"] * 16,
                generator=[torch.Generator().manual_seed(s) for s in seeds],
                guidance_scale=scale,
                tracers=["MDP"] * 16,
                num_inference_steps=steps,
            )
            vals += [soft_tissue_measures(c) for c in out.counts]
        show(f"samples {steps} steps g={scale}", vals)


if __name__ == "__main__":
    main()
