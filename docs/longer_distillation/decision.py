"""The rule of this folder's README on two quality sets: every gate on the mean of the two sets.

    python docs/longer_distillation/decision.py --teacher T1 T2 --fast F1 F2 --candidate C1 C2

Each argument is a ``benchmarks/generator_quality.py --out`` folder; the two of a model are its
two sample sets (same seeds across models). Prints the two-set means and each gate, first against
the shipped ``fast`` (the replacement rule), then against the teacher (reported).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from quality_table import Results, load, realism_measures

from synthscan.labels import LABELS


def measures(r: Results) -> dict[str, float]:
    """The numbers the rule reads from one ``results.json``."""
    found = r["lesions"]["with_lesions"]
    per_label = r["condition_fidelity"]["synthetic"]["per_condition"]
    return {
        **realism_measures(r),
        "misplaced bodies": r["body_placement"]["share"],
        **{f"read as asked (cls_a): {c}": per_label[c]["share"] for c in LABELS},
        "lesion marks per normal": found["normal"]["synthetic"]["mean_detected"],
        "lesion marks per metastasis": found["metastasis"]["synthetic"]["mean_detected"],
        "memorization flags (both sets)": float(sum(space["n_flagged"] for space in r["memorization"])),
    }


def mean_over_sets(folders: list[str]) -> dict[str, float]:
    """Each measure's mean over the sample sets; memorization flags are summed."""
    sets = [measures(load(f)) for f in folders]
    total = {k: sum(s[k] for s in sets) for k in sets[0]}
    return {k: v if k.startswith("memorization") else v / len(sets) for k, v in total.items()}


def gates(candidate: dict[str, float], reference: dict[str, float], against_fast: bool) -> list[tuple]:
    """(gate, candidate's value, limit, passed) of the rule against ``reference``."""
    rows = [
        ("detector within", "≤", reference["detector within"] + 0.05),
        ("two-sample within, cls_a", "≤", reference["two-sample within, cls_a"] + 0.02),
        ("two-sample within, cls_ref", "≤", reference["two-sample within, cls_ref"] + 0.02),
        *(
            (f"read as asked (cls_a): {c}", "≥", reference[f"read as asked (cls_a): {c}"] - 0.05)
            for c in LABELS
        ),
        ("lesion marks per normal", "≤", reference["lesion marks per normal"] + 0.3),
        ("recall", "≥", 0.95),
    ]
    if against_fast:
        rows += [
            ("precision", "≥", reference["precision"]),
            ("misplaced bodies", "≤", reference["misplaced bodies"]),
        ]
    else:
        rows += [("precision", "≥", 0.90), ("misplaced bodies", "≤", reference["misplaced bodies"] + 0.02)]
    out = []
    for name, sense, limit in rows:
        value = candidate[name]
        passed = value <= limit + 1e-9 if sense == "≤" else value >= limit - 1e-9
        out.append((name, value, f"{sense} {limit:.3f}", passed))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name in ("teacher", "fast", "candidate"):
        parser.add_argument(f"--{name}", nargs=2, required=True, metavar="REPORT")
    args = parser.parse_args()
    means = {name: mean_over_sets(getattr(args, name)) for name in ("teacher", "fast", "candidate")}

    print("| two-set mean | teacher | shipped `fast` | candidate |\n|---|---|---|---|")
    for key in means["teacher"]:
        print(f"| {key} | " + " | ".join(f"{means[m][key]:.3f}" for m in means) + " |")
    for title, reference, against_fast in (
        ("against the shipped `fast` (replacement rule)", means["fast"], True),
        ("against the teacher (reported)", means["teacher"], False),
    ):
        rows = gates(means["candidate"], reference, against_fast)
        verdict = "passes" if all(r[3] for r in rows) else "fails"
        print(f"\n**Candidate {title}: {verdict} the numeric gates** (the rule's memorization and picture")
        print("checks are done by looking at the flagged samples and the pictures)\n")
        print("| gate | candidate | limit | passed |\n|---|---|---|---|")
        for name, value, limit, passed in rows:
            print(f"| {name} | {value:.3f} | {limit} | {'yes' if passed else '**no**'} |")


if __name__ == "__main__":
    main()
