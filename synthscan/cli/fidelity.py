"""``synthscan evaluate fidelity``: are synthetic scans distributed like real ones?"""

from __future__ import annotations

import click

from synthscan.cli.options import RANDOM_STATE
from synthscan.dataset import Dataset


@click.command()
@click.option(
    "--real",
    "real_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset of real studies (its real or simulated rows are used).",
)
@click.option(
    "--synthetic",
    "synthetic_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset holding the synthetic studies (its source=synthetic rows, or all rows).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Report folder: report.md, results.json and plots.",
)
@click.option(
    "--features",
    "features_run",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Classifier run whose penultimate layer gives the features (and per-condition fidelity) "
    "[default: coarse image-space embedding, no per-condition fidelity].",
)
@click.option(
    "--k",
    default=5,
    show_default=True,
    type=click.IntRange(min=1),
    help="Neighbours for precision/recall/density/coverage.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=RANDOM_STATE,
    help="Seed of the real-half split and CV folds.",
)
@click.option(
    "--image-detector/--no-image-detector",
    default=True,
    show_default=True,
    help="Also train a small CNN to tell real from synthetic count images (patient-disjoint CV) and "
    "report its AUC with a 95 % CI; about a minute per 400 studies on 2 CPU cores.",
)
@click.option(
    "--detector-repeats",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Whole cross-validations of the image detector with fresh folds and seeds; above 1 the AUC "
    "reported is that of their averaged scores (a stronger detector than one training, not comparable "
    "with a single-training AUC), each training's AUC, mean and SD beside it (each repeat: one more run).",
)
@click.option(
    "--lesion-detector",
    "lesion_detector_path",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Lesion detector folder (`synthscan evaluate lesion-detector`): also report the hot lesions "
    "found per condition and per requested metastatic burden, beside the real studies "
    "[default: no lesion measures].",
)
def fidelity(
    real_path: str,
    synthetic_path: str,
    out: str,
    features_run: str | None,
    k: int,
    seed: int,
    image_detector: bool,
    detector_repeats: int,
    lesion_detector_path: str | None,
) -> None:
    """Fréchet distance, PRDC, two-sample AUC and count statistics, each beside a real-vs-real baseline."""
    from synthscan.evaluation.detector import DetectorConfig, repeats_text, within_condition_text
    from synthscan.evaluation.fidelity import (
        FidelityModel,
        classifier_model,
        evaluate_fidelity,
        write_fidelity_report,
    )
    from synthscan.evaluation.lesions import LesionDetector

    real, synthetic = Dataset.open(real_path), Dataset.open(synthetic_path)
    model = classifier_model(features_run) if features_run else FidelityModel()
    detector = DetectorConfig(seed=seed, repeats=detector_repeats) if image_detector else None
    lesions = LesionDetector.load(lesion_detector_path) if lesion_detector_path else None
    results = evaluate_fidelity(
        real, synthetic, model=model, k=k, seed=seed, detector=detector, lesions=lesions
    )
    report = write_fidelity_report(results, out, real_path, synthetic_path)
    rr, rs = results["real_vs_real"], results["real_vs_synthetic"]
    within = "two_sample_auc_within_condition"
    click.echo(
        f"Fréchet {rs['frechet']:.4g} (real-vs-real {rr['frechet']:.4g}); two-sample AUC "
        f"{rs['two_sample_auc']:.3f} (real-vs-real {rr['two_sample_auc']:.3f})"
        + (
            f", within conditions {rs[within]:.3f} (real-vs-real {rr[within]:.3f})"
            if within in rs and within in rr
            else ""
        )
        + f". Report: {report}"
    )
    if "image_detector" in results:
        d = results["image_detector"]
        click.echo(
            f"Image detector AUC {d['auc']:.3f} (95 % CI {d['ci95'][0]:.3f}-{d['ci95'][1]:.3f})."
            + within_condition_text(d)
            + repeats_text(d)
        )
    if results.get("tracer_effect"):
        effect = results["tracer_effect"]
        rows = effect["per_tracer"].items()
        kept = ", ".join(f"{name} {row['kept']:.2f}" for name, row in rows if row["kept"] is not None)
        click.echo(
            f"Tracer effect kept against {effect['reference']} (1 = as in the real studies): {kept or 'n/a'}."
        )
    if "lesions" in results:
        rows = results["lesions"]["with_lesions"].get("metastasis", {})
        sides = [side for side in ("synthetic", "real") if side in rows]
        shares = ", ".join(f"{side} {rows[side]['share']:.3f}" for side in sides)
        if shares:
            click.echo(f"Metastasis studies with a detected lesion: {shares}.")
    for caveat in results["caveats"]:
        click.echo(f"Caveat: {caveat}", err=True)
