"""The rule of README.md, candidate against shipped default, one sample set per row pair.

    python docs/tracer_strength/decision.py HELD_OUT SHIPPED CANDIDATE SHIPPED_REF CANDIDATE_REF [...]

SHIPPED and CANDIDATE are `generator_quality` folders of the same seeds; *_REF their samples'
`evaluate fidelity --features cls_ref` folders. Pass one group of four per sample set. Both sets' tracer
effects are measured here, from their samples, against HELD_OUT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from synthscan.dataset import Dataset
from synthscan.evaluation.tracer import dataset_tracer_effect
from synthscan.labels import PATIENT_SOURCES

held = Dataset.open(sys.argv[1])
real_records = held.filter(source=PATIENT_SOURCES)


def row(quality: str, reference: str) -> dict:
    results = json.loads((Path(quality) / "results.json").read_text())
    ref = json.loads((Path(reference) / "results.json").read_text())
    samples = Dataset.open(Path(quality) / "synthetic")
    effect = dataset_tracer_effect(held, real_records, samples, samples.filter(source="synthetic"))
    lesions = results["lesions"]["with_lesions"]
    return {
        "DPD kept": effect["per_tracer"]["DPD"]["kept"],
        "HDP kept": effect["per_tracer"]["HDP"]["kept"],
        "image detector within conditions": results["image_detector_auc"]["within_condition"]["auc"],
        "precision (cls_a)": results["realism"]["real_vs_synthetic"]["precision"],
        "two-sample within conditions (cls_a)": results["realism"]["real_vs_synthetic"][
            "two_sample_auc_within_condition"
        ],
        "two-sample within conditions (cls_ref)": ref["real_vs_synthetic"]["two_sample_auc_within_condition"],
        "marks per metastasis sample": lesions["metastasis"]["synthetic"]["mean_detected"],
        "marks per normal sample": lesions["normal"]["synthetic"]["mean_detected"],
        "misplaced bodies": results["body_placement"]["share"],
        "memorized": results["memorization_flagged"],
        "read as asked by cls_ref: normal / metastasis / amyloidosis": " / ".join(
            f"{ref['per_condition'][c]['share_correct']:.2f}" for c in ("normal", "metastasis", "amyloidosis")
        ),
    }


def passes(s: dict, c: dict) -> dict[str, bool]:
    return {
        "DPD kept closer to 1": abs(c["DPD kept"] - 1) < abs(s["DPD kept"] - 1),
        "image detector ≤ 0.75": c["image detector within conditions"] <= 0.75,
        "precision ≥ 0.9": c["precision (cls_a)"] >= 0.9,
        "two-sample (cls_a) ≤ shipped + 0.02": c["two-sample within conditions (cls_a)"]
        <= s["two-sample within conditions (cls_a)"] + 0.02,
        "two-sample (cls_ref) ≤ shipped + 0.02": c["two-sample within conditions (cls_ref)"]
        <= s["two-sample within conditions (cls_ref)"] + 0.02,
        "marks per metastasis ≥ shipped − 0.3": c["marks per metastasis sample"]
        >= s["marks per metastasis sample"] - 0.3,
        "marks per normal ≤ shipped + 0.3": c["marks per normal sample"]
        <= s["marks per normal sample"] + 0.3,
        "misplaced ≤ 0.03": c["misplaced bodies"] <= 0.03,
        "0 memorized": c["memorized"] == 0,
    }


groups = [sys.argv[i : i + 4] for i in range(2, len(sys.argv), 4)]
verdicts = []
for shipped, candidate, shipped_ref, candidate_ref in groups:
    s, c = row(shipped, shipped_ref), row(candidate, candidate_ref)
    print(f"## {shipped} against {candidate}\n\n| measure | shipped | candidate |\n|---|---|---|")
    for key in s:
        fmt = (lambda v: f"{v:.3f}") if isinstance(s[key], float) else str
        print(f"| {key} | {fmt(s[key])} | {fmt(c[key])} |")
    checks = passes(s, c)
    print("\n" + "\n".join(f"- {name}: {'yes' if ok else '**no**'}" for name, ok in checks.items()) + "\n")
    verdicts.append(all(checks.values()))
print(f"Rule: {'passed on every set' if all(verdicts) else 'failed'} ({verdicts})")
