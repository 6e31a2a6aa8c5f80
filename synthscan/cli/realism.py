"""``synthscan evaluate realism``: anatomy-aware realism statistics of datasets, side by side."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command()
@click.argument(
    "datasets", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option(
    "--reference",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Your real dataset: every other dataset's median is checked against its [min, max] per metric, "
    "and each metric is tested for telling the datasets apart on its own (Mann-Whitney AUC).",
)
@click.option(
    "--targets/--no-targets",
    default=True,
    help="Without --reference: check against the indicative real ranges shipped with synthscan.",
)
@click.option(
    "--match-counts",
    type=click.IntRange(min=0),
    default=500_000,
    metavar="N",
    help="Thin each view to N counts for the noise/texture metrics (0: no thinning).",
)
@click.option("--limit", type=click.IntRange(min=1), help="Measure only the first N studies of each dataset.")
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write per-study values and summaries to this JSON file.",
)
def realism(
    datasets: tuple[Path, ...],
    reference: Path | None,
    targets: bool,
    match_counts: int,
    limit: int | None,
    json_out: Path | None,
) -> None:
    """Landmark-based realism metrics (counts, P/A ratios, soft tissue, ribs, joints, feet, noise)
    of DATASETS, each a folder with manifest.csv of (2, 1024, 256) studies at 2.4 mm."""
    from synthscan.atomic import atomic_write_text
    from synthscan.evaluation import realism as rl

    report = rl.compare_datasets(
        list(datasets), reference=reference, targets=targets, match_counts=match_counts, limit=limit
    )
    results, ranges = report["datasets"], report["ranges"]
    click.echo(rl.format_table(results, ranges, match_counts))
    for result in results[1:] if reference else []:
        click.echo(rl.format_separation(result["name"], result["separation"]))
    if reference is None and targets:
        click.echo(
            "ranges: indicative, 4 real studies of one camera (synthscan/evaluation/realism_targets.json)"
        )
    if json_out:
        atomic_write_text(json_out, json.dumps(rl.finite_or_none(report), indent=1) + "\n")
        click.echo(f"Wrote {json_out}")
