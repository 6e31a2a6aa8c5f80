"""Lesion marks and reference readings of a model's normals and metastases under other sampler scales.

    python docs/one_command/guidance_screen.py OUT MODEL DETECTOR CLASSIFIER HELD_OUT \
        --normal 3.5 4.5 5.5 --metastasis 3:5.5 2.5:4.5 2:3.5 1.5:2.5 [-n 150]

Unlike ``docs/normal_hot_spots/guidance_marks.py``, whose scale overrides every study's, each setting
here is written into the model's sampler settings as the shipped config holds them: a normal scale is
``label_guidance.normal``; a metastasis pair ``M:B`` is ``label_guidance.metastasis`` M with
``burden_guidance[">10"]`` B, so burdens are drawn and guided as ``sample`` does. Seeds are the
guidance screens' (normals 5000000…, metastases 5100000…), none of a quality set's. Prints, per
setting, marks per study, the share the classifier reads as asked and its feature two-sample AUC
against HELD_OUT's studies of the condition, and the held-out studies' own marks per study.

    python docs/one_command/guidance_screen.py --save-to OUT MODEL --normal 4.5 --metastasis 2:3.5

saves a copy of MODEL with the chosen settings instead (the weights unchanged, new checksums and hash).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import per_condition_fidelity, two_sample_auc
from synthscan.evaluation.lesions import LesionDetector, count_lesions
from synthscan.evaluation.privacy import feature_batches
from synthscan.generator.sampling import sample_to_dataset
from synthscan.generator.storage import load_pipeline, read_card, save_model

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generator_quality import condition_fidelity

SEEDS = {"normal": 5000000, "metastasis": 5100000}


def settings(pipe, condition: str, value: str) -> None:
    """Write one screened setting into ``pipe``'s sampler config."""
    label = dict(pipe.config.get("label_guidance") or {})
    if condition == "normal":
        label["normal"] = float(value)
    else:
        scale, heavy = (float(v) for v in value.split(":"))
        label["metastasis"] = scale
        pipe.register_to_config(burden_guidance={**(pipe.config.get("burden_guidance") or {}), ">10": heavy})
    pipe.register_to_config(label_guidance=label)


def reading(detector, extractor, real_features, dataset: Dataset, condition: str) -> str:
    records = dataset.records
    marks = [found["detected"] for found in count_lesions(detector, dataset, records)]
    probabilities = feature_batches(dataset, records, extractor.probabilities)
    share = condition_fidelity(
        per_condition_fidelity(probabilities, [condition] * len(records), [None] * len(records)), {}
    )["per_condition"][condition]["share"]
    auc = two_sample_auc(real_features, feature_batches(dataset, records, extractor))
    return f"{np.mean(marks):.2f} marks per study, read as asked {share:.2f}, two-sample AUC {auc:.3f}"


def save(model: str, out: str, chosen: dict[str, list[str]]) -> None:
    pipe = load_pipeline(model)
    for condition, values in chosen.items():
        if len(values) > 1:
            sys.exit(f"--save-to takes one value per condition, got {condition} {values}")
        for value in values:
            settings(pipe, condition, value)
    save_model(pipe, out, card=read_card(pipe.path))
    config = pipe.config
    print(f"{out}: label_guidance {config.label_guidance}, burden_guidance {config.burden_guidance}")


def main() -> None:
    if sys.argv[1:2] == ["--save-to"]:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--save-to", required=True)
        parser.add_argument("model")
        parser.add_argument("--normal", nargs="*", default=[])
        parser.add_argument("--metastasis", nargs="*", default=[])
        args = parser.parse_args()
        save(args.model, args.save_to, {"normal": args.normal, "metastasis": args.metastasis})
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name in ("out", "model", "detector", "classifier", "held_out"):
        parser.add_argument(name)
    parser.add_argument("--normal", nargs="*", default=[], help="label_guidance.normal values")
    parser.add_argument("--metastasis", nargs="*", default=[], help='label_guidance.metastasis:">10" pairs')
    parser.add_argument("-n", type=int, default=150, help="samples per setting [default: 150]")
    args = parser.parse_args()
    detector, extractor = LesionDetector.load(args.detector), FeatureExtractor(args.classifier)
    held = Dataset.open(args.held_out)
    for condition, values in (("normal", args.normal), ("metastasis", args.metastasis)):
        if not values:
            continue
        real = [r for r in held.records if r.label == condition]
        held_marks = np.mean([found["detected"] for found in count_lesions(detector, held, real)])
        print(f"{condition}, held-out studies: {held_marks:.2f} marks per study (n={len(real)})", flush=True)
        real_features = feature_batches(held, real, extractor)  # once per condition, not per setting
        for value in values:
            pipe = load_pipeline(args.model)
            settings(pipe, condition, value)
            dataset = sample_to_dataset(
                pipe,
                Path(args.out) / f"{condition}_{value.replace(':', '_')}",
                condition=condition,
                n=args.n,
                seed=SEEDS[condition],
                progress=False,
            )
            found = reading(detector, extractor, real_features, dataset, condition)
            print(f"{condition} {value}: {found}", flush=True)


if __name__ == "__main__":
    main()
