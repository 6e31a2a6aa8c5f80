"""The stochastic sampler's ship rule (this folder's README, last section) on two quality sets.

    python docs/lesion_conspicuity/rule_sde.py HELD_OUT --shipped S1 S2 --candidate C1 C2

``docs/projected_guidance/ship_rule.py`` items 1-7 (item 1's gains include the lesion gain below;
item 3's reference gate per condition here), and the lesion gates: the metastases' conspicuity AUC
(two-set mean) at least 0.03 below the shipped model's, their marks per study within [held-out − 1,
shipped + 1], marks per amyloidosis sample ≤ shipped + 0.3, normals and amyloidosis read as asked by
``cls_ref`` ≥ shipped − 0.05, the Perugini grades ordered on both sets, DPD's ``|kept − 1|`` ≤
shipped's + 0.2 and the memorization flags ≤ shipped's + 1. Realism and the pictures stay by eye.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ship_rule
from quality_table import load

HELD_OUT_MARKS = 5.23  # held-out metastases' lesion-detector marks per study (README status table)
CONDITIONS = ("normal", "metastasis", "amyloidosis-g1", "amyloidosis-g2", "amyloidosis-g3")


def rows(folder: str, real) -> dict[str, float]:
    r = load(folder)
    reference = r["reference_classifier"]
    own = reference["real_vs_synthetic"]["two_sample_auc_by_condition"]
    grades = r["condition_fidelity"]["synthetic"]["amyloidosis_by_grade"]
    p = [grades[g]["mean_probability"] for g in "123"]
    return {
        "conspicuity AUC": r["lesions"]["conspicuity"]["contrast_auc"],
        "lesion contrast, median": r["lesions"]["conspicuity"]["synthetic"]["contrast_quartiles"][1],
        "lesion marks per amyloidosis": r["lesions"]["with_lesions"]["amyloidosis"]["synthetic"][
            "mean_detected"
        ],
        "read as amyloidosis (cls_ref)": reference["per_condition"]["amyloidosis"]["share_correct"],
        "grades ordered": float(p[0] < p[1] < p[2]),
        **{f"cls_ref two-sample, {c}": own[c]["auc"] for c in CONDITIONS},
    }


def main() -> None:
    def lesion_gain(s: dict[str, float], c: dict[str, float]) -> list[tuple[str, bool]]:
        return [("conspicuity AUC ≤ shipped − 0.03", c["conspicuity AUC"] <= s["conspicuity AUC"] - 0.03)]

    s, c, numeric = ship_rule.main(__doc__, rows, lesion_gain, pooled_reference=False)
    pooled = "two-sample within, cls_ref"
    marks = "lesion marks per metastasis"
    gates = [
        *lesion_gain(s, c),
        (
            f"{marks} within [held-out − 1, shipped + 1]",
            HELD_OUT_MARKS - 1 <= c[marks] <= s[marks] + 1,
        ),
        (
            "lesion marks per amyloidosis ≤ shipped + 0.3",
            c["lesion marks per amyloidosis"] <= s["lesion marks per amyloidosis"] + 0.3,
        ),
        (f"3. {pooled} ≤ shipped + 0.01", c[pooled] <= s[pooled] + 0.01),
        *(
            (
                f"3. cls_ref two-sample, {k} ≤ shipped + 0.03",
                c[f"cls_ref two-sample, {k}"] <= s[f"cls_ref two-sample, {k}"] + 0.03,
            )
            for k in CONDITIONS
        ),
        *(
            (
                f"read as {k} (cls_ref) ≥ shipped − 0.05",
                c[f"read as {k} (cls_ref)"] >= s[f"read as {k} (cls_ref)"] - 0.05,
            )
            for k in ("normal", "amyloidosis")
        ),
        ("Perugini grades ordered on both sets", c["grades ordered"] == 1),
        ("DPD |kept − 1| ≤ shipped's + 0.2", abs(c["DPD kept"] - 1) <= abs(s["DPD kept"] - 1) + 0.2),
        (
            "memorization flags ≤ shipped's + 1",
            c["memorization flags (both sets)"] <= s["memorization flags (both sets)"] + 1,
        ),
    ]
    extra = ship_rule.print_gates("lesion and condition gate", gates)
    verdict = "ships" if numeric and extra else "does not ship"
    print(f"\nverdict on every numeric gate: {verdict} (realism and pictures by eye)")


if __name__ == "__main__":
    main()
