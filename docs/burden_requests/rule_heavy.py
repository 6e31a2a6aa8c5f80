"""The `>10` guidance rule (this folder's README, last section): confirmation H1-H4, pairing P0, quality
Q1-Q7.

    python docs/burden_requests/rule_heavy.py HELD_OUT DETECTOR CLS_A CLS_REF --screen bconf_gt10.md \
        --requests SHIPPED_DIR CANDIDATE_DIR --shipped S1 S2 --candidate C1 C2

``--screen`` is ``request_screen.py``'s table for ``--burden '>10' --model default CANDIDATE``;
``--requests`` its two sample folders (for the lesions' conspicuity); S/C are
``benchmarks/generator_quality.py --out`` folders on the same seeds.
"""

from __future__ import annotations

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "metastasis_interval"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
import ship_rule

from rule_light import quality_gates, rule_parser, screen_rows

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
    parser = rule_parser(__doc__)
    parser.add_argument("--requests", nargs=2, type=Path, required=True)
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

    gates += quality_gates(args, detector, HEAVY, 3.5)
    passed = ship_rule.print_gates("gate", gates)
    print(f"\nverdict on every numeric gate: {'ships' if passed else 'does not ship'} (pictures by eye)")


if __name__ == "__main__":
    main()
