"""The `>10` guidance rule (this folder's README, last section): confirmation H1-H4, pairing P0, quality
Q1-Q7.

    python docs/burden_requests/rule_heavy.py HELD_OUT DETECTOR CLS_A CLS_REF --screen bconf_gt10.md \
        --requests SHIPPED_DIR CANDIDATE_DIR --shipped S1 S2 --candidate C1 C2

``--screen`` is ``request_screen.py``'s table for ``--burden '>10' --model default CANDIDATE``;
``--requests`` its two sample folders (for the lesions' conspicuity); S/C are
``benchmarks/generator_quality.py --out`` folders on the same seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metastasis_interval"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
import rule as interval_rule
import ship_rule

from rule_light import changed, light_side, screen_rows

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, conspicuity, count_lesions

HEAVY = ">10"


def conspicuity_auc(held: Dataset, detector: LesionDetector, folder: Path) -> float:
    """AUC that a held-out metastasis lesion stands out more than one of ``folder``'s."""
    real = count_lesions(detector, held, [r for r in held.records if r.label == "metastasis"])
    dataset = Dataset.open(folder)
    pixel_area = (detector.config.bin_factor * held.info.pixel_spacing_mm) ** 2
    return conspicuity(real, count_lesions(detector, dataset, dataset.records), pixel_area)["contrast_auc"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("held_out", type=Path)
    parser.add_argument("detector")
    parser.add_argument("cls_a")
    parser.add_argument("cls_ref")
    parser.add_argument("--screen", type=Path, required=True)
    parser.add_argument("--requests", nargs=2, type=Path, required=True)
    parser.add_argument("--shipped", nargs=2, type=Path, required=True)
    parser.add_argument("--candidate", nargs=2, type=Path, required=True)
    args = parser.parse_args()
    held_set, detector = Dataset.open(args.held_out), LesionDetector.load(args.detector)

    held, shipped, cand = screen_rows(args.screen, HEAVY)
    shipped["conspicuity auc"], cand["conspicuity auc"] = (
        conspicuity_auc(held_set, detector, folder) for folder in args.requests
    )
    held["conspicuity auc"] = 0.5
    gates = [
        ("H1 in the asked class ≥ shipped + 0.05", cand["in class"] >= shipped["in class"] + 0.05),
        ("H2 two-sample AUC ≤ shipped + 0.02", cand["auc"] <= shipped["auc"] + 0.02),
        ("H3 conspicuity AUC ≤ shipped's", cand["conspicuity auc"] <= shipped["conspicuity auc"]),
        (
            "H4 |mean marks − held-out| ≤ shipped's + 3.5",
            abs(cand["marks"] - held["marks"]) <= abs(shipped["marks"] - held["marks"]) + 3.5,
        ),
    ]
    print(f"| confirmation ({HEAVY} requests) | held-out | shipped | candidate |\n|---|---|---|---|")
    for key in held:
        print(f"| {key} | {held[key]:.3f} | {shipped[key]:.3f} | {cand[key]:.3f} |")

    pairs = [changed(s, c, HEAVY) for s, c in zip(args.shipped, args.candidate, strict=True)]
    print(f"\nstudies whose counts differ from the shipped set's (other, {HEAVY} metastases): {pairs}")
    gates.append((f"P0 every study but the {HEAVY} metastases bit-identical", all(o == 0 for o, _ in pairs)))

    real = ship_rule.normal_measures(held_set)
    s = ship_rule.mean_over_sets([str(f) for f in args.shipped], real)
    c = ship_rule.mean_over_sets([str(f) for f in args.candidate], real)
    for row, folders in ((s, args.shipped), (c, args.candidate)):
        sets = [interval_rule.rows(str(f), real) for f in folders]
        row.update({k: float(np.mean([m[k] for m in sets])) for k in sets[0]})
    print("\n| two-set mean | shipped | candidate |\n|---|---|---|")
    for key in s:
        print(f"| {key} | {s[key]:.3f} | {c[key]:.3f} |")
    own, burden = interval_rule.OWN, "metastases in their burden class"
    gates += [
        (
            "Q1 detector within ≤ shipped + 0.05 and ≤ 0.75",
            c["detector within"] <= min(s["detector within"] + 0.05, 0.75),
        ),
        (
            "Q2 two-sample within, cls_a ≤ shipped + 0.02",
            c["two-sample within, cls_a"] <= s["two-sample within, cls_a"] + 0.02,
        ),
        (
            "Q2 two-sample within, cls_ref ≤ shipped + 0.01",
            c["two-sample within, cls_ref"] <= s["two-sample within, cls_ref"] + 0.01,
        ),
        (f"Q2 {own} ≤ shipped + 0.02", c[own] <= s[own] + 0.02),
        ("Q3 precision ≥ 0.90, recall ≥ 0.95", c["precision"] >= 0.90 and c["recall"] >= 0.95),
        ("Q4 misplaced bodies ≤ shipped + 0.02", c["misplaced bodies"] <= s["misplaced bodies"] + 0.02),
        ("Q5 DPD |kept − 1| ≤ shipped's + 0.2", abs(c["DPD kept"] - 1) <= abs(s["DPD kept"] - 1) + 0.2),
        (f"Q6 {burden} ≥ shipped − 0.05", c[burden] >= s[burden] - 0.05),
    ]

    extractors = {"cls_a": FeatureExtractor(args.cls_a), "cls_ref": FeatureExtractor(args.cls_ref)}
    sides = {
        "held-out": light_side([args.held_out], detector, extractors, HEAVY),
        "shipped": light_side([f / "synthetic" for f in args.shipped], detector, extractors, HEAVY),
        "candidate": light_side([f / "synthetic" for f in args.candidate], detector, extractors, HEAVY),
    }
    print(f"\n| {HEAVY} metastases | " + " | ".join(sides) + " |\n|---|---|---|---|")
    for key in sides["held-out"]:
        print(f"| {key} | " + " | ".join(f"{side[key]:.3f}" for side in sides.values()) + " |")
    h, sh, ca = sides.values()
    gates.append(
        (
            "Q7 |marks − held-out| ≤ shipped's + 3.5",
            abs(ca["marks"] - h["marks"]) <= abs(sh["marks"] - h["marks"]) + 3.5,
        )
    )
    gates += [
        (
            f"Q7 |read as metastasis ({name}) − held-out| ≤ shipped's + 0.05",
            abs(ca[name] - h[name]) <= abs(sh[name] - h[name]) + 0.05,
        )
        for name in extractors
    ]
    passed = ship_rule.print_gates("gate", gates)
    print(f"\nverdict on every numeric gate: {'ships' if passed else 'does not ship'} (pictures by eye)")


if __name__ == "__main__":
    main()
