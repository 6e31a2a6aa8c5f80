"""``synthscan sample`` as a user meets it: grades, resume, no silent mixing, shareable outputs."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from toy_scans import toy_dataset

from synthscan.cli import main
from synthscan.dataset import Dataset, DatasetError
from synthscan.generator.sampling import SampleRequest, sample_to_dataset, write_samples
from synthscan.generator.storage import load_pipeline


def sample(model, *args: str):
    return CliRunner().invoke(main, ["sample", "--model", str(model), "--no-progress", *args])


def test_a_grade_without_out_names_the_folder_after_condition_and_grade(
    tiny_generator, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    result = sample(tiny_generator, "--condition", "amyloidosis", "--grade", "3", "-n", "2")
    assert result.exit_code == 0, result.output
    dataset = Dataset.open(tmp_path / "amyloidosis-g3")
    assert {(r.label, r.perugini_grade) for r in dataset} == {("amyloidosis", 3)}


def test_synthetic_studies_carry_no_made_up_tracer(tiny_generator, tmp_path):
    assert (
        sample(
            tiny_generator, "--condition", "amyloidosis", "-n", "1", "--out", str(tmp_path / "a")
        ).exit_code
        == 0
    )
    (record,) = Dataset.open(tmp_path / "a")
    # the tracer the study was conditioned on (the model's training data was all DPD); a model without
    # tracer conditions (the shipped one) records none: test_generator's shipped-model tests
    assert record.tracer == "DPD" and record.extra["burden"] == "unknown"


def test_guidance_must_be_positive(tiny_generator, tmp_path):
    result = sample(tiny_generator, "--condition", "normal", "--guidance", "0", "--out", str(tmp_path / "g"))
    assert result.exit_code != 0 and "--guidance" in result.output
    assert not (tmp_path / "g").exists()
    with pytest.raises(ValueError, match="guidance must be > 0"):
        load_pipeline(tiny_generator).guidance_for("normal", 0.0)


def test_png_views_are_viewable_by_default_and_raw_counts_on_request(tiny_generator, tmp_path):
    args = ["--condition", "metastasis", "-n", "1", "--format", "png"]
    assert sample(tiny_generator, *args, "--out", str(tmp_path / "view")).exit_code == 0
    (study,) = Dataset.open(tmp_path / "view").iter_studies()
    shown = Image.open(tmp_path / "view" / "png" / f"{study.record.study_id}_anterior.png")
    pixels = np.asarray(shown)
    assert shown.mode == "L" and pixels.min() == 0 and pixels.max() == 255  # full grey range
    assert sample(tiny_generator, *args, "--raw-counts", "--out", str(tmp_path / "raw")).exit_code == 0
    raw = np.asarray(Image.open(tmp_path / "raw" / "png" / f"{study.record.study_id}_anterior.png"))
    assert np.array_equal(raw, study.counts[0])
    refused = sample(tiny_generator, "--condition", "normal", "--raw-counts", "--out", str(tmp_path / "x"))
    assert refused.exit_code != 0 and "--format png only" in refused.output


def test_sampling_refuses_to_mix_conditions_models_or_patient_studies(tiny_generator, tmp_path):
    out = tmp_path / "normal"
    assert sample(tiny_generator, "--condition", "normal", "-n", "1", "--out", str(out)).exit_code == 0
    other = sample(tiny_generator, "--condition", "metastasis", "-n", "1", "--out", str(out))
    assert other.exit_code != 0 and "holds synthetic normal studies, not metastasis" in other.output
    assert len(Dataset.open(out)) == 1
    mixed = sample(
        tiny_generator, "--condition", "metastasis", "-n", "1", "--out", str(out), "--add-condition"
    )
    assert mixed.exit_code == 0, mixed.output
    assert sorted(r.label for r in Dataset.open(out)) == ["metastasis", "normal"]
    simulated = toy_dataset(tmp_path / "sim", 2, cycle=[("normal", 0)], source="simulated", matrix=(128, 32))
    args = ["--condition", "normal", "-n", "1", "--out", str(simulated.root)]
    for extra in ([], ["--add-condition"]):  # mixing conditions never means mixing in patients
        into = sample(tiny_generator, *args, *extra)
        assert into.exit_code != 0 and "holds 2 real or simulated studies" in into.output
    assert len(Dataset.open(simulated.root)) == 2
    pipeline = load_pipeline(tiny_generator)
    pipeline.sha256 = "0" * 64  # stands for another model
    with pytest.raises(DatasetError, match="synthetic studies of another model"):  # augment's path too
        write_samples(pipeline, Dataset.open(out), [SampleRequest("x", "normal", None, 9)], progress=False)


def test_sample_resume_verifies_what_it_skips_and_says_so(tiny_generator, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    out = tmp_path / "s"
    pipeline = load_pipeline(tiny_generator)
    dataset = sample_to_dataset(pipeline, out, condition="normal", n=3, progress=False)
    first = {r.study_id: dataset.read(r).counts for r in dataset}
    damaged = out / dataset.records[1].path
    damaged.write_bytes(damaged.read_bytes()[:50])
    resumed = sample_to_dataset(pipeline, out, condition="normal", n=3, progress=False)
    assert resumed.broken() == {}
    for record in resumed:
        assert np.array_equal(resumed.read(record).counts, first[record.study_id])
    assert "2 of 3 studies already there; regenerating 1 whose files are damaged" in caplog.text


def test_sigterm_stops_sampling_with_every_written_study_in_its_manifest(
    tiny_generator, tmp_path, monkeypatch
):
    import os
    import signal

    from synthscan.generator import sampling

    calls = []
    generate = sampling.generate_studies

    def generate_then_terminate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # as `kill PID` would, while the third study is being generated
            os.kill(os.getpid(), signal.SIGTERM)
        return generate(*args, **kwargs)

    monkeypatch.setattr(sampling, "generate_studies", generate_then_terminate)
    out = tmp_path / "s"
    result = sample(
        tiny_generator, "--condition", "normal", "-n", "6", "--batch-size", "1", "--out", str(out)
    )
    assert result.exit_code == 143
    files = sorted(p.name for p in (out / "synthetic").glob("*.npz"))
    assert len(files) == 2 and [Path(r.path).name for r in Dataset.open(out)] == files
