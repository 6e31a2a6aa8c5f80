"""``synthscan import-dicom`` and ``synthscan export-dicom``: whole-body NM DICOM in and out."""

from __future__ import annotations

import click

from synthscan.cli.importers import _matrix, echo_kept_earlier
from synthscan.cli.options import studies
from synthscan.dicom.read import LABEL_KEYS
from synthscan.dicom.write import NMAcquisition
from synthscan.labels import DEFAULT_MATRIX, DEFAULT_PIXEL_SPACING_MM, TRACERS


@click.command()
@click.argument("src", type=click.Path(exists=True))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Dataset folder (new, or one to resume)."
)
@click.option(
    "--labels",
    "labels_csv",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CSV with columns KEY,label[,perugini_grade], KEY being --label-key; needed for every study "
    "but those --trust-synthetic-marker takes from synthscan's own exports.",
)
@click.option(
    "--label-key",
    type=click.Choice(LABEL_KEYS),
    default="AccessionNumber",
    show_default=True,
    help="DICOM identifier the labels CSV is keyed by (read before de-identification, never stored).",
)
@click.option(
    "--salt",
    required=True,
    envvar="SYNTHSCAN_SALT",
    show_envvar=True,
    help="Secret mixed into patient/study pseudonyms and UIDs. Keep it private and reuse it: the same "
    "patient then gets the same pseudonym in every import (without it, short patient ids could be "
    "recovered by trying them all). A dataset refuses another salt (dataset.json keeps a fingerprint).",
)
@click.option(
    "--trust-synthetic-marker",
    is_flag=True,
    help="Believe objects marked synthetic (Synthetic Data YES and a SYNTHSCAN condition in Image "
    "Comments): they keep their label, source and seed. Without it every object is real patient data. "
    "Recorded in dataset.json; such studies are still never exported again.",
)
@click.option(
    "--allow-lossy",
    is_flag=True,
    help="Also import pixels that are not exact counts: lossy compression or MONOCHROME1 (inverted "
    "back). Recorded per study (manifest column pixel_values).",
)
@click.option("--site", default="", show_default=True, help="Site name stored per study.")
@click.option(
    "--tracer",
    type=click.Choice(TRACERS),
    default=None,
    help="Tracer for objects whose header names none [default: read from the header, else empty].",
)
@click.option(
    "--matrix",
    default=f"{DEFAULT_MATRIX[0]}x{DEFAULT_MATRIX[1]}",
    show_default=True,
    callback=_matrix,
    help="Dataset matrix ROWSxCOLUMNS; views are resampled onto it keeping their total counts.",
)
@click.option(
    "--pixel-spacing-mm",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_PIXEL_SPACING_MM,
    show_default=True,
    help="Dataset pixel size; views of another pixel size are resampled physically.",
)
@click.option(
    "--posterior-mirrored",
    is_flag=True,
    help="For objects whose header does not say: posterior views are stored mirrored; flip them back.",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def import_dicom(
    src: str,
    out: str,
    labels_csv: str | None,
    label_key: str,
    salt: str,
    trust_synthetic_marker: bool,
    allow_lossy: bool,
    site: str,
    tracer: str | None,
    matrix: tuple[int, int],
    pixel_spacing_mm: float,
    posterior_mirrored: bool,
    progress: bool,
) -> None:
    """Import whole-body NM DICOM (a file or a folder, SRC) with PS3.15 Annex E de-identification.

    Objects that cannot be imported are skipped and listed with their paths here (only hashed
    names and reason codes go into OUT/import_report.json); the command fails only when nothing
    could be imported.
    """
    from synthscan.dataset import DatasetError
    from synthscan.dicom.read import DicomImportError
    from synthscan.dicom.read import import_dicom as run_import
    from synthscan.importers.common import ImportOptions

    if not salt.strip():
        raise click.BadParameter("must not be empty", param_hint="--salt")
    options = ImportOptions(
        matrix=matrix,
        pixel_spacing_mm=pixel_spacing_mm,
        site=site,
        tracer=tracer or "",
        salt=salt,
        posterior_mirrored=posterior_mirrored,
        progress=progress,
    )
    try:
        report = run_import(
            src,
            out,
            labels_csv=labels_csv,
            label_key=label_key,
            options=options,
            trust_synthetic_marker=trust_synthetic_marker,
            allow_lossy=allow_lossy,
        )
    except DicomImportError as error:
        _echo_skipped(error.report.skipped)
        raise click.ClickException(str(error)) from error
    except DatasetError as error:
        raise click.ClickException(str(error)) from error
    _echo_skipped(report.skipped)
    click.echo(
        f"Imported {studies(len(report.imported))} into {out}"
        f" ({len(report.already_present)} already there, {len(report.skipped)} objects skipped)."
    )
    echo_kept_earlier(report)
    if report.burned_in_annotation:
        click.echo(
            f"  {studies(len(report.burned_in_annotation))} may show burned-in text (declared, or a screen "
            "capture that does not declare its absence): check their pixels (listed in import_report.json).",
            err=True,
        )
    if report.no_tracer:
        click.echo(
            f"  {studies(len(report.no_tracer))} name no tracer synthscan knows (Radiopharmaceutical code "
            "or name): rerun into a new folder with --tracer (the tracer mix augment, classifier train "
            "and evaluate augmentation ask a generator for counts studies with one).",
            err=True,
        )
    if report.not_exact_counts:
        click.echo(
            f"  {studies(len(report.not_exact_counts))} hold lossy or inverted values, not exact counts "
            "(--allow-lossy; manifest column pixel_values).",
            err=True,
        )


def _echo_skipped(skipped: list[tuple[str, str]]) -> None:
    from synthscan.dicom.reasons import REASONS

    for path, code in skipped:
        click.echo(f"  skipped {path}: {REASONS[code]}", err=True)


@click.command()
@click.argument("dataset_path", metavar="DATASET", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the DICOM files (an interrupted export resumes when rerun with the same options: "
    "objects already there are checked and kept; --dicomdir needs a new folder).",
)
@click.option(
    "--allow-flagged",
    is_flag=True,
    help="Also export synthetic studies the privacy audit flags as possible copies of training patients.",
)
@click.option(
    "--dicomdir",
    is_flag=True,
    help="Write a PS3.10 File-set with a DICOMDIR (for media exchange) into a new folder.",
)
@click.option(
    "--train",
    "train_path",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Dataset the generator was trained on, for the privacy audit when no current one is saved "
    "[default: the train_dataset in DATASET's provenance].",
)
@click.option(
    "--audit",
    "audit_path",
    type=click.Path(file_okay=False),
    default=None,
    help="Privacy audit folder to read or write [default: DATASET/privacy_audit].",
)
@click.option(
    "--scan-velocity-mm-s",
    type=click.FloatRange(min=0, min_open=True),
    default=NMAcquisition.scan_velocity_mm_s,
    show_default=True,
    help="Table speed written as Scan Velocity (synthetic scans have none; 2.5 mm/s = 15 cm/min).",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def export_dicom(
    dataset_path: str,
    out: str,
    allow_flagged: bool,
    dicomdir: bool,
    train_path: str | None,
    audit_path: str | None,
    scan_velocity_mm_s: float,
    progress: bool,
) -> None:
    """Export the simulated and synthetic studies of DATASET as NM DICOM marked synthetic.

    One two-frame (anterior, posterior) NM Image object per study, with UIDs and patient ids
    derived from the study and a secret kept in DATASET/dataset.json, so exporting again gives the
    same files. Only studies made by a synthscan run recorded in DATASET are exported; real or
    imported ones are skipped and listed. Synthetic studies flagged by the privacy audit are
    refused unless --allow-flagged.
    """
    from synthscan.dataset import Dataset, DatasetError
    from synthscan.dicom.write import export_dataset

    try:
        dataset = Dataset.open(dataset_path)
        report = export_dataset(
            dataset,
            out,
            allow_flagged=allow_flagged,
            dicomdir=dicomdir,
            train=train_path,
            audit_report=audit_path,
            acquisition=NMAcquisition(scan_velocity_mm_s=scan_velocity_mm_s),
            progress=progress,
        )
    except DatasetError as error:
        raise click.ClickException(str(error)) from error
    for study_id, reason in report.refused:
        click.echo(f"  refused {study_id}: {reason}", err=True)
    click.echo(
        f"Wrote {len(report.written)} NM objects to {out}"
        f" ({len(report.already_present)} already there, {len(report.refused)} refused)."
        + (f" DICOMDIR: {report.dicomdir}" if report.dicomdir else "")
    )
