"""Quality of a generator: condition fidelity, realism and memorization, measured against real data.

    python benchmarks/generator_quality.py --train TRAIN --real HELD_OUT --classifier RUN --out REPORT \
        [--model DIR] [-n 100] [--seed 0] [--steps N] [--precision bf16] [--detector-repeats K]
        [--lesion-detector DIR] [--reference-classifier RUN2]

- TRAIN: the generator's training set (the memorization audit compares samples with it);
- HELD_OUT: real (or simulated) studies of the same site the generator never saw;
- RUN: a classifier trained on real studies (`synthscan classifier train`), never on synthetic ones.

Samples ``n`` studies per condition (amyloidosis split over the model's grades) and reports:

- condition fidelity: the share of samples the classifier assigns to the requested condition
  (normal, metastasis, amyloidosis with Perugini grade >= 2 — the classifier's amyloidosis output), next
  to the same share on HELD_OUT, which bounds what a perfect generator could reach; and, per Perugini
  grade, the mean amyloidosis probability and the share classified amyloidosis (both should rise
  with the grade, like HELD_OUT's); for models with tracer conditions, how strongly each tracer's
  effect (bone-to-soft-tissue ratios against the most common tracer's) shows in the samples against
  HELD_OUT, within conditions (``tracer_effect``, :mod:`synthscan.evaluation.tracer`);
- realism: Fréchet distance, precision/recall/density/coverage and a classifier two-sample test on the
  classifier's penultimate features, each beside a real-vs-real baseline (`synthscan evaluate fidelity`);
  the two-sample AUC also within conditions (only studies of one condition compared), since the samples
  are drawn a third per condition and HELD_OUT is mostly normal: that mix alone separates the sets;
- ``image_detector_auc``: a small CNN trained from scratch to tell the samples from HELD_OUT's studies
  on the count images themselves, cross-validated patient-disjointly, AUC with a DeLong 95 % CI
  (:mod:`synthscan.evaluation.detector`; 0.5 = indistinguishable, what a reader's eye approximates);
- ``body_placement``: the share of samples whose body starts half a head lower than every held-out
  study's (no head, or the body drawn down the image), per condition: the malformed samples a reader
  sees first; and (``redrawn``) the share the generator itself found misplaced against its training
  studies and drew again from their seeds, which the first share no longer shows;
  ``trunk_length``: per label, the share whose skull-to-bladder distance lies beyond the held-out
  studies' range (a trunk drawn too long starts at the right row, so body placement misses it);
- memorization: nearest-training-study distances of the samples against real-to-real ones, in image
  and feature space (`synthscan audit privacy`);
- with ``--lesion-detector`` (models trained on simulated studies): lesions, per condition the share of
  samples with a detected hot lesion and per requested burden the share whose lesion count falls in
  it, beside the held-out studies (:mod:`synthscan.evaluation.lesions`). Unlike the classifier, which
  also reacts to global changes, it answers "does a metastasis sample show metastases, and how many";
- with ``--reference-classifier`` (a longer-trained classifier, ``configs/classifier/reference.yaml``):
  its feature metrics and its reading of each condition beside the held-out studies', under
  ``reference_classifier`` (RUN's features know less of what a lesion looks like:
  ``docs/reference_classifier``).

Writes ``report.md`` (the section the model card quotes), ``results.json`` and the plots of both tools.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.detector import DetectorConfig, repeats_text, within_condition_text
from synthscan.evaluation.fidelity import (
    body_placement_text,
    by_condition_text,
    classifier_model,
    evaluate_fidelity,
    fidelity_records,
    model_fidelity,
    trunk_length_text,
    write_fidelity_report,
)
from synthscan.evaluation.lesions import (
    LesionDetector,
    LesionDetectorConfig,
    lesion_markdown,
    train_detector_run,
)
from synthscan.evaluation.privacy import run_audit
from synthscan.evaluation.privacy import write_report as write_audit_report
from synthscan.evaluation.tracer import tracer_effect_text
from synthscan.generator.conditions import split_key
from synthscan.generator.sampling import sample_to_dataset, sampler_settings
from synthscan.generator.storage import load_pipeline


def condition_fidelity(per_condition: dict, ordering: dict) -> dict:
    """The classifier's reading (:func:`per_condition_fidelity`, :func:`grade_ordering`) in this report's
    layout: share and Wilson CI per condition, mean probability and share per Perugini grade, overall.

    Since 2026-12-05 an amyloidosis study without a grade counts as amyloidosis (before: as normal), only
    patient and simulated studies of HELD_OUT are read (as `evaluate fidelity` does), and grades are listed
    once three graded amyloidosis studies exist: older reports differ where a set has such studies."""
    scored = sum(row["n"] for row in per_condition.values())
    by_grade = ordering.get("by_grade", {})
    means = ordering.get("mean_amyloidosis_probability", {})
    return {
        "per_condition": {
            label: {"n": row["n"], "share": row["share_correct"], "ci95": row["ci95"]}
            for label, row in per_condition.items()
        },
        "amyloidosis_by_grade": {
            grade: {"n": row["n"], "mean_probability": means[grade], "share": row["share"]}
            for grade, row in by_grade.items()
        },
        "overall": sum(row["share_correct"] * row["n"] for row in per_condition.values()) / scored
        if scored
        else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("--train", required=True, help="the generator's training dataset")
    parser.add_argument("--real", required=True, help="held-out real studies of the training site")
    parser.add_argument("--classifier", required=True, help="classifier run trained on real studies")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("-n", type=int, default=100, help="samples per condition")
    parser.add_argument("--seed", type=int, default=0, help="first sample seed")
    parser.add_argument("--steps", type=int, default=None, help="sampler steps [default: the model's]")
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default="fp32",
        help="arithmetic of the UNet and decoder while sampling (autocast) [default: fp32]",
    )
    parser.add_argument(
        "--detector-repeats",
        type=int,
        default=1,
        help="cross-validations of the image detector with fresh folds and seeds; above 1 the AUC is "
        "that of their averaged scores (a stronger detector than one training), each training's AUC, "
        "mean and SD beside it [default: 1]",
    )
    parser.add_argument(
        "--reference-classifier",
        default=None,
        help="a second classifier run (e.g. trained with `--config reference`) whose feature metrics and "
        "reading of each condition are reported beside RUN's [default: none]",
    )
    parser.add_argument(
        "--lesion-detector",
        default=None,
        help="lesion detector folder: loaded if saved there, else trained on TRAIN's lesion ground truth"
        " (simulated studies) and saved there [default: no lesion measures]",
    )
    args = parser.parse_args()
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.detector_repeats < 1:
        parser.error("--detector-repeats must be at least 1")

    out = Path(args.out)
    real, train = Dataset.open(args.real), Dataset.open(args.train)
    lesions = lesion_detector(Path(args.lesion_detector), train) if args.lesion_detector else None
    # classifiers loaded before sampling, so a wrong run folder fails in seconds, not after the samples
    extractor = FeatureExtractor(args.classifier)
    reference = classifier_model(args.reference_classifier) if args.reference_classifier else None
    pipeline = load_pipeline(args.model, precision=args.precision)
    synthetic_root = out / "synthetic"
    for offset, label in enumerate(pipeline.labels):
        grades = sorted({split_key(k)[1] for k in pipeline.config.conditions if split_key(k)[0] == label})
        for g, grade in enumerate(grades if label == "amyloidosis" else [None]):
            n = args.n // len(grades) if label == "amyloidosis" else args.n
            seed = args.seed + 1_000_000 * offset + 100_000 * g
            sample_to_dataset(
                pipeline,
                synthetic_root,
                condition=label,
                grade=grade,
                n=n,
                seed=seed,
                steps=args.steps,
                add_condition=True,
            )
    synthetic = Dataset.open(synthetic_root)

    settings = sampler_settings(pipeline, args.steps, None)  # what every sample was drawn with
    results = {
        "model": args.model or "shipped default (synthscan/models/default)",
        "model_sha256": pipeline.sha256,
        "steps": settings["steps"],
        "precision": args.precision,
        "guidance": settings["guidance"],
        "burden_guidance": settings.get("burden_guidance", {}),
        "grade_guidance": settings.get("grade_guidance", {}),
    }
    fidelity = evaluate_fidelity(
        real,
        synthetic,
        model=classifier_model(args.classifier, extractor),
        detector=DetectorConfig(seed=args.seed, repeats=args.detector_repeats),
        lesions=lesions,
    )
    results["condition_fidelity"] = {
        "synthetic": condition_fidelity(fidelity["per_condition"], fidelity.get("grade_ordering", {})),
        "held_out_real": condition_fidelity(
            fidelity["real_per_condition"], fidelity.get("real_grade_ordering", {})
        ),
    }
    write_fidelity_report(fidelity, out / "fidelity", str(real.root), str(synthetic.root))
    results["realism"] = {
        k: fidelity[k] for k in ("features", "real_vs_real", "real_vs_synthetic", "caveats")
    }
    results["image_detector_auc"] = fidelity["image_detector"]
    results["body_placement"] = fidelity["body_placement"]
    results["trunk_length"] = fidelity["trunk_length"]
    if fidelity.get("tracer_effect"):
        results["tracer_effect"] = fidelity["tracer_effect"]
    audit = run_audit(train, synthetic, features=extractor, holdout=real)
    write_audit_report(audit, train, synthetic, out / "privacy")
    results["memorization"] = [space.summary() for space in audit.spaces]
    results["memorization_flagged"] = len(audit.flagged)
    if lesions is not None:
        results["lesions"] = fidelity["lesions"]
    if reference is not None:
        real_records, fake_records = fidelity_records(real, synthetic)
        reading = model_fidelity(real, real_records, synthetic, fake_records, reference)
        keys = ("features", "real_vs_real", "real_vs_synthetic", "per_condition", "real_per_condition")
        results["reference_classifier"] = {key: reading[key] for key in keys}
    (out / "results.json").write_text(json.dumps(results, indent=2, default=float) + "\n")
    (out / "report.md").write_text(markdown(results, len(synthetic)) + "\n")
    print((out / "report.md").read_text())


def lesion_detector(folder: Path, train: Dataset) -> LesionDetector:
    """The detector saved in ``folder``, or one trained on ``train`` there (as `evaluate lesion-detector`)."""
    if not LesionDetector.is_saved(folder):
        train_detector_run(train, LesionDetectorConfig(), folder)
    return LesionDetector.load(folder)


def markdown(results: dict, n_synthetic: int) -> str:
    synthetic = results["condition_fidelity"]["synthetic"]
    real = results["condition_fidelity"]["held_out_real"]
    lines = [
        f"## Quality ({n_synthetic} samples, {results['steps']} steps, guidance "
        + ", ".join(f"{label} {g:g}" for label, g in results["guidance"].items())
        + "".join(f", burden {b} {g:g}" for b, g in results.get("burden_guidance", {}).items())
        + "".join(f", Perugini {k} {g:g}" for k, g in results.get("grade_guidance", {}).items())
        + ("" if results.get("precision", "fp32") == "fp32" else f", {results['precision']} autocast")
        + ")",
        "",
        "Condition fidelity: share assigned to the requested condition by a classifier trained on real"
        " studies (amyloidosis = Perugini >= 2; grade-1 samples are scored by grade ordering only).",
        "",
        "| condition | synthetic [Wilson 95 % CI] | held-out real (classifier ceiling) |",
        "|---|---|---|",
    ]
    for label, row in synthetic["per_condition"].items():
        ref = real["per_condition"].get(label, {})
        low, high = row["ci95"]
        lines.append(
            f"| {label} | {row['share']:.3f} [{low:.3f}, {high:.3f}] (n={row['n']}) | "
            f"{ref.get('share', float('nan')):.3f} (n={ref.get('n', 0)}) |"
        )
    lines.append(f"| all | {synthetic['overall']:.3f} | {real['overall']:.3f} |")
    lines += [
        "",
        "Amyloidosis by Perugini grade: mean P(amyloidosis) and share classified amyloidosis (it should"
        " rise with the grade):",
        "",
        "| grade | synthetic P | synthetic share | held-out real P | held-out real share |",
        "|---|---|---|---|---|",
    ]
    for grade, row in synthetic["amyloidosis_by_grade"].items():
        ref = real["amyloidosis_by_grade"].get(grade, {"n": 0, "mean_probability": np.nan, "share": np.nan})
        lines.append(
            f"| {grade} | {row['mean_probability']:.3f} | {row['share']:.3f} (n={row['n']}) | "
            f"{ref['mean_probability']:.3f} | {ref['share']:.3f} (n={ref['n']}) |"
        )
    if "tracer_effect" in results:
        lines += ["", *tracer_effect_text(results["tracer_effect"])]
    lines.append("")
    rr, rs = results["realism"]["real_vs_real"], results["realism"]["real_vs_synthetic"]
    lines += [
        f"Realism on {results['realism']['features']}:",
        "",
        "| metric | real vs real | real vs synthetic |",
        "|---|---|---|",
        *[
            f"| {k} | {rr[k]:.4g} | {rs[k]:.4g} |"
            for k in ("frechet", "precision", "recall", "two_sample_auc", "two_sample_auc_within_condition")
            if k in rr and k in rs
        ],
        "",
        *([text, ""] if (text := by_condition_text(rr, rs)) else []),
        *[f"Caveat: {caveat}.\n" for caveat in results["realism"].get("caveats", [])],
        "Image-space detector (CNN on the count images, patient-disjoint {folds}-fold CV): AUC {auc:.3f}"
        " [DeLong 95 % CI {lo:.3f}, {hi:.3f}] ({n_synthetic} samples vs {n_real} held-out studies;"
        " 0.5 = indistinguishable).".format(
            lo=results["image_detector_auc"]["ci95"][0],
            hi=results["image_detector_auc"]["ci95"][1],
            **results["image_detector_auc"],
        )
        + within_condition_text(results["image_detector_auc"])
        + repeats_text(results["image_detector_auc"]),
        "",
        body_placement_text(results["body_placement"]),
        "",
        *([trunk_length_text(results["trunk_length"]), ""] if results["trunk_length"] else []),
        "Memorization (nearest training study; reference: held-out real studies to the training set):",
        "",
        "| space | real NN median | synthetic NN median | synthetic NN min | threshold | flagged |",
        "|---|---|---|---|---|---|",
    ]
    for s in results["memorization"]:
        lines.append(
            f"| {s['space']} | {s['real_nn_median']:.4g} | {s['synthetic_nn_median']:.4g} "
            f"| {s['synthetic_nn_min']:.4g} | {s['threshold']:.4g} | {s['n_flagged']} |"
        )
    if "lesions" in results:
        lines += ["", *lesion_markdown(results["lesions"])]
    if "reference_classifier" in results:
        lines += ["", *reference_markdown(results["reference_classifier"])]
    return "\n".join(lines)


def _reading_row(label: str, row: dict, real: dict | None) -> str:
    low, high = row["ci95"]
    ceiling = f"{real['share_correct']:.3f} (n={real['n']})" if real else "-"
    return f"| {label} | {row['share_correct']:.3f} [{low:.3f}, {high:.3f}] (n={row['n']}) | {ceiling} |"


def reference_markdown(reading: dict) -> list[str]:
    """The second classifier's feature metrics and reading of each condition."""
    rr, rs = reading["real_vs_real"], reading["real_vs_synthetic"]
    real = reading["real_per_condition"]
    return [
        f"Reference classifier ({reading['features']}):",
        "",
        "| metric | real vs real | real vs synthetic |",
        "|---|---|---|",
        *[
            f"| {k} | {rr[k]:.4g} | {rs[k]:.4g} |"
            for k in ("frechet", "precision", "recall", "two_sample_auc", "two_sample_auc_within_condition")
        ],
        "",
        *([text, ""] if (text := by_condition_text(rr, rs)) else []),
        "| condition | read as asked, synthetic [Wilson 95 % CI] | held-out real (its ceiling) |",
        "|---|---|---|",
        *[_reading_row(label, row, real.get(label)) for label, row in reading["per_condition"].items()],
    ]


if __name__ == "__main__":
    main()
