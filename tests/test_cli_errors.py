"""Every command fails cleanly: one line naming the file, no traceback, no partial output.

Each command is driven with an output folder it cannot write and with a dataset holding a corrupt
study. Root ignores permission bits, so as root the locked folder is made immutable (``chattr +i``)
where the file system allows it, else it is a path through a regular file (which cannot be created
either); the boundary reports all three the same way.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from PIL import Image
from toy_scans import toy_dataset

from synthscan.cli import main
from synthscan.cli.boundary import RESUMABLE, describe, run_guarded

CYCLE = [("normal", 0), ("metastasis", 0), ("amyloidosis", 3), ("amyloidosis", 1)]
CORRUPT = "s0003.npz"


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def assert_clean_failure(result, named: str, out: Path | None) -> None:
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error:"), result.output
    assert named in result.output, result.output
    if out is not None:
        assert not out.exists(), f"partial output left in {out}: {sorted(p.name for p in out.rglob('*'))}"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_generator) -> dict[str, Path]:
    """Small valid inputs of every command, and a copy of the patient dataset with a corrupt study."""
    root = tmp_path_factory.mktemp("inputs")
    real = toy_dataset(root / "real", 16, cycle=CYCLE, source="simulated").root
    real128 = toy_dataset(root / "real128", 8, cycle=CYCLE, source="simulated", matrix=(128, 32)).root
    synthetic = toy_dataset(root / "synthetic", 16, cycle=CYCLE, source="synthetic", prefix="y", seed=1).root
    bad = root / "bad"
    shutil.copytree(real, bad)
    path = bad / "studies" / CORRUPT
    path.write_bytes(path.read_bytes()[:200])
    run = root / "classifier"
    result = invoke(
        "classifier", "train", "--data", str(real), "--out", str(run), "--config", "tiny",
        "--set", "train.max_steps=2", "--set", "train.eval_every=1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    study = root / "reader-study"
    result = invoke("reader-study", "create", "--real", str(real), "--synthetic", str(synthetic),
                    "-n", "4", "--out", str(study))  # fmt: skip
    assert result.exit_code == 0, result.output
    sampled = root / "sampled"  # a study of the shipped model, with its DICOM object
    result = invoke("sample", "--condition", "normal", "-n", "1", "--format", "dicom", "--out", str(sampled),
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    png = root / "png" / "normal"
    for view, name in (("Anterior", "A1.png"), ("Posterior", "P1.png")):
        (png / view).mkdir(parents=True)
        Image.new("I;16", (16, 64), 10).save(png / view / name)
    external = toy_dataset(root / "external", 16, cycle=CYCLE, source="simulated", prefix="e", site="b").root
    # a real pool whose validation split holds the 5 positives per task the augmentation study needs
    pool = toy_dataset(root / "pool", 100, cycle=CYCLE, source="simulated", prefix="q", site="q").root
    return {"real": real, "synthetic": synthetic, "bad": bad, "run": run, "study": study, "sampled": sampled,
            "pool": pool, "png": png.parent, "bad_study": path, "external": external, "real128": real128,
            "model": tiny_generator}  # fmt: skip


@pytest.fixture
def locked(tmp_path) -> Path:
    """A folder in which nothing can be created."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        yield folder
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    else:
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        yield blocker


# command → its arguments with output OUT (a path that must not exist afterwards) and inputs I
UNWRITABLE: dict[str, Callable[[dict[str, Path], Path], list[str]]] = {
    "simulate": lambda i, out: ["simulate", "-n", "1", "--out", str(out), "--set", "matrix=[64,16]",
                                "--no-progress"],
    "view": lambda i, out: ["view", str(i["real"]), "--out", str(out)],
    "import-public": lambda i, out: ["import-public", "png-folders", str(i["png"]), "--out", str(out),
                                     "--matrix", "64x16", "--no-progress"],
    "import-dicom": lambda i, out: ["import-dicom", str(i["sampled"] / "dicom"), "--out", str(out),
                                    "--salt", "s", "--matrix", "64x16", "--no-progress"],
    "export-dicom": lambda i, out: ["export-dicom", str(i["sampled"]), "--out", str(out), "--no-progress"],
    "train": lambda i, out: ["train", "--data", str(i["real"]), "--config", "tiny", "--out", str(out),
                             "--no-progress"],
    "sample": lambda i, out: ["sample", "--condition", "normal", "-n", "1", "--out", str(out),
                              "--no-progress"],
    "augment": lambda i, out: ["augment", str(i["real128"]), "--model", str(i["model"]), "--per-class", "1",
                               "--out", str(out)],
    "classifier train": lambda i, out: ["classifier", "train", "--data", str(i["real"]), "--out", str(out),
                                        "--config", "tiny"],
    "classifier predict": lambda i, out: ["classifier", "predict", "--model", str(i["run"]), "--data",
                                          str(i["real"]), "--out", str(out)],
    "evaluate augmentation": lambda i, out: ["evaluate", "augmentation", "--real", str(i["pool"]),
                                             "--synthetic", str(i["synthetic"]), "--test", str(i["external"]),
                                             "--ratios", "0", "--real-sizes", "10", "--draws", "2",
                                             "--config", "tiny", "--out", str(out)],
    "evaluate fidelity": lambda i, out: ["evaluate", "fidelity", "--real", str(i["real"]), "--synthetic",
                                         str(i["synthetic"]), "--k", "2", "--out", str(out)],
    "audit privacy": lambda i, out: ["audit", "privacy", "--train", str(i["real"]), "--synthetic",
                                     str(i["synthetic"]), "--out", str(out)],
    "reader-study create": lambda i, out: ["reader-study", "create", "--real", str(i["real"]), "--synthetic",
                                           str(i["synthetic"]), "-n", "4", "--out", str(out)],
    "reader-study score": lambda i, out: ["reader-study", "score", str(i["study"]), "--out", str(out),
                                          "--bootstrap", "10"],
}  # fmt: skip

# command → its arguments reading the dataset with a corrupt study (I["bad"]) and writing OUT
CORRUPT_INPUT: dict[str, Callable[[dict[str, Path], Path], list[str]]] = {
    "view": lambda i, out: ["view", str(i["bad"]), "--out", str(out), "-n", "16"],
    "view a study file": lambda i, out: ["view", str(i["bad_study"]), "--out", str(out)],
    "check": lambda i, out: ["check", str(i["bad"])],
    "export-dicom": lambda i, out: ["export-dicom", str(i["bad"]), "--out", str(out), "--no-progress"],
    "train": lambda i, out: ["train", "--data", str(i["bad"]), "--config", "tiny", "--out", str(out)],
    "augment": lambda i, out: ["augment", str(i["bad"]), "--out", str(out)],
    "classifier train": lambda i, out: ["classifier", "train", "--data", str(i["bad"]), "--out", str(out),
                                        "--config", "tiny"],
    "classifier predict": lambda i, out: ["classifier", "predict", "--model", str(i["run"]), "--data",
                                          str(i["bad"]), "--out", str(out)],
    "evaluate augmentation": lambda i, out: ["evaluate", "augmentation", "--real", str(i["bad"]),
                                             "--synthetic", str(i["synthetic"]), "--test", str(i["real"]),
                                             "--ratios", "0", "--seeds", "1", "--out", str(out)],
    "evaluate fidelity": lambda i, out: ["evaluate", "fidelity", "--real", str(i["bad"]), "--synthetic",
                                         str(i["synthetic"]), "--out", str(out)],
    "evaluate realism": lambda i, out: ["evaluate", "realism", str(i["real"]), str(i["bad"]), "--json",
                                        str(out)],
    "audit privacy": lambda i, out: ["audit", "privacy", "--train", str(i["bad"]), "--synthetic",
                                     str(i["synthetic"]), "--out", str(out)],
    "reader-study create": lambda i, out: ["reader-study", "create", "--real", str(i["bad"]), "--synthetic",
                                           str(i["synthetic"]), "-n", "4", "--out", str(out)],
}  # fmt: skip


@pytest.mark.parametrize("command", sorted(UNWRITABLE))
def test_an_unwritable_output_folder_fails_in_one_line_naming_it(command, inputs, locked):
    out = locked / "out"
    result = invoke(*UNWRITABLE[command](inputs, out))
    assert_clean_failure(result, str(locked), out)


@pytest.mark.parametrize("command", sorted(CORRUPT_INPUT))
def test_a_corrupt_study_fails_in_one_line_naming_it_before_writing_anything(command, inputs, tmp_path):
    out = tmp_path / "new" / "out"
    result = invoke(*CORRUPT_INPUT[command](inputs, out))
    assert_clean_failure(result, CORRUPT, tmp_path / "new")


@pytest.mark.parametrize("other", [["autoencoder.from_model=nowhere"], ["autoencoder.latent_channels=3"]])
def test_train_refuses_an_autoencoder_it_cannot_reuse_before_writing(other, inputs, tmp_path):
    """`autoencoder.from_model`: a folder that is no generator, or one whose autoencoder the config's
    fields do not match, stops `train` in one line naming the setting."""
    out = tmp_path / "run"
    sets = [f"autoencoder.from_model={inputs['model']}", *other]
    result = invoke("train", "--data", str(inputs["real"]), "--config", "tiny", "--out", str(out),
                    *(a for s in sets for a in ("--set", s)), "--no-progress")  # fmt: skip
    assert_clean_failure(result, "autoencoder.from_model", out)


def test_verbose_shows_the_traceback(inputs, tmp_path):
    result = invoke("-v", "view", str(inputs["bad_study"]), "--out", str(tmp_path / "v.png"))
    assert result.exit_code != 0 and "Traceback" in result.output and CORRUPT in result.output


def test_os_errors_name_the_file_and_the_fix():
    error = PermissionError(errno.EACCES, "Permission denied", "/data/out")
    assert describe(error) == (
        "cannot use /data/out: Permission denied "
        "(choose a folder you may write to (or read from), or change its permissions)"
    )
    full = OSError(errno.ENOSPC, "No space left on device", "/data/out/x.npz")
    assert "/data/out/x.npz" in describe(full) and "disk is full" in describe(full)


def _commands(group: click.Group, ctx: click.Context, path: tuple[str, ...] = ()):
    """Every leaf command of ``group`` with its path (lazy groups imported)."""
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            yield from _commands(command, ctx, (*path, name))
        else:
            yield " ".join((*path, name)), command


def test_every_numeric_option_is_bounded():
    """A bare int or float accepts nonsense silently (``serve --port 99999`` served on another port,
    ``score --bootstrap -5`` wrote a report): each numeric option states its range, so click refuses
    an out-of-range value in one line naming the option."""
    ctx = click.Context(main)
    unbounded = [
        f"{name} {option.opts[0]}"
        for name, command in _commands(main, ctx)
        for option in command.params
        if isinstance(option, click.Option) and option.type in (click.INT, click.FLOAT)
    ]
    assert unbounded == []
    for args in (["reader-study", "serve", "x", "--port", "99999"], ["view", "x", "--seed", "-1"]):
        result = invoke(*args)
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert f"Invalid value for '{args[-2]}'" in result.output


def test_running_out_of_memory_is_one_line_with_the_fix_other_runtime_errors_keep_their_traceback():
    ctx = click.Context(main)

    def fail(message: str):
        def call():
            raise RuntimeError(message)

        return call

    oom = "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried 8 GB"
    with pytest.raises(click.ClickException, match=r"out of memory .*lower the batch size"):
        run_guarded(ctx, fail(oom))
    with pytest.raises(RuntimeError, match="a bug"):
        run_guarded(ctx, fail("a bug"))

    def numpy_allocation():
        raise MemoryError("Unable to allocate 8.00 GiB for an array with shape (1000, 2, 1024, 256)")

    with pytest.raises(click.ClickException, match=r"out of memory \(Unable to allocate 8.00 GiB"):
        run_guarded(ctx, numpy_allocation)


def test_every_command_that_promises_to_resume_keeps_its_output_on_failure():
    """A command whose ``--out`` help says to rerun to resume must not have that output removed when it
    fails or is interrupted (``distill`` was missing: Ctrl-C deleted its run folder and checkpoints)."""
    ctx = click.Context(main)
    promising = {
        name
        for name, command in _commands(main, ctx)
        for option in command.params
        if option.name == "out" and "resume" in (getattr(option, "help", None) or "")
    }
    assert {"train", "distill", "finetune", "sample"} <= promising
    assert promising - RESUMABLE == set()


def test_a_reader_that_leaves_the_pipe_early_gets_no_error_line(tmp_path):
    """`synthscan info --card | head -1`: the closed pipe ends the command quietly, not with an Error line."""
    command = [sys.executable, "-m", "synthscan", "info", "--card"]
    # cwd away from a source checkout, whose synthscan/ folder would shadow the installed package
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0, cwd=tmp_path
    )
    assert process.stdout.read(1)  # the first byte arrives, then the reader goes away
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert b"Error" not in stderr and b"Traceback" not in stderr, stderr.decode()


def test_a_broken_pipe_other_than_stdout_is_reported():
    """A child process's closed stdin is a failure to explain, not a reader who left."""

    def write_to_a_dead_child():
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    with pytest.raises(click.ClickException, match="Broken pipe"):
        run_guarded(click.Context(main), write_to_a_dead_child)
