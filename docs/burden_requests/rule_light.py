"""The `1-3` burden end's ship rule (this folder's README): confirmation C1-C4, pairing P0, quality Q1-Q7.

    python docs/burden_requests/rule_light.py HELD_OUT DETECTOR CLS_A CLS_REF --screen bconf.md \
        --shipped S1 S2 --candidate C1 C2

``--screen`` is ``request_screen.py``'s table for ``--burden 1-3 --model default CANDIDATE`` (held-out
row, then the shipped model's, then the candidate's); S/C are ``benchmarks/generator_quality.py --out``
folders on the same seeds. Prints every gate and the verdict; the pictures stay by eye.
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
from request_screen import marks, read_as_metastasis

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, requested_burden

LIGHT = "1-3"


def screen_rows(table: Path, burden: str = LIGHT) -> list[dict[str, float]]:
    """The ``burden`` rows of ``request_screen.py``'s table: held-out, shipped, candidate."""
    out = []
    for line in table.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) != 7 or cells[1] != burden:
            continue
        out.append(
            {
                "marks": float(cells[3].split("/")[1]),
                "in class": float(cells[4].split()[0]),
                "read": float(cells[5]) if cells[5] else float("nan"),
                "auc": float(cells[6]) if cells[6] else float("nan"),
            }
        )
    if len(out) != 3:
        sys.exit(f"{table}: expected the held-out, shipped and candidate {burden} rows, found {len(out)}")
    return out


def changed(shipped: Path, candidate: Path, burden: str = LIGHT) -> tuple[int, int]:
    """Studies other than the ``burden`` metastases whose counts differ, and ``burden`` ones that differ
    (a study in one set only counts as differing)."""
    ours, theirs = Dataset.open(candidate / "synthetic"), Dataset.open(shipped / "synthetic")
    other = len({r.study_id for r in ours} ^ {r.study_id for r in theirs})
    light = 0
    for r in ours:
        same = np.array_equal(ours.read(r).counts, theirs.read(theirs.record(r.study_id)).counts)
        if requested_burden(r) == burden:
            light += not same
        else:
            other += not same
    return other, light


def light_side(
    folders: list[Path],
    detector: LesionDetector,
    extractors: dict[str, FeatureExtractor],
    burden: str = LIGHT,
) -> dict[str, float]:
    """Marks per study and each classifier's reading of the ``burden`` metastases of ``folders``."""
    found, reads, n = [], {name: [] for name in extractors}, 0
    for folder in folders:
        dataset = Dataset.open(folder)
        records = [r for r in dataset.records if r.label == "metastasis" and requested_burden(r) == burden]
        found += marks(detector, dataset, records)
        for name, extractor in extractors.items():
            reads[name].append(read_as_metastasis(extractor, dataset, records) * len(records))
        n += len(records)
    return {"n": n, "marks": float(np.mean(found)), **{k: sum(v) / n for k, v in reads.items()}}


def quality_gates(
    args: argparse.Namespace, detector: LesionDetector, burden: str, marks_slack: float
) -> list[tuple[str, bool]]:
    """P0 and Q1-Q7 of a burden rule on the quality sets ``args.shipped`` / ``args.candidate``, their
    tables printed; Q7's marks gate allows ``marks_slack`` lesions beyond the shipped model's distance."""
    gates = []
    pairs = [changed(s, c, burden) for s, c in zip(args.shipped, args.candidate, strict=True)]
    print(f"\nstudies whose counts differ from the shipped set's (other, {burden} metastases): {pairs}")
    gates.append((f"P0 every study but the {burden} metastases bit-identical", all(o == 0 for o, _ in pairs)))

    real = ship_rule.normal_measures(Dataset.open(args.held_out))
    s = ship_rule.mean_over_sets([str(f) for f in args.shipped], real)
    c = ship_rule.mean_over_sets([str(f) for f in args.candidate], real)
    for row, folders in ((s, args.shipped), (c, args.candidate)):
        sets = [interval_rule.rows(str(f), real) for f in folders]
        row.update({k: float(np.mean([m[k] for m in sets])) for k in sets[0]})
    print("\n| two-set mean | shipped | candidate |\n|---|---|---|")
    for key in s:
        print(f"| {key} | {s[key]:.3f} | {c[key]:.3f} |")
    own, in_class = interval_rule.OWN, "metastases in their burden class"
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
        (f"Q6 {in_class} ≥ shipped − 0.05", c[in_class] >= s[in_class] - 0.05),
    ]

    extractors = {"cls_a": FeatureExtractor(args.cls_a), "cls_ref": FeatureExtractor(args.cls_ref)}
    sides = {
        "held-out": light_side([args.held_out], detector, extractors, burden),
        "shipped": light_side([f / "synthetic" for f in args.shipped], detector, extractors, burden),
        "candidate": light_side([f / "synthetic" for f in args.candidate], detector, extractors, burden),
    }
    print(f"\n| {burden} metastases | " + " | ".join(sides) + " |\n|---|---|---|---|")
    for key in sides["held-out"]:
        print(f"| {key} | " + " | ".join(f"{side[key]:.3f}" for side in sides.values()) + " |")
    h, sh, ca = sides.values()
    gates.append(
        (
            "Q7 |marks − held-out| ≤ shipped's" + (f" + {marks_slack:g}" if marks_slack else ""),
            abs(ca["marks"] - h["marks"]) <= abs(sh["marks"] - h["marks"]) + marks_slack,
        )
    )
    gates += [
        (
            f"Q7 |read as metastasis ({name}) − held-out| ≤ shipped's + 0.05",
            abs(ca[name] - h[name]) <= abs(sh[name] - h[name]) + 0.05,
        )
        for name in extractors
    ]
    return gates


def rule_parser(doc: str) -> argparse.ArgumentParser:
    """The command line both burden rules share: instruments, the screen's table and the quality sets."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("held_out", type=Path)
    parser.add_argument("detector")
    parser.add_argument("cls_a")
    parser.add_argument("cls_ref")
    parser.add_argument("--screen", type=Path, required=True)
    parser.add_argument("--shipped", nargs=2, type=Path, required=True)
    parser.add_argument("--candidate", nargs=2, type=Path, required=True)
    return parser


def main() -> None:
    args = rule_parser(__doc__).parse_args()

    held, shipped, cand = screen_rows(args.screen)
    gates = [
        ("C1 in the asked class ≥ shipped + 0.15", cand["in class"] >= shipped["in class"] + 0.15),
        (
            "C2 |mean marks − held-out| ≤ shipped's − 0.5",
            abs(cand["marks"] - held["marks"]) <= abs(shipped["marks"] - held["marks"]) - 0.5,
        ),
        (
            "C3 |read as metastasis − held-out| ≤ shipped's",
            abs(cand["read"] - held["read"]) <= abs(shipped["read"] - held["read"]),
        ),
        ("C4 two-sample AUC ≤ shipped + 0.05", cand["auc"] <= shipped["auc"] + 0.05),
    ]
    print("| confirmation (1-3 requests) | held-out | shipped | candidate |\n|---|---|---|---|")
    for key in held:
        print(f"| {key} | {held[key]:.3f} | {shipped[key]:.3f} | {cand[key]:.3f} |")

    gates += quality_gates(args, LesionDetector.load(args.detector), LIGHT, 0.0)
    passed = ship_rule.print_gates("gate", gates)
    print(f"\nverdict on every numeric gate: {'ships' if passed else 'does not ship'} (pictures by eye)")


if __name__ == "__main__":
    main()
