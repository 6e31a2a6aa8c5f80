"""The ship rule of this folder's README (the signal leak) on two quality sets.

    python docs/signal_leak/ship_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

Each S/C is a ``benchmarks/generator_quality.py --out`` folder with its ``synthetic`` samples (same seeds
for both models). Prints the two-set means, the normals' soft-tissue bias and spread against HELD_OUT's
normals per tracer, and every numeric gate of ``docs/projected_guidance/ship_rule.py`` with this rule's
gain; memorization flags, realism and the pictures are checked by eye (item 8).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
from ship_rule import main, normal_measures

from synthscan.dataset import Dataset

BIAS = "soft-tissue bias, normals (real SDs)"


def bias_and_spread(folder: str, real: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Mean over measures and tracers of |median(samples) − median(real)| / SD(real), and of the
    samples' SD over the real one, on the normal studies of each tracer."""
    x, t = normal_measures(Dataset.open(Path(folder) / "synthetic"))
    real_x, real_t = real
    bias, spread = [], []
    for tracer in sorted(set(real_t)):
        ours, theirs = x[t == tracer], real_x[real_t == tracer]
        sd = np.nanstd(theirs, axis=0)
        bias.append(np.abs(np.nanmedian(ours, axis=0) - np.nanmedian(theirs, axis=0)) / sd)
        spread.append(np.nanstd(ours, axis=0) / sd)
    return {BIAS: float(np.mean(bias)), "soft-tissue spread, normals (over real)": float(np.mean(spread))}


def bias_gain(s: dict[str, float], c: dict[str, float]) -> list[tuple[str, bool]]:
    return [(f"{BIAS} ≤ half the shipped one's", c[BIAS] <= s[BIAS] / 2)]


if __name__ == "__main__":
    main(__doc__, bias_and_spread, bias_gain)
