"""The ``synthscan`` command line: a thin click layer over typed library functions.

Subcommands are imported lazily so that ``synthscan view`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import logging

import click

# name → (module:attribute, one-line help). Groups map to nested tables.
COMMANDS: dict[str, tuple[str, str] | dict[str, tuple[str, str]]] = {
    "simulate": ("synthscan.cli.simulate:simulate", "Simulate 99mTc whole-body bone scans into a dataset."),
    "view": ("synthscan.cli.view:view", "Render a study or a dataset sample as a bone-scan display PNG."),
    "import-public": ("synthscan.cli.importers:import_public", "Convert a public bone-scan layout."),
    "import-dicom": ("synthscan.cli.dicom:import_dicom", "Import and de-identify whole-body NM DICOM."),
    "export-dicom": ("synthscan.cli.dicom:export_dicom", "Export a dataset as synthetic NM DICOM."),
    "train": ("synthscan.cli.generator:train", "Train the conditional latent diffusion generator."),
    "sample": ("synthscan.cli.generator:sample", "Generate labelled synthetic scans."),
    "augment": ("synthscan.cli.augment:augment", "Add synthetic studies to a dataset where it is short."),
    "classifier": {
        "train": ("synthscan.cli.classifier:train", "Train the two-view metastasis/amyloidosis classifier."),
        "predict": ("synthscan.cli.classifier:predict", "Write per-study probabilities as CSV."),
    },
    "evaluate": {
        "augmentation": (
            "synthscan.cli.evaluate:augmentation",
            "AUC gain from adding synthetic scans to real training data.",
        ),
        "fidelity": ("synthscan.cli.fidelity:fidelity", "Fidelity of synthetic scans against real ones."),
    },
    "audit": {
        "privacy": ("synthscan.cli.audit:privacy", "Nearest-neighbour memorization audit."),
    },
    "reader-study": {
        "create": ("synthscan.cli.reader_study:create", "Build a blinded real-vs-synthetic case set."),
        "serve": ("synthscan.cli.reader_study:serve", "Serve the reading web page on localhost."),
        "score": ("synthscan.cli.reader_study:score", "Score readers like the paper."),
        "auto": ("synthscan.cli.reader_study:auto", "Score the cases with a machine reader."),
    },
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when invoked."""

    def __init__(self, *args, lazy: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = self.lazy.get(name)
        if entry is None:
            return None
        if isinstance(entry, dict):
            return LazyGroup(name=name, lazy=entry, help=f"{name} commands.")
        module_name, attribute = entry[0].split(":")
        return getattr(importlib.import_module(module_name), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [
            (name, entry[1] if isinstance(entry, tuple) else f"{name} commands.")
            for name, entry in sorted(self.lazy.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"show_default": True})
@click.version_option(package_name="synthscan")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """synthscan: synthetic whole-body bone scintigraphy for nuclear-medicine AI research."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
