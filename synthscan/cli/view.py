"""``synthscan view``: render a study or a sample of a dataset as a bone-scan display PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from synthscan.cli.options import studies


def caption(study_id: str, meta: dict[str, Any], label: str = "", grade: Any = None, site: str = "") -> str:
    """One caption line: study, condition and grade, site, tracer, seed and counts per view."""
    label = label or meta.get("label", "?")
    grade = meta.get("perugini_grade") if grade is None else grade
    parts = [study_id, label if label != "amyloidosis" else f"{label} grade {grade}"]
    if meta.get("superscan"):
        parts.append("superscan")
    parts += [site or meta.get("site", ""), meta.get("tracer", "")]
    if "seed" in meta:
        parts.append(f"seed {meta['seed']}")
    if "counts_per_view" in meta:
        parts.append("/".join(f"{c / 1e6:.2f}M" for c in meta["counts_per_view"]))
    return "  ".join(str(p) for p in parts if p != "")


@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="PNG file to write.")
@click.option("-n", "--n", "n", default=8, type=click.IntRange(min=1), help="Studies to show from a dataset.")
@click.option(
    "--study",
    "study_id",
    default=None,
    show_default="N chosen at random",
    help="Show only this study of the dataset.",
)
@click.option("--seed", default=0, type=click.IntRange(min=0), help="Seed of the random choice of studies.")
@click.option("--columns", default=4, type=click.IntRange(min=1), help="Studies per row of the grid.")
def view(path: str, out: str, n: int, study_id: str | None, seed: int, columns: int) -> None:
    """Render PATH (a study .npz or a dataset folder) as inverted grey, anterior | posterior."""
    import numpy as np

    from synthscan.atomic import atomic_open
    from synthscan.dataset import Dataset, DatasetError, read_study_file
    from synthscan.render import render_grid

    source = Path(path)
    if source.is_file():
        if study_id is not None:
            raise click.UsageError("--study selects a study of a dataset folder; PATH is a single study")
        counts, meta = read_study_file(source)
        items = [(counts, caption(source.stem, meta))]
    else:
        dataset = Dataset.open(source)
        if study_id is not None:
            records = [dataset.record(study_id)]
        else:
            if not len(dataset):
                raise DatasetError(f"{source} holds no studies")
            rng = np.random.default_rng(seed)
            chosen = rng.choice(len(dataset), size=min(n, len(dataset)), replace=False)
            records = [dataset.records[i] for i in sorted(chosen)]
        items = []
        for study in dataset.iter_studies(records):
            r = study.record
            items.append((study.counts, caption(r.study_id, study.meta, r.label, r.perugini_grade, r.site)))
    image = render_grid(items, columns)
    with atomic_open(out, "wb") as handle:
        image.save(handle, format="PNG")
    click.echo(f"Wrote {out} ({studies(len(items))}).")
