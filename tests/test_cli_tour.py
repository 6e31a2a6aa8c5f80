"""A new user's tour: every README command, then the bad inputs of issue 19, in one working folder.

Each step runs in-process (``CliRunner``) and must end as expected with no traceback; a failing step
must leave no output behind. The README's sizes are cut down (tiny models, small n, small matrices)
so the tour runs in seconds; the README's first command at full size and generator training are
``slow``.
"""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthscan.cli import main
from synthscan.dataset import Dataset

TINY = ("--set", "matrix=[256,64]", "--set", "pixel_spacing_mm=9.6")


def run(*args: str, fails: str | None = None, out: str | None = None):
    """Run ``synthscan ARGS``; it succeeds, or with ``fails`` stops with one error line holding that text.

    ``out``: a path a failing step must not have created.
    """
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert "Traceback" not in result.output, result.output
    if fails is None:
        assert result.exit_code == 0, f"{args}: {result.output}"
    else:
        assert result.exit_code != 0, f"{args} should fail: {result.output}"
        assert result.output.strip().splitlines()[-1].startswith("Error:"), result.output
        assert fails in result.output, result.output
        assert out is None or not Path(out).exists(), f"{args} left {out}"
    return result


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """One study of the shipped model with its DICOM object (sampling at 1024x256 is the slow part)."""
    out = tmp_path_factory.mktemp("shipped") / "shipped"
    run("sample", "--condition", "normal", "-n", "1", "--format", "dicom", "--out", str(out), "--no-progress")
    return out


def test_readme_commands(here, tiny_generator, shipped):
    model = str(tiny_generator)
    # the first lines: sample with the shipped model, then look at the samples
    run("sample", "--condition", "metastasis", "-n", "2", "--out", "synthetic-metastasis", "--no-progress")
    run("view", "synthetic-metastasis", "--out", "synthetic-metastasis.png")
    assert Image.open("synthetic-metastasis.png").mode == "L"
    run("info")
    run("info", "--card")
    # simulating
    run("simulate", "-n", "4", "--out", "sim/", "--site", "centre_a", "--seed", "0", "--workers", "2", *TINY)
    run("view", "sim", "--out", "sim.png", "--n", "8")
    run("view", "sim", "--study", "centre_a-000003", "--out", "one.png")
    run("simulate", "-n", "1", "--out", "tiny/", *TINY, "--set", "disease.metastasis_prevalence=0.5")
    run("check", "sim")
    # generator: sample and augment with a tiny model (128x32)
    run("sample", "--condition", "metastasis", "-n", "2", "--model", model, "--out", "syn-m", "--no-progress")
    run("sample", "--condition", "amyloidosis", "-n", "2", "--model", model, "--format", "png", "--out",
        "syn-a", "--no-progress")  # fmt: skip
    data = _toy(here / "data", 24)
    run("augment", str(data), "--model", model, "--dry-run")
    run("augment", str(data), "--model", model, "--per-class", "1")
    run("augment", str(data), "--model", model, "--per-class", "1")  # idempotent
    # DICOM out and back in (the shipped model's sample: `sample ... --format dicom`)
    run("export-dicom", str(shipped), "--out", "dicom/", "--no-progress")
    run("import-dicom", "dicom/", "--out", "imported", "--salt", "secret", "--trust-synthetic-marker",
        "--matrix", "256x64", "--no-progress")  # fmt: skip
    png = here / "png-src" / "normal"
    for view, name in (("Anterior", "A1.png"), ("Posterior", "P1.png")):
        (png / view).mkdir(parents=True)
        Image.new("I;16", (16, 64), 10).save(png / view / name)
    run("import-public", "png-folders", "png-src", "--out", "public", "--matrix", "64x16", "--no-progress")
    # classifier, fidelity, privacy, reader study on toy 64x16 data
    real = _toy(here / "real", 24, matrix=(64, 16))
    external = _toy(here / "external", 16, matrix=(64, 16), seed=3)
    synthetic = _toy(here / "synth", 16, matrix=(64, 16), seed=5, source="synthetic")
    run("classifier", "train", "--data", str(real), "--out", "runs/cls", "--config", "tiny",
        "--set", "train.max_steps=4", "--set", "train.eval_every=2")  # fmt: skip
    run("classifier", "predict", "--model", "runs/cls", "--data", str(external))
    run("evaluate", "fidelity", "--real", str(real), "--synthetic", str(synthetic), "--features", "runs/cls",
        "--k", "2", "--out", "fidelity_report")  # fmt: skip
    run("audit", "privacy", "--train", str(real), "--synthetic", str(synthetic), "--features", "runs/cls")
    run("reader-study", "create", "--real", str(real), "--synthetic", str(synthetic), "-n", "4",
        "--readers", "2", "--out", "study")  # fmt: skip
    run("reader-study", "score", "study", "--out", "study_report", "--bootstrap", "10")
    run("reader-study", "auto", "study", "--model", "runs/cls", "--folds", "2")


def test_the_bad_inputs_of_issue_19(here, tiny_generator, shipped):
    model = str(tiny_generator)
    # 1. a grade without --out
    run("sample", "--condition", "amyloidosis", "--grade", "3", "-n", "1", "--model", model, "--no-progress")
    assert {r.perugini_grade for r in Dataset.open("amyloidosis-g3")} == {3}
    # 2. an unwritable output folder, a corrupt study
    blocker = here / "a-file"  # root ignores permission bits; nothing can be created below a file
    blocker.write_text("")
    run("simulate", "-n", "1", "--out", str(blocker / "sim"), *TINY, fails=str(blocker / "sim"))
    sim = here / "sim"
    run("simulate", "-n", "3", "--out", str(sim), *TINY, "--no-progress")
    broken = sim / "studies" / "centre_a-000001.npz"
    pristine = broken.read_bytes()
    broken.write_bytes(pristine[:100])
    for args in (
        ("view", str(sim), "--out", "v.png"),
        ("export-dicom", str(sim), "--out", "d"),
        ("classifier", "train", "--data", str(sim), "--out", "c", "--config", "tiny"),
        ("evaluate", "fidelity", "--real", str(sim), "--synthetic", str(sim), "--out", "f"),
    ):
        run(*args, fails="centre_a-000001.npz", out=args[args.index("--out") + 1])
    run("check", str(sim), fails="centre_a-000001.npz has 100 bytes")
    # 3. resume verifies what it skips; a smaller -n says so
    (sim / "studies" / "centre_a-000002.npz").unlink()
    run("simulate", "-n", "3", "--out", str(sim), *TINY, "--no-progress")
    run("check", str(sim))
    assert broken.read_bytes()[:100] == pristine[:100] and len(broken.read_bytes()) > 100
    run("simulate", "-n", "2", "--out", str(sim), *TINY, "--no-progress")
    # 4. no silent mixing
    toy = _toy(here / "toy128", 8)
    run("sample", "--condition", "normal", "-n", "1", "--model", model, "--out", str(toy),
        fails="real or simulated studies")  # fmt: skip
    run("sample", "--condition", "normal", "-n", "1", "--model", model, "--out", "syn", "--no-progress")
    run("sample", "--condition", "metastasis", "-n", "1", "--model", model, "--out", "syn",
        fails="not metastasis")  # fmt: skip
    # 5. the shipped model's samples export without an audit; a tiny reference set gets a warning
    run("export-dicom", str(shipped), "--out", "shipped-dicom", "--no-progress")
    real, synthetic = _toy(here / "r", 20, matrix=(64, 16)), _toy(here / "s", 4, (64, 16), 2, "synthetic")
    audit = run("audit", "privacy", "--train", str(real), "--synthetic", str(synthetic))
    assert "only 20 real-to-real distances, too few to estimate their percentile 1" in audit.output
    # 6. viewable PNGs, files for colleagues
    run("sample", "--condition", "normal", "-n", "1", "--model", model, "--format", "png", "--out", "p",
        "--no-progress")  # fmt: skip
    (view,) = sorted(Path("p/png").glob("*_anterior.png"))
    assert np.asarray(Image.open(view)).max() == 255
    assert stat.S_IMODE(Path("p/manifest.csv").stat().st_mode) & 0o044  # readable by group and others
    assert {r.tracer for r in Dataset.open("p")} == {"DPD"}  # conditioned on its DPD-only training data
    # 7. bad --set values and guidance
    run("classifier", "train", "--data", str(real), "--out", "c2", "--set", "train.max_steps=abc",
        fails="train.max_steps must be an integer", out="c2")  # fmt: skip
    run("simulate", "-n", "1", "--out", "s2", "--set", "disease.metastasis_prevalence=abc",
        fails="Invalid value for --set", out="s2")  # fmt: skip
    run("train", "--data", str(toy), "--config", "tiny", "--out", "r2", "--set", "diffusion.steps=-3",
        fails="diffusion.steps must be >= 1", out="r2")  # fmt: skip
    run("sample", "--condition", "normal", "--guidance", "0", "--out", "g0", fails="--guidance", out="g0")
    # 8. friction
    run("view", str(sim), "-n", "2", "--out", "two.png")
    data = _toy(here / "data", 12)
    run("augment", str(data), "--balance", "--per-class", "2", "--model", model,
        fails="not --balance and --per-class")  # fmt: skip
    run("augment", str(data), "--dry-run", fails="the model generates (1024, 256) studies")
    assert "Check synthetic scans before sharing" in run("audit", "--help").output
    assert "synthscan info" in run("sample", "--help").output
    empty = here / "empty"
    empty.mkdir()
    run("import-dicom", str(empty), "--out", "nothing", "--salt", "s", fails="", out="nothing")


@pytest.mark.slow
def test_readme_first_command_and_training_at_full_size(here, generator_dataset):
    run("sample", "--condition", "metastasis", "-n", "100", "--out", "synthetic-metastasis")
    run("view", "synthetic-metastasis", "--out", "synthetic-metastasis.png")
    run("train", "--data", str(generator_dataset.root), "--config", "tiny", "--out", "RUN", "--no-progress")
    run("sample", "--condition", "metastasis", "-n", "4", "--model", "RUN/model", "--no-progress")
    shutil.rmtree("RUN/model")
    run("train", "--data", str(generator_dataset.root), "--config", "tiny", "--out", "RUN", "--no-progress")
    assert Path("RUN/model/model_index.json").is_file()  # the rerun finished the saved run


def _toy(root: Path, n: int, matrix=(128, 32), seed: int = 0, source: str = "simulated") -> Path:
    from toy_scans import toy_dataset

    cycle = [("normal", 0), ("metastasis", 0), ("amyloidosis", 3), ("amyloidosis", 1)]
    prefix = "y" if source == "synthetic" else "s"
    return toy_dataset(root, n, cycle=cycle, matrix=matrix, seed=seed, source=source, prefix=prefix).root
