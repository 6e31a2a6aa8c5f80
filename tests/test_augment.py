"""Augmentation planning and idempotent, resumable execution (sampler injected; no generator needed)."""

from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from synthscan.generator.augment import check_model_fits, execute_plan, plan_augmentation, study_seed

from synthscan.cli import main
from synthscan.dataset import Dataset, DatasetError

MATRIX = (64, 16)


def imbalanced(root):
    dataset = Dataset.create(root, matrix=MATRIX)
    rng = np.random.default_rng(0)
    rows = [("normal", None)] * 10 + [("metastasis", None)] * 4 + [("amyloidosis", 1), ("amyloidosis", 3)] * 2
    with dataset.writer() as w:
        for i, (label, grade) in enumerate(rows):
            w.add(
                rng.poisson(20, size=(2, *MATRIX)),
                study_id=f"r{i}",
                patient_id=f"p{i}",
                label=label,
                perugini_grade=grade,
            )
    return dataset


def seeded_sampler(study):
    rng = np.random.default_rng(study.seed)
    return rng.poisson(20, size=(2, *MATRIX)), {"tracer": "MDP", "seed": study.seed}


def test_balance_plan(tmp_path):
    dataset = imbalanced(tmp_path / "d")
    plan = plan_augmentation(dataset)
    assert plan.target_synthetic == {"normal": 0, "metastasis": 6, "amyloidosis": 6}
    grades = [s.perugini_grade for s in plan.studies if s.label == "amyloidosis"]
    assert sorted(grades) == [1, 1, 1, 3, 3, 3]  # follows the real grade mix
    assert len({s.seed for s in plan.studies}) == len(plan.studies)
    assert plan.studies[0].seed == study_seed(0, "metastasis", None, 0)
    assert [s.seed for s in plan_augmentation(dataset).studies] == [s.seed for s in plan.studies]
    assert [s.seed for s in plan_augmentation(dataset, seed=1).studies] != [s.seed for s in plan.studies]
    per = plan_augmentation(dataset, mode="per-class", per_class=2)
    assert {s.label for s in per.studies} == {"normal", "metastasis", "amyloidosis"} and len(per.studies) == 6
    assert plan_augmentation(dataset, mode="ratio", ratio=0.5).target_synthetic["normal"] == 5


def test_execute_is_idempotent_and_resumes_identically(tmp_path):
    dataset = imbalanced(tmp_path / "d")
    plan = plan_augmentation(dataset)
    calls = []

    def failing(study):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(study.study_id)
        return seeded_sampler(study)

    with pytest.raises(KeyboardInterrupt):
        execute_plan(plan, dataset, failing, model_hash="abc")
    reopened = Dataset.open(dataset.root)
    assert len(reopened.filter(source="synthetic")) == 5  # the manifest was persisted on exit
    resumed = plan_augmentation(reopened)
    assert resumed.already_present == 5
    assert execute_plan(resumed, reopened, seeded_sampler, model_hash="abc") == 7
    final = Dataset.open(dataset.root)
    counts = {label: len(final.filter(label=label)) for label in ("normal", "metastasis", "amyloidosis")}
    assert counts == {"normal": 10, "metastasis": 10, "amyloidosis": 10}
    assert plan_augmentation(final).studies == []

    fresh = imbalanced(tmp_path / "fresh")
    execute_plan(plan_augmentation(fresh), fresh, seeded_sampler, model_hash="abc")
    for record in final.filter(source="synthetic"):
        assert np.array_equal(final.read(record).counts, fresh.read(record.study_id).counts)
        assert record.get("model_sha256") == "abc" and record.seed is not None


def test_refusals(tmp_path):
    dataset = imbalanced(tmp_path / "d")
    with pytest.raises(DatasetError, match="does not support"):
        plan_augmentation(dataset, supported=("normal", "metastasis"))
    with pytest.raises(DatasetError, match="generates"):
        check_model_fits(dataset, SimpleNamespace(matrix=(1024, 256)))
    assert check_model_fits(dataset, SimpleNamespace(matrix=MATRIX)) == (
        "normal",
        "metastasis",
        "amyloidosis",
    )


def test_cli_dry_run(tmp_path):
    dataset = imbalanced(tmp_path / "d")
    result = CliRunner().invoke(main, ["augment", str(dataset.root), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "12 studies to add" in result.output
    assert len(Dataset.open(dataset.root)) == 18  # nothing written
    both = CliRunner().invoke(main, ["augment", str(dataset.root), "--ratio", "1", "--per-class", "2"])
    assert both.exit_code != 0 and "at most one" in both.output
