"""``synthscan audit privacy``: are any synthetic scans copies of training patients?"""

from __future__ import annotations

import click

from synthscan.dataset import Dataset


@click.command()
@click.option(
    "--train",
    "train_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset the generator was trained on (its real or simulated rows are used).",
)
@click.option(
    "--synthetic",
    "synthetic_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset holding the synthetic studies to audit.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Report folder [default: SYNTHETIC/privacy_audit, which export-dicom reads].",
)
@click.option(
    "--threshold-percentile",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="Flag synthetic studies nearer to a training study than this percentile of "
    "real-to-real nearest distances.",
)
@click.option(
    "--holdout",
    "holdout_path",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Held-out real dataset for the real-to-real reference "
    "[default: leave-one-patient-out within the training set].",
)
@click.option(
    "--features",
    "features_run",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Classifier run for the feature-space audit [default: image space only].",
)
def privacy(
    train_path: str,
    synthetic_path: str,
    out: str | None,
    threshold_percentile: float,
    holdout_path: str | None,
    features_run: str | None,
) -> None:
    """Nearest training study of each synthetic study, in image and feature space; flagged pairs rendered."""
    from synthscan.evaluation.privacy import default_audit_dir, run_audit, write_report

    train, synthetic = Dataset.open(train_path), Dataset.open(synthetic_path)
    holdout = Dataset.open(holdout_path) if holdout_path else None
    features = None
    if features_run:
        from synthscan.classifier.features import FeatureExtractor

        features = FeatureExtractor(features_run)
    audit = run_audit(
        train, synthetic, threshold_percentile=threshold_percentile, features=features, holdout=holdout
    )
    report = write_report(audit, train, synthetic, out or default_audit_dir(synthetic))
    click.echo(
        f"{len(audit.flagged)} of {len(audit.synthetic_ids)} synthetic studies flagged. Report: {report}"
    )
    if audit.flagged:
        click.echo("Flagged: " + ", ".join(audit.flagged))
    for warning in audit.warnings:
        click.echo(f"Warning: {warning}", err=True)
