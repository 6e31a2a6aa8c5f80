"""The t = 146 amyloidosis end's confirmation rule (this folder's README, last section) on two fresh sets.

    python docs/amyloid_end146/confirm_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

``docs/normal_hot_spots/amyloid_stop_rule.py`` (items 1-7 and the cardiac gates) with item 3's
reference-classifier gate taken per condition, from each set's ``two_sample_auc_by_condition``
(``generator_quality`` writes it since 2026-12-06), two-set means: the amyloidosis grades' AUCs combined
(weighted by real × synthetic pairs, as the within-condition AUC weighs them) no higher than the shipped
model's and each grade's no more than 0.05 higher (7-23 held-out studies per grade: one grade's AUC is
rough); the normals' and metastases' (their samples are the shipped ones, bit for bit) no more than 0.02
higher; the pooled within-condition AUC no more than 0.01 higher. Prints one verdict for every numeric
gate; item 8 stays by eye.
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

GRADES = ("amyloidosis-g1", "amyloidosis-g2", "amyloidosis-g3")
OTHERS = ("normal", "metastasis")


def rows(folder: str, real) -> dict[str, float]:
    by_condition = load(folder)["reference_classifier"]["real_vs_synthetic"]["two_sample_auc_by_condition"]
    pairs = {k: by_condition[k]["n_real"] * by_condition[k]["n_synthetic"] for k in GRADES}
    combined = sum(by_condition[k]["auc"] * pairs[k] for k in GRADES) / sum(pairs.values())
    return {
        **amyloid_stop_rule.amyloid_rows(folder, real),
        **{f"cls_ref two-sample, {k}": by_condition[k]["auc"] for k in (*OTHERS, *GRADES)},
        "cls_ref two-sample, amyloidosis grades combined": combined,
    }


def main() -> None:
    s, c, numeric = ship_rule.main(__doc__, rows, amyloid_stop_rule.amyloid_gains, pooled_reference=False)
    pooled, combined = "two-sample within, cls_ref", "cls_ref two-sample, amyloidosis grades combined"
    gates = [
        (f"3. {pooled} ≤ shipped + 0.01", c[pooled] <= s[pooled] + 0.01),
        (f"3. {combined} ≤ shipped", c[combined] <= s[combined]),
        *(
            (f"3. cls_ref two-sample, {k} ≤ shipped + 0.05", c[key] <= s[key] + 0.05)
            for k in GRADES
            for key in [f"cls_ref two-sample, {k}"]
        ),
        *(
            (f"3. cls_ref two-sample, {k} ≤ shipped + 0.02", c[key] <= s[key] + 0.02)
            for k in OTHERS
            for key in [f"cls_ref two-sample, {k}"]
        ),
    ]
    reference = ship_rule.print_gates("reference gate", gates)
    print(f"\nper-condition reference gates: {'all passed' if reference else 'failed'}")
    cardiac = amyloid_stop_rule.print_cardiac_gates(s, c)
    verdict = "ships" if numeric and reference and cardiac else "does not ship"
    print(f"\nverdict on every numeric gate: {verdict} (item 8 by eye)")


if __name__ == "__main__":
    main()
