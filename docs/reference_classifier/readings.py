"""How each classifier reads held-out real studies and sample sets: share classified as the intended
condition (amyloidosis = Perugini >= 2, as ``benchmarks/generator_quality.py`` counts it) and the
validation AUCs of its training run (2026-12-05).

    python docs/reference_classifier/readings.py --classifier cls_a cls_ref --data HELD_OUT SET [SET ...]

The held-out real studies' shares are what a perfect generator reaches with that classifier.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generator_quality import condition_fidelity

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import per_condition_fidelity
from synthscan.evaluation.privacy import feature_batches
from synthscan.labels import LABELS


def validation(run: Path) -> str:
    """The kept state's validation AUCs (the run's ``done`` event)."""
    for line in (run / "metrics.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "done":
            v = event["validation"]
            return (
                f"kept step {event['best_step']} of {event['steps']}: validation AUC metastasis "
                f"{v['metastasis']['auc']:.3f}, amyloidosis {v['amyloidosis']['auc']:.3f}"
            )
    return "no finished training in metrics.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--classifier", type=Path, nargs="+", required=True, help="classifier run folders")
    parser.add_argument(
        "--data", type=Path, nargs="+", required=True, help="held-out real set, then sample sets"
    )
    args = parser.parse_args()
    print("| classifier | set | " + " | ".join(LABELS) + " | overall |")
    print("|---|---|" + "---|" * (len(LABELS) + 1))
    for run in args.classifier:
        extractor = FeatureExtractor(run)
        for path in args.data:
            dataset = Dataset.open(path)
            records = dataset.records
            probabilities = feature_batches(dataset, records, extractor.probabilities)
            labels, grades = [r.label for r in records], [r.perugini_grade for r in records]
            reading = condition_fidelity(per_condition_fidelity(probabilities, labels, grades), {})
            shares = [reading["per_condition"].get(label) for label in LABELS]
            cells = [f"{s['share']:.2f} (n={s['n']})" if s else "-" for s in shares]
            print(f"| {run.name} | {path} | " + " | ".join(cells) + f" | {reading['overall']:.3f} |")
    for run in args.classifier:
        print(f"{run.name}: {validation(run)}")


if __name__ == "__main__":
    main()
