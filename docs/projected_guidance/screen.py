"""Screen a guidance rule on the normals' hot spots, the metastases' lesions and the tracer's effect.

    python docs/projected_guidance/screen.py OUT HELD_OUT DET CLS_REF [RULE PARAM] [--model M]

Samples (the shipped rule without RULE) 60 normal studies (seeds 5000000…), 60 metastasis studies
(seeds 5100000…, burdens drawn) and 48 normal studies per tracer (seeds 900000…, the seeds of
``docs/tracer_effect/guidance_check.py``) into OUT, then prints lesion-detector marks per study, the
share the reference classifier reads as asked, and the tracers' effect ``kept`` against HELD_OUT's
normal studies (1 = as in real studies) and each tracer's shift: the mean over the four measures of
the samples' median difference from MDP over the real studies' (1 = as in real studies). ``kept``
saturates where the samples of two tracers barely overlap; the shift does not. Rules: ``rules.py`` of
this folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generator_quality import condition_fidelity
from rules import RULES, with_rule

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import per_condition_fidelity
from synthscan.evaluation.lesions import LesionDetector, count_lesions
from synthscan.evaluation.privacy import feature_batches
from synthscan.evaluation.tracer import soft_tissue_measures, tracer_effect, tracer_effect_text
from synthscan.generator.sampling import sample_to_dataset
from synthscan.generator.storage import load_pipeline

TRACERS, PER_TRACER = ("MDP", "HDP", "DPD"), 48


def shift_ratio(real_x, real_t, synthetic_x, synthetic_t, tracer: str, reference: str = "MDP") -> float:
    """Mean over the measures of (synthetic median shift of ``tracer`` from ``reference``) / (real one)."""

    def shift(x, t):
        return np.nanmedian(x[t == tracer], axis=0) - np.nanmedian(x[t == reference], axis=0)

    return float(np.mean(shift(synthetic_x, synthetic_t) / shift(real_x, real_t)))


def screen_parser(doc: str) -> argparse.ArgumentParser:
    """The screens' command line: OUT HELD_OUT DETECTOR CLASSIFIER (the reference classifier)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("held_out")
    parser.add_argument("detector")
    parser.add_argument("classifier")
    return parser


def main() -> None:
    parser = screen_parser(__doc__)
    parser.add_argument("rule", nargs="?", choices=RULES)
    parser.add_argument("param", nargs="?", type=float)
    parser.add_argument("--model", default=None, help="model folder [default: the shipped default]")
    args = parser.parse_args()
    pipe = load_pipeline(args.model)
    if args.rule:
        pipe = with_rule(pipe, args.rule, args.param)
    sets = {
        "normal": sample_to_dataset(pipe, args.out / "normal", condition="normal", n=60, seed=5000000),
        "metastasis": sample_to_dataset(
            pipe, args.out / "metastasis", condition="metastasis", n=60, seed=5100000
        ),
    }
    tracer_set = sample_to_dataset(
        pipe,
        args.out / "tracer_normals",
        condition="normal",
        n=PER_TRACER * len(TRACERS),
        seed=900000,
        tracer=[t for t in TRACERS for _ in range(PER_TRACER)],
    )
    detector, extractor = LesionDetector.load(args.detector), FeatureExtractor(args.classifier)
    print(f"rule: {args.rule or 'shipped'} {'' if args.param is None else args.param}")
    for label, dataset in sets.items():
        records = dataset.records
        marks = [found["detected"] for found in count_lesions(detector, dataset, records)]
        probabilities = feature_batches(dataset, records, extractor.probabilities)
        reading = condition_fidelity(
            per_condition_fidelity(probabilities, [r.label for r in records], [None] * len(records)), {}
        )
        print(
            f"{label}: lesion marks per study {np.mean(marks):.2f}, read as {label} by "
            f"{Path(args.classifier).name} {reading['per_condition'][label]['share']:.2f} (n={len(records)})"
        )
    held = Dataset.open(args.held_out)
    real = [r for r in held.records if r.tracer and r.label == "normal"]
    synthetic = tracer_set.records
    real_x = np.array([soft_tissue_measures(s.counts) for s in held.iter_studies(real)])
    synthetic_x = np.array([soft_tissue_measures(s.counts) for s in tracer_set.iter_studies(synthetic)])
    real_t, synthetic_t = [r.tracer for r in real], [r.tracer for r in synthetic]
    effect = tracer_effect(
        real_x,
        real_t,
        [r.patient_id for r in real],
        ["normal"] * len(real),
        synthetic_x,
        synthetic_t,
        ["normal"] * len(synthetic),
    )
    print("\n".join(tracer_effect_text(effect)))
    for tracer in TRACERS[1:]:
        ratio = shift_ratio(real_x, np.array(real_t), synthetic_x, np.array(synthetic_t), tracer)
        print(f"{tracer} shift from MDP, samples over real (1 = as real): {ratio:.2f}")


if __name__ == "__main__":
    main()
