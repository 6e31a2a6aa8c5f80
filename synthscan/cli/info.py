"""``synthscan info``: where the shipped generator lives and what it is."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Generator folder to describe [default: the shipped model].",
)
@click.option("--card", is_flag=True, help="Also print the model card (README.md).")
def info(model: str | None, card: bool) -> None:
    """Show a generator's path, SHA-256, conditions, sampler defaults, training data and privacy
    statement; its path is what `--synthetic MODEL` and `--model` take."""
    from synthscan.generator.storage import describe_model

    details = describe_model(model)
    click.echo(f"generator: {details['path']}")
    for key in ("sha256", "conditions", "matrix", "sampler", "training_sources", "privacy", "card"):
        click.echo(f"  {key.replace('_', ' ')}: {details[key]}")
    if card and details["card"] != "none":
        click.echo("")
        click.echo(Path(details["card"]).read_text(encoding="utf-8").rstrip())
