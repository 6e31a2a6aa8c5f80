"""``synthscan import-public``: convert a public bone-scan layout into a synthscan dataset."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from synthscan.cli.options import studies
from synthscan.labels import DEFAULT_MATRIX, DEFAULT_PIXEL_SPACING_MM, LABELS, TRACERS

if TYPE_CHECKING:
    from synthscan.importers.common import ImportReport

LAYOUTS = ("bs80k", "png-folders")


def _matrix(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected ROWSxCOLUMNS such as 1024x256, got {value!r}") from None
    if rows <= 0 or cols <= 0:
        raise click.BadParameter("rows and columns must be positive")
    return rows, cols


def _class_map(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    mapping = {}
    for value in values:
        name, sep, label = value.rpartition("=")
        if not sep or not name or label not in LABELS:
            raise click.BadParameter(
                f"expected FOLDER=LABEL with LABEL in {', '.join(LABELS)}, got {value!r}"
            )
        mapping[name] = label
    return mapping


@click.command()
@click.argument("layout", type=click.Choice(LAYOUTS))
@click.argument("src", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Dataset folder (new, or one to resume)."
)
@click.option("--site", default=None, help="Site name stored per study [default: the layout name].")
@click.option(
    "--tracer", type=click.Choice(TRACERS), default="MDP", show_default=True, help="Tracer of the source."
)
@click.option(
    "--matrix",
    default=f"{DEFAULT_MATRIX[0]}x{DEFAULT_MATRIX[1]}",
    show_default=True,
    callback=_matrix,
    help="Dataset matrix ROWSxCOLUMNS; views of another size are resampled keeping their total.",
)
@click.option(
    "--pixel-spacing-mm",
    default=DEFAULT_PIXEL_SPACING_MM,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Pixel spacing to record (the public layouts do not state it).",
)
@click.option(
    "--posterior-mirrored",
    is_flag=True,
    help="The source stores posterior views mirrored left-right; flip them back to as-acquired.",
)
@click.option(
    "--salt",
    default="",
    show_default=True,
    help="Secret mixed into the patient pseudonyms (keep it to resume).",
)
@click.option(
    "--abnormal-label",
    type=click.Choice(tuple(LABELS)),
    default="metastasis",
    show_default=True,
    help="bs80k: label given to studies marked abnormal (1).",
)
@click.option(
    "--invert",
    type=click.Choice(("auto", "always", "never")),
    default="auto",
    show_default=True,
    help="bs80k: turn inverted displays (bright background) back to hot = bright.",
)
@click.option(
    "--class-map",
    multiple=True,
    callback=_class_map,
    help="png-folders: map a class folder to a label, FOLDER=LABEL (repeatable).",
)
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def import_public(
    layout: str,
    src: str,
    out: str,
    site: str | None,
    tracer: str,
    matrix: tuple[int, int],
    pixel_spacing_mm: float,
    posterior_mirrored: bool,
    salt: str,
    abnormal_label: str,
    invert: str,
    class_map: dict[str, str],
    progress: bool,
) -> None:
    """Convert the public dataset in folder SRC, laid out as LAYOUT, into a synthscan dataset; unreadable
    studies are skipped and listed.

    LAYOUT bs80k: BS-80K (SRC/wholeBodyANT/<id>.jpg, SRC/wholeBodyPOST/<id>.jpg and their label lists
    wholeBodyANT.txt / wholeBodyPOST.txt); png-folders: one folder per class holding Anterior/ and
    Posterior/ PNG views (IICS-UNA; 16-bit scanner values, or 8-bit display values). Both store the
    source's display or scanner values, not photon counts, and say so in dataset.json.
    """
    from synthscan.dataset import DatasetError
    from synthscan.importers.bs80k import import_bs80k
    from synthscan.importers.common import ImportOptions
    from synthscan.importers.png_folders import import_png_folders

    ctx = click.get_current_context()
    given = {
        name
        for name in ("abnormal_label", "invert", "class_map")
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    }
    other = {"bs80k": {"class_map"}, "png-folders": {"abnormal_label", "invert"}}[layout] & given
    if other:
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in sorted(other))
        verb = "does" if len(other) == 1 else "do"
        raise click.UsageError(f"{flags} {verb} not apply to layout {layout}; leave it out")
    options = ImportOptions(
        matrix=matrix,
        pixel_spacing_mm=pixel_spacing_mm,
        site=layout if site is None else site,
        tracer=tracer,
        salt=salt,
        posterior_mirrored=posterior_mirrored,
        progress=progress,
    )
    try:
        if layout == "bs80k":
            report = import_bs80k(src, out, options, abnormal_label=abnormal_label, invert=invert)
        else:
            report = import_png_folders(src, out, options, class_map=class_map)
    except DatasetError as error:
        raise click.ClickException(str(error)) from error
    click.echo(
        f"Imported {studies(len(report.imported))} into {out}"
        f" ({len(report.already_present)} already there, {len(report.skipped)} skipped)."
    )
    for key, reason in report.skipped:
        click.echo(f"  skipped {key}: {reason}", err=True)
    echo_kept_earlier(report)


def echo_kept_earlier(report: ImportReport) -> None:
    """Warn that studies already there kept values this run would have given otherwise."""
    if report.kept_earlier:
        click.echo(
            f"  {studies(len(report.kept_earlier))} already there: their earlier label, grade or site is "
            "kept (a rerun never rewrites a study); import into a new folder to apply this run's.",
            err=True,
        )
