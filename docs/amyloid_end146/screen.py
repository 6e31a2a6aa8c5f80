"""Screen an early end for amyloidosis studies: marks, readings and each grade's two-sample AUC.

    python docs/amyloid_end146/screen.py OUT HELD_OUT DET CLS_REF [--model M ...] [-n 40]

For each model, N amyloidosis studies per Perugini grade 2 and 3 (seeds 6000000… and 6100000…, the same
for every model) into OUT/<model name>; prints lesion-detector marks per study, the share CLS_REF gives
P(amyloidosis) > 0.5, the heart box's share of the anterior counts (``amyloid_stop_rule.heart_share``) and
CLS_REF's feature two-sample AUC against HELD_OUT's studies of that grade (one stratum; held-out grades
have 17-34 studies, so it is rough).
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "normal_hot_spots"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
from amyloid_stop_rule import heart_share
from screen import screen_parser

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import two_sample_auc
from synthscan.evaluation.lesions import LesionDetector, count_lesions
from synthscan.evaluation.privacy import feature_batches
from synthscan.generator.sampling import sample_to_dataset
from synthscan.generator.storage import load_pipeline
from synthscan.labels import LABELS


def main() -> None:
    parser = screen_parser(__doc__)
    parser.add_argument("--model", nargs="+", default=["default"])
    parser.add_argument("-n", type=int, default=40)
    args = parser.parse_args()
    held = Dataset.open(args.held_out)
    detector, extractor = LesionDetector.load(args.detector), FeatureExtractor(args.classifier)
    for model in args.model:
        pipe = load_pipeline(model)
        for grade, seed in ((2, 6000000), (3, 6100000)):
            dataset = sample_to_dataset(
                pipe,
                args.out / f"{Path(model).name}_g{grade}",
                condition="amyloidosis",
                grade=grade,
                n=args.n,
                seed=seed,
                progress=False,
            )
            fake = dataset.records
            real = [r for r in held.records if r.label == "amyloidosis" and r.perugini_grade == grade]
            marks = np.mean([found["detected"] for found in count_lesions(detector, dataset, fake)])
            amyloid = feature_batches(dataset, fake, extractor.probabilities)[:, LABELS["amyloidosis"]] > 0.5
            hearts = [heart_share(s.counts) for s in dataset.iter_studies(fake)]
            auc = two_sample_auc(
                feature_batches(held, real, extractor), feature_batches(dataset, fake, extractor)
            )
            print(
                f"{Path(model).name} grade {grade}: {marks:.2f} marks per study, read as amyloidosis "
                f"{amyloid.mean():.2f}, heart share {np.median(hearts):.4f} (held-out "
                f"{np.median([heart_share(s.counts) for s in held.iter_studies(real)]):.4f}), two-sample AUC "
                f"{auc:.3f} ({len(real)} held-out, {len(fake)} samples)",
                flush=True,
            )


if __name__ == "__main__":
    main()
