"""The amyloidosis early-end rule (this folder's README, last section) on two quality sets.

    python docs/normal_hot_spots/amyloid_stop_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

``docs/projected_guidance/ship_rule.py`` items 1-7 with one more gain (marks per amyloidosis sample)
and the cardiac gates: the reference classifier's amyloidosis reading and, per Perugini grade, the
heart's share of the anterior view's counts (the box of the shipped model's cardiac test: simulated
centre_a hearts centre near row 196, column 140), so that ending early cannot buy fewer false spots with
fainter hearts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ship_rule
from quality_table import load

from synthscan.dataset import Dataset
from synthscan.labels import AMYLOIDOSIS_GRADES

HEART = (slice(180, 270), slice(120, 170))  # anterior view rows, columns


def heart_share(counts: np.ndarray) -> float:
    """The heart box's share of the anterior view's counts."""
    return float(counts[0][HEART].sum() / counts[0].sum())


def amyloid_rows(folder: str, real) -> dict[str, float]:
    r = load(folder)
    dataset = Dataset.open(Path(folder) / "synthetic")
    row = {
        "lesion marks per amyloidosis": r["lesions"]["with_lesions"]["amyloidosis"]["synthetic"][
            "mean_detected"
        ],
        "read as amyloidosis (cls_ref)": r["reference_classifier"]["per_condition"]["amyloidosis"][
            "share_correct"
        ],
    }
    for grade in AMYLOIDOSIS_GRADES:
        records = [
            rec for rec in dataset.records if rec.label == "amyloidosis" and rec.perugini_grade == grade
        ]
        assert records, f"{folder}: no grade-{grade} amyloidosis sample"
        row[f"heart share, grade {grade}"] = float(
            np.mean([heart_share(s.counts) for s in dataset.iter_studies(records)])
        )
    return row


def amyloid_gains(s: dict[str, float], c: dict[str, float]) -> list[tuple[str, bool]]:
    return [
        (
            "marks per amyloidosis ≤ shipped − 0.3",
            c["lesion marks per amyloidosis"] <= s["lesion marks per amyloidosis"] - 0.3,
        )
    ]


def main() -> None:
    s, c, _ = ship_rule.main(__doc__, amyloid_rows, amyloid_gains)
    print_cardiac_gates(s, c)


def print_cardiac_gates(s: dict[str, float], c: dict[str, float]) -> bool:
    """Item 9: the amyloidosis reading and each grade's heart share, candidate ``c`` against ``s``;
    whether all passed."""
    gates = [
        (
            "9. read as amyloidosis (cls_ref) ≥ shipped − 0.05",
            c["read as amyloidosis (cls_ref)"] >= s["read as amyloidosis (cls_ref)"] - 0.05,
        ),
        *(
            (
                f"9. heart share, grade {g} ≥ 0.9 × shipped",
                c[f"heart share, grade {g}"] >= 0.9 * s[f"heart share, grade {g}"],
            )
            for g in AMYLOIDOSIS_GRADES
        ),
    ]
    passed = ship_rule.print_gates("cardiac gate", gates)
    print(f"\ncardiac gates: {'all passed' if passed else 'failed'}")
    return passed


if __name__ == "__main__":
    main()
