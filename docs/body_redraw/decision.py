"""The rule of ``rule.md`` on the candidate's and the shipped default's two quality sets.

    python docs/body_redraw/decision.py --shipped q_def_s1120000 q_def_s2030000 \
        --candidate q_bs_s1120000 q_bs_s2030000

Each argument is a ``benchmarks/generator_quality.py --out`` folder (same seeds, same order).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from quality_table import Results, load, realism_measures

from synthscan.dataset import Dataset
from synthscan.labels import LABELS


def measures(r: Results) -> dict[str, float]:
    reading = r["reference_classifier"]["per_condition"]
    return {
        **realism_measures(r),
        **{f"read as asked (cls_ref): {c}": reading[c]["share_correct"] for c in LABELS},
        **{f"memorization flags: {s['space']}": float(s["n_flagged"]) for s in r["memorization"]},
    }


def unpaired(shipped: Path, candidate: Path) -> int:
    """Studies drawn once by the candidate whose counts differ from the shipped model's.

    Counts, not file checksums as ``rule.md`` first said: a study file also records the model's hash,
    which the candidate changes by design, so every file differs (``README.md``)."""
    ours, theirs = Dataset.open(candidate / "synthetic"), Dataset.open(shipped / "synthetic")
    return sum(
        not np.array_equal(ours.read(r).counts, theirs.read(theirs.record(r.study_id)).counts)
        for r in ours
        if int(r.get("redraws")) == 0
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shipped", nargs=2, type=Path, required=True)
    parser.add_argument("--candidate", nargs=2, type=Path, required=True)
    args = parser.parse_args()
    shipped = [measures(load(f)) for f in args.shipped]
    candidate = [measures(load(f)) for f in args.candidate]
    results = [load(f) for f in args.candidate]
    passed = True

    def gate(name: str, value: float, sense: str, limit: float) -> None:
        nonlocal passed
        ok = value <= limit + 1e-9 if sense == "≤" else value >= limit - 1e-9
        passed &= ok
        print(f"{'pass' if ok else 'FAIL'}  {name}: {value:.3f} {sense} {limit:.3f}")

    for folder, r, s_folder in zip(args.candidate, results, args.shipped, strict=True):
        placement = r["body_placement"]
        print(
            f"{folder}: redrawn {placement['redrawn']['share']:.3f} {placement['redrawn']['per_condition']}"
        )
        gate(f"1. misplaced share, {folder.name}", placement["share"], "≤", 0.01)
        gate(
            f"2. studies drawn once that differ from the shipped's, {folder.name}",
            unpaired(s_folder, folder),
            "≤",
            0,
        )
    mean = {k: sum(c[k] for c in candidate) / 2 for k in candidate[0]}
    ref = {k: sum(s[k] for s in shipped) / 2 for k in shipped[0]}
    gate("3. image detector within (mean)", mean["detector within"], "≤", ref["detector within"] + 0.02)
    for key in ("two-sample within, cls_a", "two-sample within, cls_ref"):
        gate(f"4. {key} (mean)", mean[key], "≤", ref[key] + 0.02)
    for c, folder in zip(candidate, args.candidate, strict=True):
        gate(f"5. precision, {folder.name}", c["precision"], "≥", 0.90)
        gate(f"5. recall, {folder.name}", c["recall"], "≥", 0.90)
    for label in LABELS:
        key = f"read as asked (cls_ref): {label}"
        gate(f"6. {key} (mean)", mean[key], "≥", ref[key] - 0.03)
    for c, s, folder in zip(candidate, shipped, args.candidate, strict=True):
        for key in (k for k in c if k.startswith("memorization")):
            gate(f"7. {key}, {folder.name}", c[key], "≤", s[key])
    print("ship" if passed else "do not ship")


if __name__ == "__main__":
    main()
