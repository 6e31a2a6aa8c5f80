"""The confirmation rule's four-set gate 3: the reference classifier's feature two-sample AUC within
conditions, per set and averaged over the sets, shipped against candidate (this folder's README).

    python docs/normal_hot_spots/gate3_mean.py --shipped S1 S2 S3 S4 --candidate C1 C2 C3 C4

Each folder is a ``benchmarks/generator_quality.py --out`` run; the i-th shipped and candidate sets
share their seed. Unrounded values, because the first two sets' means differed by 0.001.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from quality_table import load


def within_auc(folder: str) -> float:
    return load(folder)["reference_classifier"]["real_vs_synthetic"]["two_sample_auc_within_condition"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shipped", nargs="+", required=True)
    parser.add_argument("--candidate", nargs="+", required=True)
    args = parser.parse_args()
    if len(args.shipped) != len(args.candidate):
        parser.error("give as many candidate sets as shipped ones (one per seed)")
    shipped = [within_auc(f) for f in args.shipped]
    candidate = [within_auc(f) for f in args.candidate]
    print("| set (shipped / candidate) | shipped | candidate |\n|---|---|---|")
    for s_dir, c_dir, s, c in zip(args.shipped, args.candidate, shipped, candidate, strict=True):
        print(f"| {Path(s_dir).name} / {Path(c_dir).name} | {s:.4f} | {c:.4f} |")
    s_mean, c_mean = float(np.mean(shipped)), float(np.mean(candidate))
    print(f"| mean of {len(shipped)} | {s_mean:.4f} | {c_mean:.4f} |")
    verdict = "held" if c_mean <= s_mean else "**missed**"
    print(f"\ngate 3 (cls_ref two-sample within conditions, candidate ≤ shipped) on the mean: {verdict}")


if __name__ == "__main__":
    main()
