"""Lesion-detector marks and the reference classifier's reading of normal samples by guidance scale.

    python docs/normal_hot_spots/guidance_marks.py OUT DETECTOR CLASSIFIER [SCALES ...] [--model M] [--steps N]
        [--ddim] [--no-calibration] [--stop-at T] [-n 60] [--real HELD_OUT]

N normal samples (seeds 5000000…, the normals of ``docs/projected_guidance/screen.py``; with
``--condition metastasis`` its metastases, seeds 5100000…) per scale [default: 1 and the model's own],
written to OUT/g<scale>; prints marks per study and the share the classifier reads as asked. Beside ``where_spots_arise.py``: is the samples' excess of marks over its
SDEdit rows the guidance's, or the pipeline's? With ``--real``, also the classifier's feature
two-sample AUC of the samples against HELD_OUT's studies of the condition (``two_sample_auc``, as
``generator_quality``'s, one stratum) and the tracers' shift from MDP (``screen.py``'s ``shift_ratio``;
the samples' tracers drawn in the model's mix).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from diffusers import DDIMScheduler

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import per_condition_fidelity, two_sample_auc
from synthscan.evaluation.lesions import LesionDetector, count_lesions
from synthscan.evaluation.privacy import feature_batches
from synthscan.evaluation.tracer import soft_tissue_measures
from synthscan.generator.sampling import sample_to_dataset
from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generator_quality import condition_fidelity

sys.path.insert(0, str(Path(__file__).resolve().parent))
from normal_stop import sigma_at

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "projected_guidance"))
from screen import shift_ratio


def comparison(extractor: FeatureExtractor, held: Dataset, dataset: Dataset, condition: str) -> str:
    """Two-sample AUC against the held-out studies of ``condition``, and each tracer's shift from MDP."""
    real = [r for r in held.records if r.label == condition]
    fake = dataset.records
    auc = two_sample_auc(feature_batches(held, real, extractor), feature_batches(dataset, fake, extractor))
    out = [f"two-sample AUC {auc:.3f} (real {len(real)})"]
    real_x = np.array([soft_tissue_measures(s.counts) for s in held.iter_studies(real)])
    fake_x = np.array([soft_tissue_measures(s.counts) for s in dataset.iter_studies(fake)])
    real_t, fake_t = np.array([r.tracer for r in real]), np.array([r.tracer for r in fake])
    for tracer in ("HDP", "DPD"):
        out.append(f"{tracer} shift {shift_ratio(real_x, real_t, fake_x, fake_t, tracer):.2f}")
    return ", ".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("detector")
    parser.add_argument("classifier")
    parser.add_argument("scales", nargs="*", type=float)
    parser.add_argument("--model", default=None)
    parser.add_argument("--condition", default="normal", choices=["normal", "metastasis"])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--ddim", action="store_true", help="sample with diffusers' DDIMScheduler instead")
    parser.add_argument("--no-calibration", action="store_true", help="decode without the rate calibration")
    parser.add_argument(
        "--stop-at",
        type=int,
        default=None,
        help="end on the denoised estimate of the first step at timestep <= T (the sampler setting "
        "label_final_sigma: no network call for the later steps)",
    )
    parser.add_argument("-n", type=int, default=60, help="samples per scale [default: 60]")
    parser.add_argument("--real", default=None, help="held-out studies for the two-sample AUC and shifts")
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    held = Dataset.open(args.real) if args.real else None
    if args.ddim:
        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    if args.no_calibration:
        pipe.register_to_config(rate_calibration=None)
    if args.stop_at is not None:  # the sampler setting, for every study of the run
        pipe.register_to_config(label_final_sigma={args.condition: sigma_at(pipe, args.stop_at)})
    detector, extractor = LesionDetector.load(args.detector), FeatureExtractor(args.classifier)
    for scale in args.scales or [1.0, pipe.guidance_for(args.condition)]:
        dataset = sample_to_dataset(
            pipe,
            args.out / f"g{scale:g}",
            condition=args.condition,
            n=args.n,
            seed=5000000 if args.condition == "normal" else 5100000,
            guidance=scale,
            steps=args.steps,
            progress=False,
        )
        records = dataset.records
        marks = [found["detected"] for found in count_lesions(detector, dataset, records)]
        probabilities = feature_batches(dataset, records, extractor.probabilities)
        reading = condition_fidelity(
            per_condition_fidelity(probabilities, [args.condition] * len(records), [None] * len(records)), {}
        )
        print(
            f"{args.condition}, guidance {scale:g}: {np.mean(marks):.2f} marks per study, read as "
            f"{args.condition} by {Path(args.classifier).name} "
            f"{reading['per_condition'][args.condition]['share']:.2f} (n={len(records)})"
            + ("" if held is None else "; " + comparison(extractor, held, dataset, args.condition)),
            flush=True,
        )


if __name__ == "__main__":
    main()
