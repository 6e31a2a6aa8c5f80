"""``synthscan simulate``: simulate 99mTc whole-body bone scans of a site into a dataset."""

from __future__ import annotations

import click

from synthscan.cli.options import ConfigParam, config_path, parse_overrides


@click.command()
@click.option("-n", "n", required=True, type=click.IntRange(min=1), help="Number of studies in the dataset.")
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Dataset folder: new, or one this command started (rerun with the same options to resume).",
)
@click.option(
    "--site", type=ConfigParam("simulator"), default="centre_a", help="Site preset, or a site YAML file."
)
@click.option(
    "--seed", default=0, type=click.IntRange(min=0), help="Base seed; study i's seed derives from it."
)
@click.option("--workers", default=2, type=click.IntRange(min=1), help="Simulating processes.")
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a site field, dotted for sections (e.g. disease.metastasis_prevalence=0.5); repeatable.",
)
@click.option("--progress/--no-progress", default=True, help="Show a progress bar.")
def simulate(
    n: int, out: str, site: str, seed: int, workers: int, overrides: tuple[str, ...], progress: bool
) -> None:
    """Simulate N anterior + posterior whole-body bone scans with ground truth into OUT."""
    from synthscan.config import ConfigError
    from synthscan.simulator import load_site, simulate_dataset

    load_site(site)  # a bad preset fails here, naming its file
    try:
        config = load_site(site, parse_overrides(overrides))
    except ConfigError as error:  # the preset is fine, so an override is not: blame --set, not the file
        message, prefix = str(error), f"{config_path('simulator', site)}: "
        while message.startswith(prefix):
            message = message.removeprefix(prefix)
        raise click.BadParameter(message, param_hint="--set") from error
    dataset = simulate_dataset(config, n, out, seed=seed, workers=workers, progress=progress)
    counts: dict[str, int] = {}
    for record in dataset:
        counts[record.label] = counts.get(record.label, 0) + 1
    summary = ", ".join(f"{label} {count}" for label, count in sorted(counts.items()))
    click.echo(f"{len(dataset)} studies of site {config.site} in {out} ({summary}).")
