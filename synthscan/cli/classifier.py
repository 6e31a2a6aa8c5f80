"""``synthscan classifier train`` and ``synthscan classifier predict``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from synthscan.classifier.config import MIXES, TASKS
from synthscan.cli.options import ConfigParam, config_path, parse_overrides, studies
from synthscan.config import ConfigError
from synthscan.dataset import DatasetError

SPLITS = ("all", "train", "val", "test")


def load_classifier_config(name_or_path: str, sets: Sequence[str]):
    """A built-in config name or a YAML path, with ``--set`` overrides; bad keys become ClickExceptions."""
    from synthscan.classifier.config import ClassifierConfig
    from synthscan.config import load_config

    try:
        return load_config(
            ClassifierConfig, config_path("classifier", name_or_path), parse_overrides(tuple(sets))
        )
    except (ConfigError, ValueError, TypeError) as error:
        raise click.ClickException(f"classifier config: {error}") from error


def config_options(command):
    command = click.option(
        "--set",
        "sets",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a config field, e.g. --set train.max_steps=500 (repeatable).",
    )(command)
    return click.option(
        "--config",
        "config_name",
        type=ConfigParam("classifier"),
        default="default",
        help="Classifier config: a name from configs/classifier/ or a YAML file.",
    )(command)


@click.command()
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset of real studies; split by patient (splits.json) into train/val/test. Its synthetic "
    "studies, if any, join the training set.",
)
@click.option(
    "--synthetic",
    "synthetic_paths",
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="Extra synthetic training studies: a dataset folder (its source=synthetic rows), or a generator "
    "folder (model_index.json) to sample from, in the real training studies' tracer mix where the model "
    "has tracer conditions (repeatable).",
)
@click.option(
    "--synthetic-ratio",
    type=click.FloatRange(min=0),
    default=1.0,
    help="With a generator: sample RATIO x the real training studies (dataset folders are used whole).",
)
@click.option(
    "--mix",
    type=click.Choice(MIXES),
    default="balanced",
    help="Conditions of generated studies: balanced, or matched to the real training label mix.",
)
@click.option(
    "--synthetic-seed",
    default=0,
    type=click.IntRange(min=0),
    help="First seed of generated studies (recorded per study).",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Run folder: model, config, metrics."
)
@config_options
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Training seed [default: the config's train.seed].",
)
@click.option(
    "--cache",
    "cache_dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder for binned-array caches, reused by later runs on the same data [default: no cache].",
)
def train(
    data_path: str,
    synthetic_paths: tuple[str, ...],
    synthetic_ratio: float,
    mix: str,
    synthetic_seed: int,
    out: str,
    config_name: str,
    sets: tuple[str, ...],
    seed: int | None,
    cache_dir: str | None,
) -> None:
    """Train the two-view metastasis / amyloidosis classifier; early stopping on real validation patients."""
    from synthscan.classifier.model import is_model_dir
    from synthscan.classifier.synthetic import training_synthetic
    from synthscan.classifier.train import train_classifier
    from synthscan.dataset import Dataset

    config = load_classifier_config(config_name, sets + ((f"train.seed={seed}",) if seed is not None else ()))
    if is_model_dir(out):
        raise click.ClickException(f"{out} already holds a trained classifier; choose a new --out folder")
    data = Dataset.open(data_path)
    synthetic = training_synthetic(
        data, synthetic_paths, config, out, ratio=synthetic_ratio, mix=mix, seed=synthetic_seed
    )
    result = train_classifier(
        data, out, config, synthetic=synthetic, cache_dir=Path(cache_dir) if cache_dir else None
    )
    val = result.validation
    aucs = ", ".join(f"{task} {val[task]['auc']:.3f}" for task in TASKS if val[task]["auc"] is not None)
    click.echo(
        f"Trained {result.steps} steps in {result.seconds:.0f} s (best step {result.best_step}; "
        f"validation AUC {aucs or 'n/a'}). Model: {out}"
    )


@click.command()
@click.option(
    "--model",
    "model_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Run folder of `synthscan classifier train`.",
)
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Dataset to score.",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Predictions CSV [default: MODEL/predictions-<dataset folder name>.csv].",
)
@click.option(
    "--split",
    type=click.Choice(SPLITS),
    default="all",
    help="Score only this patient-level split of the dataset (its splits.json, as in training).",
)
def predict(model_path: str, data_path: str, out: str | None, split: str) -> None:
    """Per-study probabilities and threshold calls of both tasks as CSV; prints the AUCs where defined."""
    import numpy as np

    from synthscan.classifier.predict import Classifier
    from synthscan.classifier.train import real_split_records
    from synthscan.dataset import Dataset
    from synthscan.evaluation.stats import auc_ci
    from synthscan.labels import PATIENT_SOURCES

    classifier = Classifier.load(model_path)
    data = Dataset.open(data_path)
    records = data.records if split == "all" else real_split_records(data, classifier.config)[split]
    if not records:
        raise DatasetError(f"{data_path} has no studies in split {split!r}")
    predictions = classifier.predict_dataset(data, records)
    path = Path(out) if out else Path(model_path) / f"predictions-{Path(data_path).resolve().name}.csv"
    predictions.write_csv(path, classifier.thresholds)
    # AUCs only on patients' studies the classifier never trained or validated on; the CSV has all
    seen = classifier.seen()
    unseen = np.array([r.source in PATIENT_SOURCES and r.study_id not in seen for r in records])
    summary = []
    for k, task in enumerate(TASKS):
        y = predictions.targets[unseen, k]
        if 0 < y.sum() < len(y):
            result = auc_ci(y, predictions.probabilities[unseen, k])
            ci = (
                f" [{result.lower:.3f}, {result.upper:.3f}]"
                if np.isfinite(result.lower)
                else " (too few for a CI)"
            )
            summary.append(f"{task} AUC {result.auc:.3f}{ci}")
    click.echo(f"{studies(len(records))} scored: {path}")
    left_out = len(records) - int(unseen.sum())
    if summary:
        click.echo(f"  on the {studies(int(unseen.sum()))} it never saw: {'; '.join(summary)}")
    if left_out:
        click.echo(
            f"  {studies(left_out)} left out of the AUCs: synthetic, or the classifier's own training or "
            "validation studies (--split test scores its test patients only)."
        )
