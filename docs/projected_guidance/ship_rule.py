"""The ship rule of this folder's README (guidance from later steps) on two quality sets.

    python docs/projected_guidance/ship_rule.py HELD_OUT --shipped S1 S2 --candidate C1 C2

Each S/C is a ``benchmarks/generator_quality.py --out`` folder with its ``synthetic`` samples (same seeds
for both models). Prints the two-set means and every numeric gate; memorization flags, realism and the
pictures are checked by eye (item 8).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "longer_distillation"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from decision import measures
from quality_table import load
from screen import shift_ratio

from synthscan.dataset import Dataset
from synthscan.evaluation.tracer import soft_tissue_measures
from synthscan.labels import LABELS


def normal_measures(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The four log ratios and the tracer of each normal study with a tracer."""
    records = [r for r in dataset.records if r.label == "normal" and r.tracer]
    x = np.array([soft_tissue_measures(s.counts) for s in dataset.iter_studies(records)])
    return x, np.array([r.tracer for r in records])


def set_measures(folder: str, real: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    r = load(folder)
    reading = r["reference_classifier"]["per_condition"]
    x, t = normal_measures(Dataset.open(Path(folder) / "synthetic"))
    dpd = r["tracer_effect"]["per_tracer"].get("DPD", {})
    return {
        **measures(r),
        "read as normal (cls_ref)": reading["normal"]["share_correct"],
        "read as metastasis (cls_ref)": reading["metastasis"]["share_correct"],
        "DPD kept": dpd.get("kept", float("nan")),
        "DPD shift ratio, normals": shift_ratio(*real, x, t, "DPD"),
    }


def mean_over_sets(folders: list[str], real: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    sets = [set_measures(f, real) for f in folders]
    return {
        k: (sum(s[k] for s in sets) if k.startswith("memorization") else np.mean([s[k] for s in sets]))
        for k in sets[0]
    }


def main(
    doc: str = __doc__,
    extra_rows=None,
    extra_gains=None,
    pooled_reference: bool = True,
    marks_gate=None,
    cls_a_margin: float = 0.02,
) -> tuple[dict, dict, bool]:
    """Parse the command line, print the two-set means and the rule; return the shipped and candidate
    means and whether items 1-7's numeric gates passed. ``extra_rows(folder, real)`` adds measures per set
    (averaged over the two), ``extra_gains(s, c)`` gains before item 1's own; ``pooled_reference=False`` leaves item 3's
    reference-classifier gate to the caller (``docs/amyloid_end146/confirm_rule.py`` gates it per
    condition); ``marks_gate(s, c)``, a (name, passed) pair, replaces item 6's gate on the marks per
    metastasis (``docs/new_simulator/confirm_rule.py`` measures it against the held-out studies);
    ``cls_a_margin`` is item 3's allowance on ``cls_a``'s two-sample AUC (``docs/fast_early_end/``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("held_out")
    parser.add_argument("--shipped", nargs=2, required=True)
    parser.add_argument("--candidate", nargs=2, required=True)
    args = parser.parse_args()
    real = normal_measures(Dataset.open(args.held_out))
    s, c = mean_over_sets(args.shipped, real), mean_over_sets(args.candidate, real)
    if extra_rows is not None:
        for row, folders in ((s, args.shipped), (c, args.candidate)):
            sets = [extra_rows(folder, real) for folder in folders]
            row.update({key: float(np.mean([m[key] for m in sets])) for key in sets[0]})
    print("| two-set mean | shipped | candidate |\n|---|---|---|")
    for key in s:
        print(f"| {key} | {s[key]:.3f} | {c[key]:.3f} |")
    found = [*(extra_gains(s, c) if extra_gains else []), *gains(s, c)]
    passed = print_rule(s, c, found, pooled_reference, marks_gate, cls_a_margin)
    return s, c, passed


def gains(s: dict[str, float], c: dict[str, float]) -> list[tuple[str, bool]]:
    """Item 1's gains on a gap: (name, met) for candidate ``c`` against shipped ``s``."""
    return [
        (
            "two-sample within, cls_ref ≤ shipped − 0.02",
            c["two-sample within, cls_ref"] <= s["two-sample within, cls_ref"] - 0.02,
        ),
        (
            "read as normal (cls_ref) ≥ shipped + 0.05",
            c["read as normal (cls_ref)"] >= s["read as normal (cls_ref)"] + 0.05,
        ),
        (
            "marks per normal ≤ shipped − 0.3",
            c["lesion marks per normal"] <= s["lesion marks per normal"] - 0.3,
        ),
        ("DPD |kept − 1| ≤ shipped's − 0.2", abs(c["DPD kept"] - 1) <= abs(s["DPD kept"] - 1) - 0.2),
        (
            "DPD |shift − 1| ≤ shipped's − 0.3",
            abs(c["DPD shift ratio, normals"] - 1) <= abs(s["DPD shift ratio, normals"] - 1) - 0.3,
        ),
    ]


def print_gates(title: str, gates: list[tuple[str, bool]]) -> bool:
    """Print ``gates`` as a Markdown table headed ``title``; whether every one passed."""
    print(f"\n| {title} | passed |\n|---|---|")
    print("\n".join(f"| {name} | {'yes' if ok else '**no**'} |" for name, ok in gates))
    return all(ok for _, ok in gates)


def print_rule(
    s: dict[str, float],
    c: dict[str, float],
    found: list[tuple[str, bool]],
    pooled_reference: bool = True,
    marks_gate=None,
    cls_a_margin: float = 0.02,
) -> bool:
    """Print the gains ``found``, items 1-7's gates (item 3's reference gate only if ``pooled_reference``)
    and the verdict; return it."""
    gates = [
        ("1. a gain on a gap", any(ok for _, ok in found)),
        (
            "2. detector within ≤ shipped + 0.05 and ≤ 0.75",
            c["detector within"] <= min(s["detector within"] + 0.05, 0.75),
        ),
        (
            f"3. two-sample within, cls_a ≤ shipped + {cls_a_margin:g}",
            c["two-sample within, cls_a"] <= s["two-sample within, cls_a"] + cls_a_margin,
        ),
        *(
            [
                (
                    "3. two-sample within, cls_ref ≤ shipped",
                    c["two-sample within, cls_ref"] <= s["two-sample within, cls_ref"],
                )
            ]
            if pooled_reference
            else []
        ),
        ("4. precision ≥ 0.90, recall ≥ 0.95", c["precision"] >= 0.90 and c["recall"] >= 0.95),
        *(
            (
                f"5. read as asked (cls_a): {k} ≥ shipped − 0.05",
                c[f"read as asked (cls_a): {k}"] >= s[f"read as asked (cls_a): {k}"] - 0.05,
            )
            for k in LABELS
        ),
        (
            "5. read as metastasis (cls_ref) ≥ shipped − 0.05",
            c["read as metastasis (cls_ref)"] >= s["read as metastasis (cls_ref)"] - 0.05,
        ),
        (
            "6. marks per normal ≤ shipped + 0.3",
            c["lesion marks per normal"] <= s["lesion marks per normal"] + 0.3,
        ),
        marks_gate(s, c)
        if marks_gate
        else (
            "6. marks per metastasis ≥ shipped − 0.3",
            c["lesion marks per metastasis"] >= s["lesion marks per metastasis"] - 0.3,
        ),
        ("7. misplaced bodies ≤ shipped + 0.02", c["misplaced bodies"] <= s["misplaced bodies"] + 0.02),
    ]
    print("\n| gain (item 1) | met |\n|---|---|")
    print("\n".join(f"| {name} | {'yes' if ok else 'no'} |" for name, ok in found))
    verdict = print_gates("gate", gates)
    print(
        f"\nnumeric gates: {'all passed' if verdict else 'failed'}; item 8 (flags, realism, pictures) by eye"
    )
    return verdict


if __name__ == "__main__":
    main()
