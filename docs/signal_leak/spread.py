"""How narrow are the shipped default's MDP normals in soft tissue? With enough studies to tell.

    python docs/signal_leak/spread.py HELD_OUT [N] [--main-stage FOLDER]

Samples N MDP normal studies (seeds 900000…, the seeds of ``docs/tracer_effect/guidance_check.py``) at
guidance 1 and at the model's own guidance, and compares the spread of the four soft-tissue log ratios
(``synthscan.evaluation.tracer.MEASURES``) with every MDP normal of HELD_OUT: the standard deviation and
a robust one (interquartile range / 1.349), as ratios samples / held-out with 95 % bootstrap intervals
(2,000 resamples of both sets), and the median shift in held-out SDs. ``--main-stage`` also runs the
same with another model's UNet and condition encoder (the default's main stage before its continuation:
``git archive 043d704 synthscan/models/default | tar -x -C DIR``), to see whether training length
moves the spread.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from diffusers import UNet2DModel
from synthscan.evaluation.tracer import MEASURES, soft_tissue_measures
from synthscan.generator.models import ConditionEncoder
from synthscan.generator.storage import load_pipeline

from synthscan.dataset import Dataset


def spreads(x: np.ndarray) -> np.ndarray:
    """(2, measures): SD and IQR / 1.349 of each column, NaNs left out."""
    q75, q25 = np.nanpercentile(x, [75, 25], axis=0)
    return np.stack([np.nanstd(x, axis=0), (q75 - q25) / 1.349])


def ratio_ci(samples: np.ndarray, real: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(2, 3): mean over measures of samples' spread / real's (SD, robust), with 95 % bootstrap bounds."""
    point = (spreads(samples) / spreads(real)).mean(axis=1)
    boot = [
        (
            spreads(samples[rng.integers(0, len(samples), len(samples))])
            / spreads(real[rng.integers(0, len(real), len(real))])
        ).mean(axis=1)
        for _ in range(2000)
    ]
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return np.stack([point, low, high], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("held_out")
    parser.add_argument("n", nargs="?", type=int, default=192)
    parser.add_argument("--main-stage", default=None)
    args = parser.parse_args()
    held = Dataset.open(args.held_out)
    records = [r for r in held.records if r.label == "normal" and r.tracer == "MDP"]
    real = np.array([soft_tissue_measures(s.counts) for s in held.iter_studies(records)])
    print(f"held-out MDP normals: {len(records)}; measures {', '.join(MEASURES)}")
    print(f"held-out SD {np.round(spreads(real)[0], 3)}, robust {np.round(spreads(real)[1], 3)}\n")
    print("| model | guidance | SD ratio [95 % CI] | robust ratio [95 % CI] | median shift (held-out SDs) |")
    print("|---|---|---|---|---|")
    pipe = load_pipeline(None)
    models = {"shipped default": None}
    if args.main_stage:
        models["its main stage (043d704's UNet)"] = args.main_stage
    rng = np.random.default_rng(0)
    for name, folder in models.items():
        if folder:
            pipe.register_modules(
                unet=UNet2DModel.from_pretrained(folder, subfolder="unet").eval(),
                condition_encoder=ConditionEncoder.from_pretrained(
                    folder, subfolder="condition_encoder"
                ).eval(),
            )
        for scale in (1.0, None):
            values = []
            for start in range(0, args.n, 16):
                seeds = range(900000 + start, 900000 + min(start + 16, args.n))
                out = pipe(
                    ["normal"] * len(seeds),
                    generator=[torch.Generator().manual_seed(s) for s in seeds],
                    guidance_scale=scale,
                    tracers=["MDP"] * len(seeds),
                )
                values += [soft_tissue_measures(c) for c in out.counts]
            x = np.array(values)
            (sd, sd_low, sd_high), (rob, rob_low, rob_high) = ratio_ci(x, real, rng)
            shift = (np.nanmedian(x, axis=0) - np.nanmedian(real, axis=0)) / np.nanstd(real, axis=0)
            label = "1" if scale else f"own ({pipe.guidance_for('normal'):g})"
            print(
                f"| {name} | {label} | {sd:.2f} [{sd_low:.2f}, {sd_high:.2f}] | {rob:.2f} [{rob_low:.2f}, "
                f"{rob_high:.2f}] | {' '.join(f'{v:+.2f}' for v in shift)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
