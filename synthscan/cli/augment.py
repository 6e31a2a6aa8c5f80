"""``synthscan augment``: add synthetic studies to a dataset where it is short."""

from __future__ import annotations

from pathlib import Path

import click

from synthscan.cli.options import guidance_option, steps_option
from synthscan.dataset import Dataset, DatasetError


@click.command()
@click.argument("dataset_path", metavar="DATASET", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--model",
    "model_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Generator folder [default: the bundled default model].",
)
@click.option(
    "--balance",
    "mode",
    flag_value="balance",
    default=True,
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
    type=click.Path(file_okay=False),
    help="Write into this dataset instead of DATASET (created with DATASET's matrix).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan and exit.")
@click.option(
    "--finetune",
    type=click.IntRange(min=1),
    default=None,
    help="First fine-tune the generator for STEPS steps on DATASET's real studies.",
)
@click.option("--seed", default=0, show_default=True, help="Base seed; each study's seed derives from it.")
@steps_option
@guidance_option
def augment(
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
) -> None:
    """Plan per condition, then sample the missing studies; reruns add nothing already there."""
    from synthscan.generator.augment import check_model_fits, execute_plan, plan_augmentation
    from synthscan.generator.storage import ModelError, load_pipeline

    if ratio is not None and per_class is not None:
        raise click.ClickException("give at most one of --balance, --ratio, --per-class")
    mode = "ratio" if ratio is not None else "per-class" if per_class is not None else "balance"
    try:
        dataset = Dataset.open(dataset_path)
        target = dataset
        if out:
            grid = {"matrix": dataset.info.matrix, "pixel_spacing_mm": dataset.info.pixel_spacing_mm}
            target = Dataset.create(out, **grid, exist_ok=True)
        supported = None
        if not dry_run:
            if finetune:
                model_dir = str(_finetune(model_dir, dataset, finetune, seed))
            pipeline = load_pipeline(model_dir)
            supported = check_model_fits(dataset, pipeline)
        plan = plan_augmentation(
            dataset,
            mode=mode,
            ratio=ratio or 0.0,
            per_class=per_class or 0,
            seed=seed,
            existing=target,
            **({"supported": supported} if supported else {}),
        )
        click.echo(plan.table())
        if dry_run or not plan.studies:
            return
        added = execute_plan(plan, target, pipeline, steps=steps, guidance=guidance)
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
    except (DatasetError, ModelError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"Added {added} synthetic studies to {target.root}.")


def _finetune(model_dir: str | None, dataset: Dataset, steps: int, seed: int) -> Path:
    """Fine-tune the generator on the dataset's real studies into DATASET/models/finetuned-<steps>."""
    from synthscan.generator.train import finetune

    out = dataset.root / "models" / f"finetuned-{steps}-seed{seed}"
    if (out / "model_index.json").is_file():
        click.echo(f"Reusing fine-tuned model {out}.")
        return out
    finetune(model_dir, dataset, out, steps=steps, seed=seed)
    dataset.update_provenance(finetuned_model=str(out))
    return out
