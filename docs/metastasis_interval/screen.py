"""Screen metastasis guidance intervals: lesions, burden classes, reading, two-sample AUC, network rows.

    python docs/metastasis_interval/screen.py OUT HELD_OUT DET CLS_REF --model M [M ...] [-n 150]

Samples N metastasis studies per model (seeds 5100000…, the metastases of
``docs/projected_guidance/screen.py``; each model's own guidance, burden guidance included, and burdens
drawn in its mix) into OUT/<model name>, then prints the network rows a metastasis study costs, the
lesion-detector marks per study and each burden class's share of samples whose count falls in it
(``lesion_fidelity``, held-out metastases beside), the share the reference classifier reads as
metastasis, and its feature two-sample AUC against HELD_OUT's metastases with the tracers' shifts
(``guidance_marks.py``'s ``comparison``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "normal_hot_spots"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
from generator_quality import condition_fidelity
from guidance_marks import comparison
from screen import screen_parser

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import per_condition_fidelity
from synthscan.evaluation.lesions import LesionDetector, lesion_fidelity
from synthscan.evaluation.privacy import feature_batches
from synthscan.generator.sampling import sample_to_dataset
from synthscan.generator.storage import load_pipeline


def rows_per_study(pipe, label: str) -> int:
    """Network rows one study of ``label`` costs: two per guided step, one per other step (all steps:
    labels without an early end, as metastases)."""
    steps = pipe.config.default_steps
    return sum(2 if pipe.guided_step(i, steps, label) else 1 for i in range(steps))


def main() -> None:
    parser = screen_parser(__doc__)
    parser.add_argument("--model", nargs="+", required=True)
    parser.add_argument("-n", type=int, default=150, help="samples per model [default: 150]")
    args = parser.parse_args()
    held = Dataset.open(args.held_out)
    real = [r for r in held.records if r.label == "metastasis"]
    detector, extractor = LesionDetector.load(args.detector), FeatureExtractor(args.classifier)
    for model in args.model:
        pipe = load_pipeline(model)
        name = Path(pipe.path).name
        dataset = sample_to_dataset(
            pipe, args.out / name, condition="metastasis", n=args.n, seed=5100000, progress=False
        )
        records = dataset.records
        lesions = lesion_fidelity(detector, held, real, dataset, records)
        found = lesions["with_lesions"]["metastasis"]
        probabilities = feature_batches(dataset, records, extractor.probabilities)
        reading = condition_fidelity(
            per_condition_fidelity(probabilities, ["metastasis"] * len(records), [None] * len(records)), {}
        )
        burdens = ", ".join(
            f"{b} {sides['synthetic']['share']:.2f} (n={sides['synthetic']['n']}; held-out "
            f"{sides['real']['share']:.2f})"
            for b, sides in lesions["burden"].items()
            if b != "superscan" and "synthetic" in sides and "real" in sides
        )
        print(
            f"{name}: {rows_per_study(pipe, 'metastasis')} rows per metastasis; "
            f"{found['synthetic']['mean_detected']:.2f} marks per study (held-out "
            f"{found['real']['mean_detected']:.2f}); count in the asked burden class: {burdens}; "
            f"read as metastasis {reading['per_condition']['metastasis']['share']:.2f}; "
            f"{comparison(extractor, held, dataset, 'metastasis')} (n={len(records)})",
            flush=True,
        )


if __name__ == "__main__":
    main()
