"""``synthscan evaluate lesion-detector``: train the instrument that counts hot lesions in scans."""

from __future__ import annotations

from pathlib import Path

import click

from synthscan.cli.options import ConfigParam, config_path, parse_overrides
from synthscan.config import ConfigError


@click.command("lesion-detector")
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Simulated studies with lesion ground truth (`synthscan simulate`), e.g. the generator's "
    "training data; not the studies the detector will later be checked on.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Detector folder: model.safetensors, config.json, training.json and the run's log.",
)
@click.option(
    "--config",
    "config_name",
    type=ConfigParam("lesion_detector"),
    default="default",
    show_default=True,
    help="Detector config: a name from configs/lesion_detector/ or a YAML file.",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config field, e.g. --set steps=3000 (repeatable).",
)
def lesion_detector(data_path: str, out: str, config_name: str, sets: tuple[str, ...]) -> None:
    """Train a hot-lesion detector on simulated lesion ground truth (for `evaluate fidelity`).

    It marks the hot lesions of a study and counts them, leaving the anatomy and the mimics a reader
    must not call unmarked; `evaluate fidelity` then reports how many lesions synthetic studies show per
    condition and requested burden, beside the real studies.
    """
    from synthscan.config import load_config
    from synthscan.dataset import Dataset
    from synthscan.evaluation.lesions import LesionDetector, LesionDetectorConfig, train_detector_run

    try:
        config = load_config(
            LesionDetectorConfig, config_path("lesion_detector", config_name), parse_overrides(sets)
        )
    except ConfigError as error:
        raise click.ClickException(f"lesion detector config: {error}") from error
    if LesionDetector.is_saved(out):
        raise click.ClickException(f"{out} already holds a lesion detector; choose a new --out folder")
    if Path(out).is_dir() and any(Path(out).iterdir()):
        raise click.ClickException(f"--out {out} is not empty; choose a new folder (training starts afresh)")
    summary = train_detector_run(Dataset.open(data_path), config, out)
    click.echo(
        f"Trained on {summary['studies']} simulated studies ({summary['metastasis']} metastatic) in "
        f"{summary['seconds']:.0f} s. Detector: {out}"
    )
