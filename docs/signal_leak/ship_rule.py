"""The ship rule of this folder's README (the signal leak) on two quality sets.

    python docs/signal_leak/ship_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

Each S/C is a ``benchmarks/generator_quality.py --out`` folder with its ``synthetic`` samples (same seeds
for both models). Prints the two-set means, the normals' soft-tissue bias and spread against HELD_OUT's
normals per tracer, and every numeric gate of ``docs/projected_guidance/ship_rule.py`` with this rule's
gain; memorization flags, realism and the pictures are checked by eye (item 8).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
from ship_rule import gains, mean_over_sets, normal_measures, print_rule

from synthscan.dataset import Dataset


def bias_and_spread(folder: str, real: tuple[np.ndarray, np.ndarray]) -> tuple[float, float]:
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
    return float(np.mean(bias)), float(np.mean(spread))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("held_out")
    parser.add_argument("--shipped", nargs=2, required=True)
    parser.add_argument("--candidate", nargs=2, required=True)
    args = parser.parse_args()
    real = normal_measures(Dataset.open(args.held_out))
    s, c = mean_over_sets(args.shipped, real), mean_over_sets(args.candidate, real)
    for row, folders in ((s, args.shipped), (c, args.candidate)):
        pairs = [bias_and_spread(f, real) for f in folders]
        row["soft-tissue bias, normals (real SDs)"] = float(np.mean([b for b, _ in pairs]))
        row["soft-tissue spread, normals (over real)"] = float(np.mean([sp for _, sp in pairs]))
    print("| two-set mean | shipped | candidate |\n|---|---|---|")
    for key in s:
        print(f"| {key} | {s[key]:.3f} | {c[key]:.3f} |")
    bias = "soft-tissue bias, normals (real SDs)"
    print_rule(s, c, [(f"{bias} ≤ half the shipped one's", c[bias] <= s[bias] / 2), *gains(s, c)])


if __name__ == "__main__":
    main()
