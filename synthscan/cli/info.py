"""``synthscan info``: where the shipped generator lives and what it is."""

from __future__ import annotations

from pathlib import Path

import click

from synthscan.cli.options import GeneratorParam


@click.command()
@click.option(
    "--model",
    type=GeneratorParam(),
    default=None,
    help="Generator to describe: a folder or a shipped model's name [default: the shipped default model].",
)
@click.option("--card", is_flag=True, help="Also print the model card (README.md).")
def info(model: str | None, card: bool) -> None:
    """Show a generator's path, SHA-256, conditions, sampler defaults, decoder calibration, training
    data and privacy statement, and the names of the shipped models. `--model` takes a name or a path
    (the `--synthetic` option of `classifier train` and `evaluate augmentation` takes a path)."""
    from synthscan.generator.storage import describe_model, shipped_models

    details = describe_model(model)
    click.echo(f"generator: {details['path']}")
    keys = (
        "sha256",
        "conditions",
        "matrix",
        "sampler",
        "decoder_calibration",
        "training_sources",
        "privacy",
        "card",
    )
    for key in keys:
        click.echo(f"  {key.replace('_', ' ')}: {details[key]}")
    click.echo(f"shipped models (--model NAME): {', '.join(shipped_models())}")
    if card and details["card"] != "none":
        click.echo("")
        click.echo(Path(details["card"]).read_text(encoding="utf-8").rstrip())
