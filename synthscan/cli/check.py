"""``synthscan check``: verify every study of a dataset against its file."""

from __future__ import annotations

import click


@click.command()
@click.argument("dataset_path", metavar="DATASET", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--remove-broken",
    is_flag=True,
    help="Drop the rows (and files) of damaged studies, so that rerunning the command that wrote them "
    "(simulate, sample, augment, import) writes them again.",
)
def check(dataset_path: str, remove_broken: bool) -> None:
    """Verify each row of DATASET: its file exists with the recorded size and checksum, reads back with
    the dataset's shape and holds the row's label; also list study files that no row names.

    Exits non-zero when anything is wrong (and not removed).
    """
    from synthscan.dataset import Dataset

    dataset = Dataset.open(dataset_path)
    broken = dataset.broken()
    unlisted = dataset.unlisted_files()
    for study_id, problem in broken.items():
        click.echo(f"  {study_id}: {problem}", err=True)
    for path in unlisted:
        click.echo(f"  {path}: no manifest row names it (left by an interrupted writer; a rerun rewrites it)")
    if broken and remove_broken:
        dataset.remove(broken)
        click.echo(f"Removed {len(broken)} damaged studies; rerun their writer to restore them.")
    elif broken:
        raise click.ClickException(
            f"{len(broken)} of {len(dataset)} studies in {dataset.root} are damaged; "
            "--remove-broken drops them so that their writer can restore them"
        )
    click.echo(f"{len(dataset)} studies in {dataset.root} verified ({len(unlisted)} unlisted files).")
