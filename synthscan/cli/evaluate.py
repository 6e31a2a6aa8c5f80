"""``synthscan evaluate augmentation``: AUC gain from adding synthetic scans to real training data."""

from __future__ import annotations

from pathlib import Path

import click

from synthscan.classifier.config import MIXES
from synthscan.cli.classifier import config_options, load_classifier_config
from synthscan.cli.options import guidance_option

EXISTING_DATASET = click.Path(exists=True, file_okay=False)


@click.command()
@click.option(
    "--real",
    "real_path",
    required=True,
    type=EXISTING_DATASET,
    help="Real pool: split by patient (splits.json) into training patients to draw small sets from, "
    "validation and internal test.",
)
@click.option(
    "--synthetic",
    "synthetic_path",
    required=True,
    type=EXISTING_DATASET,
    help="Synthetic studies: a dataset folder (source=synthetic rows) or a generator folder "
    "(model_index.json), sampled on the fly into OUT/synthetic with recorded seeds (in the real training "
    "studies' tracer mix where the model has tracer conditions).",
)
@click.option(
    "--test",
    "test_paths",
    required=True,
    multiple=True,
    type=EXISTING_DATASET,
    help="External test cohort dataset; more cohorts may follow it or repeat the flag.",
)
@click.argument("more_test_paths", nargs=-1, metavar="[COHORT]...", type=EXISTING_DATASET)
@click.option(
    "--ratios",
    default="0,1,2,5",
    help="Added:real training-study ratios, declared before the run (a resumed study must keep them); "
    "0 (real only) is always run as the baseline.",
)
@click.option(
    "--real-sizes",
    default="25,50,100,200,400",
    help="Real training-set sizes in patients (a learning curve), or 'all' for the whole training split.",
)
@click.option(
    "--draws",
    default=5,
    type=click.IntRange(min=1),
    help="Independent draws of the small real set per size (the units of the confidence intervals).",
)
@click.option("--seeds", default=1, type=click.IntRange(min=1), help="Training seeds per draw.")
@click.option("--draw-seed", default=0, type=click.IntRange(min=0), help="Seed of the draws of real sets.")
@click.option(
    "--oracle",
    "oracle_paths",
    multiple=True,
    type=EXISTING_DATASET,
    help="Extra real studies from the generator's training site: an arm that adds them instead of "
    "synthetic ones, at the same ratios (repeatable) [default: no oracle arm].",
)
@click.option(
    "--simulator",
    "simulator_paths",
    multiple=True,
    type=EXISTING_DATASET,
    help="Simulated studies (`synthscan simulate`): a physics-prior arm at the same ratios (repeatable) "
    "[default: no simulator arm].",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Report folder (rerun to resume)."
)
@click.option(
    "--shard",
    default=None,
    metavar="I/N",
    help="Train only every N-th run, starting at run I (processes or machines sharing OUT); the report is "
    "written by whichever finishes the last run. Under `accelerate launch` each process takes its own "
    "shard by itself [default: every run].",
)
@click.option(
    "--prepare-only",
    is_flag=True,
    help="Check the inputs, sample the synthetic studies and bin every cohort, then stop (run it once "
    "before shards that sample from a generator).",
)
@config_options
@click.option(
    "--mix",
    type=click.Choice(MIXES),
    default="balanced",
    help="Added conditions: balanced (equal, amyloidosis over grades 1-3) or matched to the draw's mix.",
)
@click.option(
    "--synthetic-seed",
    default=0,
    type=click.IntRange(min=0),
    help="First seed of generated studies (recorded per study).",
)
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
    real_sizes: str,
    draws: int,
    seeds: int,
    draw_seed: int,
    oracle_paths: tuple[str, ...],
    simulator_paths: tuple[str, ...],
    out: str,
    shard: str | None,
    prepare_only: bool,
    config_name: str,
    sets: tuple[str, ...],
    mix: str,
    synthetic_seed: int,
    sampling_steps: int | None,
    guidance: float | None,
) -> None:
    """Learning curves of real-only and augmented classifiers over independent draws of the real set,
    tested on --test and on each further COHORT dataset folder given as an argument.

    Example: synthscan evaluate augmentation --real centre_b --synthetic model --oracle centre_a
    --test ext1 ext2 ext3 ext4 --real-sizes 25,50,100,200,400 --draws 5 --ratios 0,1,5 --out report
    """
    from synthscan.classifier.synthetic import is_generator_dir, load_generator, open_synthetic_datasets
    from synthscan.dataset import Dataset
    from synthscan.evaluation.augmentation import (
        StudyDesign,
        parse_ratios,
        parse_shard,
        parse_sizes,
        run_study_in_processes,
    )

    config = load_classifier_config(config_name, sets)
    design = StudyDesign(
        ratios=parse_ratios(ratios),
        real_sizes=parse_sizes(real_sizes),
        draws=draws,
        seeds=seeds,
        draw_seed=draw_seed,
        mix=mix,
        synthetic_seed=synthetic_seed,
    )
    real = Dataset.open(real_path)
    cohorts = [Dataset.open(path) for path in (*test_paths, *more_test_paths)]
    options = {
        "oracle": [Dataset.open(path) for path in oracle_paths],
        "simulator": [Dataset.open(path) for path in simulator_paths],
    }
    if is_generator_dir(synthetic_path):
        options["generator"] = load_generator(
            synthetic_path,
            matrix=real.info.matrix,
            pixel_spacing_mm=real.info.pixel_spacing_mm,
            steps=sampling_steps,
            guidance=guidance,
        )
    elif design.added_ratios:
        options["synthetic"] = open_synthetic_datasets(
            [synthetic_path], real.info.matrix, real.info.pixel_spacing_mm
        )
    results = run_study_in_processes(
        real, cohorts, out, config, design, shard=parse_shard(shard), prepare_only=prepare_only, **options
    )
    if results is False:
        return  # a launched process whose share is done; the main process reports
    if results is None:
        click.echo(f"Prepared or partly done: rerun (or let the other shards finish) to write {Path(out)}")
        return
    for row in results["headline"]:
        gain = row["synthetic"]["gain_rel"]
        interval = "" if gain["lower"] is None else f" [{gain['lower']:+.1f}, {gain['upper']:+.1f}]"
        click.echo(
            f"{row['task']}, {row['size']} real patients: ratio {row['ratio']:g} (chosen on validation), "
            f"relative external AUC gain {gain['mean']:+.1f} %{interval} across {gain['n_draws']} draw(s)"
        )
    click.echo(f"Report: {Path(out) / 'report.md'}")
