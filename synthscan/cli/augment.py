"""``synthscan augment``: add synthetic studies to a dataset where it is short."""

from __future__ import annotations

from pathlib import Path

import click

from synthscan.cli.options import (
    GeneratorParam,
    device_option,
    guidance_option,
    precision_option,
    steps_option,
)
from synthscan.dataset import INFO, Dataset


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

    from synthscan.generator.augment import (
        check_model_fits,
        check_target,
        execute_plan,
        model_tracers,
        plan_augmentation,
    )
    from synthscan.generator.storage import load_pipeline, model_sha256

    given = [name for name, value in (("--ratio", ratio), ("--per-class", per_class)) if value is not None]
    if ctx.get_parameter_source("mode") is click.core.ParameterSource.COMMANDLINE:
        given.insert(0, "--balance")
    if len(given) > 1:
        raise click.UsageError(f"give one of --balance, --ratio, --per-class, not {' and '.join(given)}")
    mode = "ratio" if ratio is not None else "per-class" if per_class is not None else "balance"
    state = PartialState()
    if finetune and state.num_processes > 1:
        raise click.UsageError(
            "--finetune runs in one process: fine-tune once without accelerate launch (the model is "
            "cached in DATASET/models), then launch the same command on several processes"
        )
    dataset = Dataset.open(dataset_path)
    pipeline = load_pipeline(model_dir, device=device, precision=precision)
    supported = check_model_fits(dataset, pipeline)
    existing = Dataset.open(out) if out and Path(out, INFO).is_file() else None
    tuned = _finetuned_dir(dataset, pipeline.sha256, finetune, seed) if finetune else None
    writer = pipeline.sha256 if tuned is None else model_sha256(tuned) if tuned.is_dir() else None
    check_target(dataset, existing if out else dataset, writer)
    plan = plan_augmentation(
        dataset,
        mode=mode,
        ratio=ratio or 0.0,
        per_class=per_class or 0,
        seed=seed,
        existing=existing if out else dataset,
        supported=supported,
        tracers=model_tracers(pipeline),
    )
    if state.is_main_process:
        click.echo(plan.table())
    if dry_run or not plan.studies:
        return
    if finetune:
        tuned = _finetune(model_dir, pipeline.sha256, dataset, finetune, seed)
        pipeline = load_pipeline(tuned, device=device, precision=precision)
    target = dataset
    state.wait_for_everyone()  # every process planned against the folder as it was
    if out:
        grid = {"matrix": dataset.info.matrix, "pixel_spacing_mm": dataset.info.pixel_spacing_mm}
        with state.main_process_first():
            target = Dataset.create(out, **grid, exist_ok=True)
    added = execute_plan(plan, target, pipeline, steps=steps, guidance=guidance)
    if not state.is_main_process:
        return
    target.update_provenance(
        augment={
            "mode": mode,
            "seed": seed,
            "model": str(pipeline.path),
            "model_sha256": pipeline.sha256,
            "source_dataset": str(dataset.root),
        },
        train_dataset=str(dataset.root),
    )
    click.echo(f"Added {added} synthetic studies to {target.root}.")


def _finetuned_dir(dataset: Dataset, base_sha256: str, steps: int, seed: int) -> Path:
    """One cache folder per base model, steps and seed: another base model is never reused by mistake."""
    return dataset.root / "models" / f"finetuned-{base_sha256[:12]}-{steps}-seed{seed}"


def _finetune(model_dir: str | None, base_sha256: str, dataset: Dataset, steps: int, seed: int) -> Path:
    """Fine-tune the generator on the training patients' real studies into DATASET/models/finetuned-...."""
    from synthscan.classifier.train import real_split_records
    from synthscan.cli.classifier import load_classifier_config
    from synthscan.generator.train import finetune

    out = _finetuned_dir(dataset, base_sha256, steps, seed)
    if (out / "model_index.json").is_file():
        click.echo(f"Reusing fine-tuned model {out}.")
        return out
    train = real_split_records(dataset, load_classifier_config("default", ()))["train"]
    finetune(model_dir, dataset, out, steps=steps, seed=seed, patients={r.patient_id for r in train})
    dataset.update_provenance(finetuned_model=str(out))
    return out
