"""Sharing samples: the shipped model's no-patient statement, and audits that say when they cannot judge."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from toy_scans import toy_dataset

from synthscan.cli import main
from synthscan.dataset import Dataset, DatasetError
from synthscan.evaluation.privacy import flagged_studies_for_export, run_audit
from synthscan.generator.storage import (
    PRIVACY,
    default_model_dir,
    model_sha256,
    privacy_statement,
    shipped_models,
    write_privacy_statement,
)

CYCLE = [("normal", 0), ("metastasis", 0), ("amyloidosis", 2)]


def _synthetic(root, model_sha256_: str, n: int = 3) -> Dataset:
    dataset = Dataset.create(root, matrix=(64, 16))
    rng = np.random.default_rng(0)
    with dataset.writer() as writer:
        for i in range(n):
            writer.add(
                rng.poisson(4.0, (2, 64, 16)),
                study_id=f"syn{i}",
                patient_id=f"syn{i}",
                label="normal",
                perugini_grade=0,
                source="synthetic",
                seed=i,
                extra={"model_sha256": model_sha256_},
            )
    return dataset


@pytest.mark.parametrize("name", sorted(shipped_models()))
def test_every_shipped_model_states_that_it_saw_no_patients(name):
    folder = shipped_models()[name]
    statement = privacy_statement(folder)
    assert statement is not None
    assert statement["patients_seen"] == 0 and statement["training_sources"] == ["simulated"]
    assert statement["model_sha256"] == model_sha256(folder)


def test_a_statement_holds_only_for_its_own_model_and_only_without_real_training_data(tmp_path):
    model = tmp_path / "model"
    shutil.copytree(default_model_dir(), model)
    statement = json.loads((model / PRIVACY).read_text())
    (model / PRIVACY).write_text(json.dumps({**statement, "model_sha256": "0" * 64}))
    assert privacy_statement(model) is None  # carried over to another model: void
    index = json.loads((model / "model_index.json").read_text())
    (model / "model_index.json").write_text(json.dumps({**index, "training_sources": ["real", "simulated"]}))
    assert write_privacy_statement(model) is None and not (model / PRIVACY).exists()


def test_export_accepts_samples_of_a_model_that_saw_no_patients_without_an_audit(tmp_path):
    shipped = _synthetic(tmp_path / "shipped", model_sha256(default_model_dir()))
    assert flagged_studies_for_export(shipped) == []
    other = _synthetic(tmp_path / "other", "f" * 64)
    with pytest.raises(DatasetError, match="no current privacy audit"):
        flagged_studies_for_export(other)
    other.update_provenance(privacy_statements={"f" * 64: {"patients_seen": 0}})  # recorded by the sampler
    assert flagged_studies_for_export(Dataset.open(other.root)) == []


def test_an_audit_against_too_few_training_studies_warns_that_it_cannot_estimate_the_percentile(tmp_path):
    synthetic = toy_dataset(tmp_path / "syn", 6, cycle=CYCLE, source="synthetic", prefix="y", seed=1)
    small = toy_dataset(tmp_path / "small", 20, cycle=CYCLE, source="simulated")
    audit = run_audit(small, synthetic)
    assert len(audit.warnings) == 1 and "only 20 real-to-real distances" in audit.warnings[0]
    assert "needs at least 100" in audit.warnings[0]
    assert run_audit(small, synthetic, threshold_percentile=5.0).warnings == []  # 20 >= 100 / 5
    result = CliRunner().invoke(
        main, ["audit", "privacy", "--train", str(small.root), "--synthetic", str(synthetic.root)]
    )
    assert result.exit_code == 0, result.output
    assert "Warning: image space: only 20 real-to-real distances" in result.output
    saved = json.loads((synthetic.root / "privacy_audit" / "results.json").read_text())
    assert saved["warnings"] == audit.warnings


def test_a_model_fine_tuned_on_real_studies_loses_the_statement(tiny_generator, tmp_path):
    from conftest import write_generator_dataset

    from synthscan.generator.train import finetune

    assert privacy_statement(tiny_generator) is not None  # trained on simulated studies
    data = write_generator_dataset(tmp_path / "data")
    manifest = data.root / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",simulated,", ",real,"))
    out = finetune(tiny_generator, Dataset.open(data.root), tmp_path / "tuned", steps=2, progress=False)
    assert json.loads((out / "model_index.json").read_text())["training_sources"] == ["real", "simulated"]
    assert privacy_statement(out) is None and not (out / PRIVACY).exists()


def test_training_a_simulator_model_further_on_simulated_studies_keeps_the_statement(
    tiny_generator, tmp_path
):
    from click.testing import CliRunner
    from conftest import write_generator_dataset

    from synthscan.cli import main
    from synthscan.generator.storage import model_sha256

    data = write_generator_dataset(tmp_path / "data")
    args = ["finetune", "--model", str(tiny_generator), "--data", str(data.root), "--steps", "2"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "more"), "--sources", "simulated"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "more"
    assert json.loads((out / "model_index.json").read_text())["training_sources"] == ["simulated"]
    assert privacy_statement(out) is not None and model_sha256(out) != model_sha256(tiny_generator)
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "none"), "--no-progress"])
    assert refused.exit_code == 1 and "holds no studies with source in ['real']" in refused.output
    assert len(refused.output.strip().splitlines()) == 1, refused.output


def test_augment_fine_tunes_on_the_training_patients_only(tiny_generator, tmp_path):
    """The classifier later validates and tests on the other patients: the generator must not see them."""
    from click.testing import CliRunner
    from conftest import write_generator_dataset

    from synthscan.classifier.config import ClassifierConfig
    from synthscan.classifier.train import real_split_records
    from synthscan.cli import main
    from synthscan.config import builtin_config, load_config

    data = write_generator_dataset(tmp_path / "data")
    manifest = data.root / "manifest.csv"
    manifest.write_text(manifest.read_text().replace(",simulated,", ",real,"))
    args = ["augment", str(data.root), "--model", str(tiny_generator), "--per-class", "1", "--finetune", "2"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    dataset = Dataset.open(data.root)
    train = real_split_records(
        dataset, load_config(ClassifierConfig, builtin_config("classifier", "default"))
    )["train"]
    assert 0 < len(train) < len(dataset.filter(source="real"))
    (card,) = (data.root / "models").glob("finetuned-*/README.md")
    assert f"{len(train)} studies ({{'real': {len(train)}}})" in card.read_text()
