"""``synthscan augment``: add synthetic studies to a dataset where it is short."""

from __future__ import annotations

import click

from synthscan.cli.options import (
    GeneratorParam,
    device_option,
    guidance_option,
    precision_option,
    steps_option,
)


@click.command()
@click.argument("dataset_path", metavar="DATASET", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--model",
    "model_dir",
    default=None,
    type=GeneratorParam(),
    help="Generator: a folder or a shipped model's name [default: the shipped default model].",
)
@click.option(
    "--balance",
    "mode",
    flag_value="balance",
    default=True,
    show_default="the mode without --ratio or --per-class",
    help="Bring every condition up to the largest real class.",
)
@click.option(
    "--ratio",
    type=click.FloatRange(min=0),
    default=None,
    help="Add RATIO x the real count of every condition.",
)
@click.option("--per-class", type=click.IntRange(min=0), default=None, help="Add N studies per condition.")
@click.option(
    "--out",
    default=None,
    show_default="DATASET",
    type=click.Path(file_okay=False),
    help="Write into this dataset instead of DATASET (created with DATASET's matrix).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and exit.")
@click.option(
    "--finetune",
    type=click.IntRange(min=1),
    default=None,
    help="First fine-tune the generator for STEPS steps on the real studies of DATASET's training "
    "patients (its splits.json, made with the classifier's default split if absent): the generator "
    "never sees the validation and test patients.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Base seed; each study's seed derives from it.",
)
@steps_option
@guidance_option
@device_option
@precision_option
@click.pass_context
def augment(
    ctx: click.Context,
    dataset_path: str,
    model_dir: str | None,
    mode: str,
    ratio: float | None,
    per_class: int | None,
    out: str | None,
    dry_run: bool,
    finetune: int | None,
    seed: int,
    steps: int | None,
    guidance: float | None,
    device: str | None,
    precision: str,
) -> None:
    """Add synthetic studies to the dataset folder DATASET: plan per condition, then sample the missing
    studies; reruns add nothing already there.

    --dry-run runs every check the real run does (model, matrix, conditions, target folder) and
    prints the plan without writing anything. --finetune is checked against the base model.
    Under `accelerate launch -m synthscan augment ...` the studies are split between the processes.
    """
    from accelerate import PartialState

    from synthscan.generator.augment import prepare_augmentation, run_augmentation

    given = [name for name, value in (("--ratio", ratio), ("--per-class", per_class)) if value is not None]
    if ctx.get_parameter_source("mode") is click.core.ParameterSource.COMMANDLINE:
        given.insert(0, "--balance")
    if len(given) > 1:
        raise click.UsageError(f"give one of --balance, --ratio, --per-class, not {' and '.join(given)}")
    mode = "ratio" if ratio is not None else "per-class" if per_class is not None else "balance"
    state = PartialState()
    job = prepare_augmentation(
        dataset_path,
        model_dir,
        mode=mode,
        ratio=ratio or 0.0,
        per_class=per_class or 0,
        out=out,
        finetune_steps=finetune,
        seed=seed,
        device=device,
        precision=precision,
    )
    if state.is_main_process:
        click.echo(job.plan.table())
    if dry_run or not job.plan.studies:
        return
    added = run_augmentation(job, steps=steps, guidance=guidance)
    if state.is_main_process:
        click.echo(f"Added {added} synthetic studies to {job.out or job.dataset.root}.")
