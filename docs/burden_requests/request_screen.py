"""What a `--burden` request gives: detected lesions, burden class, reading and two-sample AUC per class.

    python docs/burden_requests/request_screen.py OUT HELD_OUT DETECTOR CLASSIFIER --burden 1-3
        [--burden 4-10 ...]
        [--model M [M ...]] [--guidance G [G ...]] [--contrast LAM [LAM ...] --away 4-10]
        [--extrapolate LAM [LAM ...] --away 4-10] [-n 40] [--seed 6100000]

For each model (its own guidance), each ``--guidance`` scale and each sampler variant, samples ``-n``
metastasis studies asking for the burden (seeds ``--seed``…, the same for every variant) into
OUT/<variant>, and prints one table row: lesion-detector marks per study (median, mean), the share whose
count falls in the asked class (held-out studies of that class in a row of their own), the share
the classifier reads as metastasis, and its feature two-sample AUC against the held-out metastases of
that class (``two_sample_auc``, one stratum).

Variants that ask the network to separate the asked class from another (``--away``), neither a shipped
setting: ``--contrast LAM`` adds ``LAM · (c(asked) − c(away))`` to the guided output on guided steps (two
more network rows per study there); ``--extrapolate LAM`` moves the asked class's burden embedding to
``e(asked) + LAM · (e(asked) − e(away))``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import per_condition_fidelity, two_sample_auc
from synthscan.evaluation.lesions import LesionDetector, count_lesions, requested_burden
from synthscan.generator.conditions import FACTORS, burden_class
from synthscan.evaluation.privacy import feature_batches
from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.sampling import sample_to_dataset
from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from generator_quality import condition_fidelity


@contextlib.contextmanager
def contrast(pipe: SynthScanPipeline, asked: str, away: str, lam: float) -> Iterator[None]:
    """Guided steps of studies asking for ``asked`` add ``lam`` times the conditional outputs' difference
    between ``asked`` and ``away`` (every other factor kept)."""
    # class ids are (condition, *FACTORS) in the encoder's order; pipe.factors is the saved config's
    table, column = pipe.factors["burden"], 1 + list(FACTORS).index("burden")
    plain = pipe._guided_output

    def guided(x, t, labels, nulls, guidance=None):
        out = plain(x, t, labels, nulls, guidance)
        rows = labels[:, column] == table.index(asked)
        if guidance is None or not rows.any():
            return out
        other = labels.clone()
        other[:, column] = table.index(away)
        ids = pipe._class_input(torch.cat([labels, other]))
        wanted, avoided = pipe.unet(torch.cat([x, x]), t.expand(2 * len(x)), class_labels=ids).sample.chunk(2)
        return out + lam * rows[:, None, None, None].to(out.dtype) * (wanted - avoided)

    pipe._guided_output = guided
    try:
        yield
    finally:
        del pipe._guided_output


@contextlib.contextmanager
def extrapolate(pipe: SynthScanPipeline, asked: str, away: str, lam: float) -> Iterator[None]:
    """The ``asked`` burden's embedding row moved ``lam`` times its difference from ``away``'s."""
    table, weight = pipe.factors["burden"], pipe.condition_encoder.embeddings["burden"].weight
    kept = weight.data.clone()
    i, j = table.index(asked), table.index(away)
    weight.data[i] = kept[i] + lam * (kept[i] - kept[j])
    try:
        yield
    finally:
        weight.data.copy_(kept)


def marks(detector: LesionDetector, dataset: Dataset, records: list) -> list[int]:
    """Lesion-detector marks of each study."""
    return [r["detected"] for r in count_lesions(detector, dataset, records)]


def in_asked_class(found: list[int], records: list) -> float:
    """Share of studies whose detected count falls in their own burden class."""
    return float(
        np.mean([burden_class(m, False) == requested_burden(r) for m, r in zip(found, records, strict=True)])
    )


def read_as_metastasis(extractor: FeatureExtractor, dataset: Dataset, records: list) -> float:
    """Share the classifier reads as metastasis (``generator_quality``'s counting)."""
    probabilities = feature_batches(dataset, records, extractor.probabilities)
    labels = ["metastasis"] * len(records)
    reading = condition_fidelity(per_condition_fidelity(probabilities, labels, [None] * len(records)), {})
    return reading["per_condition"]["metastasis"]["share"]


def row(detector: LesionDetector, extractor: FeatureExtractor, dataset: Dataset, records: list) -> str:
    """Marks per study (median / mean), the share in the asked class and the share read as metastasis,
    as table cells."""
    found = marks(detector, dataset, records)
    return (
        f"{np.median(found):g} / {np.mean(found):.2f} | {in_asked_class(found, records):.2f} "
        f"(n = {len(records)}) | {read_as_metastasis(extractor, dataset, records):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("held_out")
    parser.add_argument("detector")
    parser.add_argument("classifier")
    parser.add_argument("--burden", action="append", required=True, help="asked burden class (repeatable)")
    parser.add_argument("--model", nargs="+", default=["default"])
    parser.add_argument(
        "--guidance", nargs="*", type=float, default=[], help="scales beside each model's own"
    )
    parser.add_argument("--contrast", nargs="*", type=float, default=[])
    parser.add_argument("--extrapolate", nargs="*", type=float, default=[])
    parser.add_argument("--away", default="4-10", help="the class --contrast and --extrapolate move from")
    parser.add_argument("-n", type=int, default=40)
    parser.add_argument("--seed", type=int, default=6100000)
    args = parser.parse_args()

    held = Dataset.open(args.held_out)
    detector, extractor = LesionDetector.load(args.detector), FeatureExtractor(args.classifier)
    print(
        "| model | asked | variant | marks per study: median / mean | in the asked class "
        "| read as metastasis | two-sample AUC against held-out of the class |"
    )
    print("|---|---|---|---|---|---|---|")
    pipes = [load_pipeline(model) for model in args.model]
    for burden in args.burden:
        real = [r for r in held.records if r.label == "metastasis" and requested_burden(r) == burden]
        real_features = feature_batches(held, real, extractor)
        print(f"| held-out studies | {burden} | | {row(detector, extractor, held, real)} | |")
        for pipe in pipes:
            name = Path(pipe.path).name
            variants = [("own guidance", None, contextlib.nullcontext())]
            variants += [(f"guidance {g:g}", g, contextlib.nullcontext()) for g in args.guidance]
            variants += [
                (f"contrast {lam:g} from {args.away}", None, contrast(pipe, burden, args.away, lam))
                for lam in args.contrast
            ]
            variants += [
                (f"embedding {lam:g} from {args.away}", None, extrapolate(pipe, burden, args.away, lam))
                for lam in args.extrapolate
            ]
            for variant, guidance, context in variants:
                folder = (
                    args.out
                    / f"{name}_{burden.replace('>', 'gt')}_{variant.replace(' ', '_').replace('>', 'gt')}"
                )
                with context:
                    dataset = sample_to_dataset(
                        pipe,
                        folder,
                        condition="metastasis",
                        n=args.n,
                        seed=args.seed,
                        burden=burden,
                        guidance=guidance,
                        progress=False,
                    )
                auc = two_sample_auc(real_features, feature_batches(dataset, dataset.records, extractor))
                print(
                    f"| {name} | {burden} | {variant} | {row(detector, extractor, dataset, dataset.records)} "
                    f"| {auc:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
