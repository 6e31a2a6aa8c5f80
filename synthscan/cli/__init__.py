"""The ``synthscan`` command line: a thin click layer over typed library functions.

Subcommands are imported lazily so that ``synthscan view`` does not pay for importing torch.
Every subcommand runs inside one error boundary (:mod:`synthscan.cli.boundary`): expected failures
become a one-line message naming the file or option, ``-v`` adds the traceback.
"""

from __future__ import annotations

import importlib
import logging

import click
from tqdm.contrib.logging import logging_redirect_tqdm

from synthscan.cli.boundary import VERBOSE, guarded, run_guarded

# name → (module:attribute, one-line help). Groups map to (help, nested table).
COMMANDS: dict[str, tuple[str, str] | tuple[str, dict[str, tuple[str, str]]]] = {
    "simulate": ("synthscan.cli.simulate:simulate", "Simulate 99mTc whole-body bone scans into a dataset."),
    "view": ("synthscan.cli.view:view", "Render a study or a dataset sample as a bone-scan display PNG."),
    "check": ("synthscan.cli.check:check", "Verify every study of a dataset against its file."),
    "info": ("synthscan.cli.info:info", "Show a generator: path, hash, conditions, card."),
    "import-public": ("synthscan.cli.importers:import_public", "Convert a public bone-scan layout."),
    "import-dicom": ("synthscan.cli.dicom:import_dicom", "Import and de-identify whole-body NM DICOM."),
    "export-dicom": ("synthscan.cli.dicom:export_dicom", "Export a dataset as synthetic NM DICOM."),
    "train": ("synthscan.cli.generator:train", "Train the conditional latent diffusion generator."),
    "finetune": ("synthscan.cli.generator:finetune", "Train a generator's diffusion UNet further."),
    "calibrate": ("synthscan.cli.generator:calibrate", "Fit a generator's decoder rate calibration."),
    "distill": ("synthscan.cli.generator:distill", "Distil a generator into a few-step sampler."),
    "sample": ("synthscan.cli.generator:sample", "Generate labelled synthetic scans."),
    "augment": ("synthscan.cli.augment:augment", "Add synthetic studies to a dataset where it is short."),
    "classifier": (
        "Train and apply the two-view metastasis / amyloidosis classifier.",
        {
            "train": ("synthscan.cli.classifier:train", "Train the two-view classifier."),
            "predict": ("synthscan.cli.classifier:predict", "Write per-study probabilities as CSV."),
        },
    ),
    "evaluate": (
        "Measure what synthetic scans are worth: classifier AUC gain and fidelity.",
        {
            "augmentation": (
                "synthscan.cli.evaluate:augmentation",
                "AUC gain from adding synthetic scans to real training data.",
            ),
            "fidelity": ("synthscan.cli.fidelity:fidelity", "Fidelity of synthetic scans against real ones."),
            "lesion-detector": (
                "synthscan.cli.lesions:lesion_detector",
                "Train the hot-lesion counter that fidelity reports use.",
            ),
            "realism": ("synthscan.cli.realism:realism", "Anatomy-aware realism metrics, side by side."),
        },
    ),
    "audit": (
        "Check synthetic scans before sharing them: are any copies of training patients?",
        {"privacy": ("synthscan.cli.audit:privacy", "Nearest-neighbour memorization audit.")},
    ),
    "reader-study": (
        "Blinded real-vs-synthetic reading by physicians in the browser.",
        {
            "create": ("synthscan.cli.reader_study:create", "Build a blinded real-vs-synthetic case set."),
            "serve": ("synthscan.cli.reader_study:serve", "Serve the reading web page on localhost."),
            "score": ("synthscan.cli.reader_study:score", "Score readers like the paper."),
            "auto": ("synthscan.cli.reader_study:auto", "Score the cases with a machine reader."),
        },
    ),
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when invoked."""

    def __init__(self, *args, lazy: dict, path: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy
        self.path = path  # e.g. "classifier" (empty for the root): names commands for the boundary

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        entry = self.lazy.get(name)
        if entry is None:
            return None
        target, detail = entry
        if isinstance(detail, dict):
            return LazyGroup(name=name, lazy=detail, path=name, help=target)
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        return guarded(command, f"{self.path} {name}".strip())

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name, (first, second) in sorted(self.lazy.items()):
            rows.append((name, first if isinstance(second, dict) else second))  # a group's help, a command's
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class RootGroup(LazyGroup):
    """The ``synthscan`` group: runs every subcommand inside the error boundary."""

    def invoke(self, ctx: click.Context):
        return run_guarded(ctx, lambda: super(RootGroup, self).invoke(ctx))


@click.group(cls=RootGroup, lazy=COMMANDS, context_settings={"show_default": True})
@click.version_option(package_name="synthscan")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages; show the traceback of a failure.")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """synthscan: synthetic whole-body bone scintigraphy for nuclear-medicine AI research."""
    ctx.meta[VERBOSE] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:  # accelerate's INFO lines (device placement) would interleave with progress bars
        logging.getLogger("accelerate").setLevel(logging.WARNING)
    ctx.with_resource(logging_redirect_tqdm())  # log lines print above a progress bar, not through it
