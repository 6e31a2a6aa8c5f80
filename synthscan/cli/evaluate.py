"""``synthscan evaluate augmentation``: AUC gain from adding synthetic scans to real training data."""

from __future__ import annotations

from pathlib import Path

import click

from synthscan.classifier.config import MIXES
from synthscan.cli.classifier import ERRORS, config_options, load_classifier_config
from synthscan.cli.options import guidance_option


@click.command()
@click.option(
    "--real",
    "real_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Small real dataset: split by patient (splits.json) into training, validation and internal test.",
)
@click.option(
    "--synthetic",
    "synthetic_path",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="Synthetic studies: a dataset folder (source=synthetic rows) or a generator folder "
    "(model_index.json), sampled on the fly into REPORT/synthetic with recorded seeds.",
)
@click.option(
    "--test",
    "test_paths",
    required=True,
    multiple=True,
    type=click.Path(exists=True, file_okay=False),
    help="External test cohort dataset; more cohorts may follow it or repeat the flag.",
)
@click.argument(
    "more_test_paths", nargs=-1, metavar="[COHORT]...", type=click.Path(exists=True, file_okay=False)
)
@click.option(
    "--ratios",
    default="0,1,2,5",
    help="Synthetic:real training-study ratios; 0 (real only) is always run as the baseline.",
)
@click.option("--seeds", default=5, type=click.IntRange(min=1), help="Training seeds per ratio.")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Report folder (rerun to resume)."
)
@config_options
@click.option(
    "--mix",
    type=click.Choice(MIXES),
    default="balanced",
    help="Synthetic conditions: balanced (equal, amyloidosis over grades 1-3) or matched to the real mix.",
)
@click.option("--synthetic-seed", default=0, help="First seed of generated studies (recorded per study).")
@click.option(
    "--sampling-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Generator steps [default: the model's].",
)
@guidance_option
def augmentation(
    real_path: str,
    synthetic_path: str,
    test_paths: tuple[str, ...],
    more_test_paths: tuple[str, ...],
    ratios: str,
    seeds: int,
    out: str,
    config_name: str,
    sets: tuple[str, ...],
    mix: str,
    synthetic_seed: int,
    sampling_steps: int | None,
    guidance: float | None,
) -> None:
    """Train real-only and real+synthetic classifiers per seed and ratio; report AUC gains per cohort.

    Example: synthscan evaluate augmentation --real centre_b --synthetic model --test ext1 ext2 ext3
    ext4 --ratios 0,1,2,5 --seeds 3 --out report
    """
    from synthscan.classifier.synthetic import is_generator_dir, load_generator, open_synthetic_datasets
    from synthscan.dataset import Dataset
    from synthscan.evaluation.augmentation import parse_ratios, run_augmentation_study

    config = load_classifier_config(config_name, sets)
    try:
        ratio_values = parse_ratios(ratios)
        real = Dataset.open(real_path)
        cohorts = [Dataset.open(path) for path in (*test_paths, *more_test_paths)]
        options = {}
        if is_generator_dir(synthetic_path):
            options["generator"] = load_generator(
                synthetic_path, matrix=real.info.matrix, steps=sampling_steps, guidance=guidance
            )
        elif max(ratio_values) > 0:
            options["synthetic"] = open_synthetic_datasets([synthetic_path], real.info.matrix)
        results = run_augmentation_study(
            real,
            cohorts,
            out,
            config,
            ratios=ratio_values,
            seeds=seeds,
            mix=mix,
            synthetic_seed=synthetic_seed,
            **options,
        )
    except ERRORS as error:
        raise click.ClickException(str(error)) from error
    for task, row in results["headline"].items():
        click.echo(
            f"{task}: ratio {row['ratio']:g} (chosen on validation), relative AUC gain "
            f"{row['gain_rel_mean']:+.1f} % over {len(row['cohorts'])} external cohort(s), "
            f"p = {row['p_value']:.2g}"
        )
    click.echo(f"Report: {Path(out) / 'report.md'}")
