"""The tracers' effect on normal samples at guidance 1 and at the model's own guidance, on enough studies.

    python docs/tracer_effect/large_probe.py HELD_OUT [N] [MODEL]

N normal studies per tracer (seeds 900000…, the same for every tracer and guidance; default 192) against
every held-out normal study with a tracer: ``kept`` with its 95 % CI (``synthscan.evaluation.tracer``),
and each tracer's shift ratio (``docs/projected_guidance/screen.py``: the mean over the four measures of
the samples' median shift from MDP over the real one) with a 95 % bootstrap interval (2,000 resamples
of every group). MODEL: a generator folder [default: the shipped default].
``docs/tracer_effect/guidance_check.py`` and the screens drew 48 per tracer.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
from screen import shift_ratio

from synthscan.dataset import Dataset
from synthscan.evaluation.tracer import soft_tissue_measures, tracer_effect
from synthscan.generator.storage import load_pipeline

TRACERS = ("MDP", "HDP", "DPD")


def normal_samples(pipe, tracers, n: int, scale: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The four log ratios of ``n`` normal samples per tracer (seeds 900000…, the same for every tracer)
    at guidance ``scale`` (None: the model's own), and each sample's tracer."""
    values, asked = [], []
    for tracer in tracers:
        for start in range(0, n, 16):
            seeds = range(900000 + start, 900000 + min(start + 16, n))
            out = pipe(
                ["normal"] * len(seeds),
                generator=[torch.Generator().manual_seed(s) for s in seeds],
                guidance_scale=scale,
                tracers=[tracer] * len(seeds),
            )
            values += [soft_tissue_measures(c) for c in out.counts]
            asked += [tracer] * len(seeds)
    return np.array(values), np.array(asked)


def bootstrap_shift(real_x, real_t, x, t, tracer: str, rng: np.random.Generator) -> tuple[float, float]:
    """95 % interval of :func:`shift_ratio`, every tracer's group resampled on both sides."""

    def resample(values, tracers):
        index = np.concatenate(
            [rng.choice(np.flatnonzero(tracers == k), (tracers == k).sum()) for k in TRACERS]
        )
        return values[index], tracers[index]

    ratios = [shift_ratio(*resample(real_x, real_t), *resample(x, t), tracer) for _ in range(2000)]
    low, high = np.percentile(ratios, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    held = Dataset.open(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 192
    pipe = load_pipeline(sys.argv[3] if len(sys.argv) > 3 else None)
    real = [r for r in held.records if r.tracer and r.label == "normal"]
    real_x = np.array([soft_tissue_measures(s.counts) for s in held.iter_studies(real)])
    real_t = np.array([r.tracer for r in real])
    rng = np.random.default_rng(0)
    print(
        f"held-out normals per tracer: { {k: int((real_t == k).sum()) for k in TRACERS} }; samples {n} each\n"
    )
    print("| guidance | tracer | kept [95 % CI] | shift ratio [95 % bootstrap] |\n|---|---|---|---|")
    for scale in (1.0, None):
        x, t = normal_samples(pipe, TRACERS, n, scale)
        effect = tracer_effect(
            real_x,
            list(real_t),
            [r.patient_id for r in real],
            ["normal"] * len(real),
            x,
            list(t),
            ["normal"] * len(t),
        )
        for tracer in TRACERS[1:]:
            row = effect["per_tracer"][tracer]
            kept = (
                f"{row['kept']:.2f} [{row['kept_ci95'][0]:.2f}, {row['kept_ci95'][1]:.2f}]"
                if row.get("kept") is not None
                else "n/a"
            )
            low, high = bootstrap_shift(real_x, real_t, x, t, tracer, rng)
            ratio = shift_ratio(real_x, real_t, x, t, tracer)
            label = "1" if scale else f"own ({pipe.guidance_for('normal'):g})"
            print(f"| {label} | {tracer} | {kept} | {ratio:.2f} [{low:.2f}, {high:.2f}] |", flush=True)


if __name__ == "__main__":
    main()
