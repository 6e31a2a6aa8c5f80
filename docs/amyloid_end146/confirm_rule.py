"""The t = 146 amyloidosis end's confirmation rule (this folder's README, last section) on two fresh sets.

    python docs/amyloid_end146/confirm_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

``docs/normal_hot_spots/amyloid_stop_rule.py`` (items 1-7 and the cardiac gates) with item 3's
reference-classifier gate taken per condition, from each set's ``two_sample_auc_by_condition``
(``generator_quality`` writes it since 2026-12-06): every Perugini grade's own AUC no higher than the
shipped model's, the normals' and metastases' (their samples are the shipped ones, bit for bit) no
more than 0.02 higher, and the pooled within-condition AUC no more than 0.01 higher (two-set means).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "normal_hot_spots"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import amyloid_stop_rule
import ship_rule
from quality_table import load

CONDITIONS = ("normal", "metastasis", "amyloidosis-g1", "amyloidosis-g2", "amyloidosis-g3")


def rows(folder: str, real) -> dict[str, float]:
    by_condition = load(folder)["reference_classifier"]["real_vs_synthetic"]["two_sample_auc_by_condition"]
    return {
        **amyloid_stop_rule.amyloid_rows(folder, real),
        **{f"cls_ref two-sample, {k}": by_condition[k]["auc"] for k in CONDITIONS},
    }


def main() -> None:
    s, c = ship_rule.main(__doc__, rows, amyloid_stop_rule.amyloid_gains, pooled_reference=False)
    pooled = "two-sample within, cls_ref"
    gates = [
        (f"3. {pooled} ≤ shipped + 0.01", c[pooled] <= s[pooled] + 0.01),
        *(
            (
                f"3. cls_ref two-sample, {k} ≤ shipped",
                c[f"cls_ref two-sample, {k}"] <= s[f"cls_ref two-sample, {k}"],
            )
            for k in CONDITIONS[2:]
        ),
        *(
            (
                f"3. cls_ref two-sample, {k} ≤ shipped + 0.02",
                c[f"cls_ref two-sample, {k}"] <= s[f"cls_ref two-sample, {k}"] + 0.02,
            )
            for k in CONDITIONS[:2]
        ),
    ]
    print(
        f"\nper-condition gates: {'all passed' if ship_rule.print_gates('reference gate', gates) else 'failed'}"
    )
    amyloid_stop_rule.print_cardiac_gates(s, c)


if __name__ == "__main__":
    main()
