"""Augmentation planning and idempotent, resumable execution with a tiny trained generator."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from synthscan.cli import main
from synthscan.dataset import Dataset, DatasetError
from synthscan.generator import sampling
from synthscan.generator.augment import check_model_fits, execute_plan, plan_augmentation, study_seed
from synthscan.generator.storage import load_pipeline

MATRIX = (128, 32)


def imbalanced(root, source="real"):
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
                source=source,
            )
    return dataset


@pytest.mark.parametrize("source", ["real", "simulated"])
def test_balance_plan(tmp_path, source):
    dataset = imbalanced(tmp_path / "d", source)
    plan = plan_augmentation(dataset)
    assert plan.target_synthetic == {"normal": 0, "metastasis": 6, "amyloidosis": 6}
    grades = [s.grade for s in plan.studies if s.label == "amyloidosis"]
    assert sorted(grades) == [1, 1, 1, 3, 3, 3]  # follows the real grade mix
    assert len({s.seed for s in plan.studies}) == len(plan.studies)
    assert plan.studies[0].seed == study_seed(0, "metastasis", None, 0)
    assert [s.seed for s in plan_augmentation(dataset).studies] == [s.seed for s in plan.studies]
    assert [s.seed for s in plan_augmentation(dataset, seed=1).studies] != [s.seed for s in plan.studies]
    per = plan_augmentation(dataset, mode="per-class", per_class=2)
    assert {s.label for s in per.studies} == {"normal", "metastasis", "amyloidosis"} and len(per.studies) == 6
    assert plan_augmentation(dataset, mode="ratio", ratio=0.5).target_synthetic["normal"] == 5


def test_a_plan_grown_in_steps_keeps_every_grade_study_of_the_smaller_one(tmp_path):
    dataset = Dataset.create(tmp_path / "d", matrix=MATRIX)
    rng = np.random.default_rng(0)
    grades = [1] * 6 + [2] * 6 + [3] * 2  # largest remainders: 10 → (4, 4, 2), 11 → (5, 5, 1)
    with dataset.writer() as w:
        for i, grade in enumerate(grades):
            w.add(rng.poisson(20, size=(2, *MATRIX)), study_id=f"r{i}", patient_id=f"p{i}",
                  label="amyloidosis", perugini_grade=grade, source="real")  # fmt: skip
    planned = [
        {s.study_id for s in plan_augmentation(dataset, mode="per-class", per_class=n).studies}
        for n in range(1, 30)
    ]
    assert all(smaller <= larger for smaller, larger in itertools.pairwise(planned))
    eleven = [s.grade for s in plan_augmentation(dataset, mode="per-class", per_class=11).studies]
    assert [eleven.count(g) for g in (1, 2, 3)] == [5, 4, 2]


def test_plan_follows_the_datasets_tracer_mix_for_a_model_with_tracer_conditions(tmp_path):
    dataset = Dataset.create(tmp_path / "d", matrix=MATRIX)
    rng = np.random.default_rng(0)
    rows = [("normal", "MDP")] * 12 + [("metastasis", "HDP")] * 3 + [("metastasis", "DPD")] * 1
    with dataset.writer() as w:
        for i, (label, tracer) in enumerate(rows):
            w.add(rng.poisson(20, size=(2, *MATRIX)), study_id=f"r{i}", patient_id=f"p{i}", label=label,
                  perugini_grade=None, source="real", tracer=tracer)  # fmt: skip
    plan = plan_augmentation(dataset, mode="per-class", per_class=8, tracers=("MDP", "HDP", "DPD"))
    metastasis = [s.tracer for s in plan.studies if s.label == "metastasis"]
    assert metastasis.count("HDP") == 6 and metastasis.count("DPD") == 2, "the metastases' own 3:1 mix"
    assert set(metastasis[:4]) == {"HDP", "DPD"}, "interleaved: an interrupted run keeps the mix"
    amyloid = [s.tracer for s in plan.studies if s.label == "amyloidosis"]
    assert amyloid.count("MDP") == 6 and amyloid.count("HDP") + amyloid.count("DPD") == 2, (
        "no amyloidosis of its own: the dataset's overall 12:3:1 mix"
    )
    assert "tracers of the studies to add (each condition's mix in the dataset)" in plan.table()
    # a study id keeps its tracer whatever the target: growing a dataset in steps keeps the mix
    tracers = ("MDP", "HDP", "DPD")
    by_id = {s.study_id: s.tracer for s in plan.studies}
    smaller = plan_augmentation(dataset, mode="per-class", per_class=3, tracers=tracers)
    assert all(by_id[s.study_id] == s.tracer for s in smaller.studies)
    larger = plan_augmentation(dataset, mode="per-class", per_class=20, tracers=tracers)
    grown = [s.tracer for s in larger.studies if s.label == "metastasis"]
    assert grown[:8] == metastasis and grown.count("HDP") == 15 and grown.count("DPD") == 5
    untraced = plan_augmentation(dataset, mode="per-class", per_class=8)
    assert {s.tracer for s in untraced.studies} == {None}, "a model without tracer conditions draws none"


def test_execute_is_idempotent_and_resumes_identically(tmp_path, tiny_generator, monkeypatch):
    pipeline = load_pipeline(tiny_generator)
    dataset = imbalanced(tmp_path / "d")
    plan = plan_augmentation(dataset)
    real_generate = sampling.generate_studies
    calls = []

    def failing(*args, **kwargs):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(sampling, "generate_studies", failing)
    with pytest.raises(KeyboardInterrupt):
        execute_plan(plan, dataset, pipeline, batch_size=1, progress=False)
    monkeypatch.setattr(sampling, "generate_studies", real_generate)
    reopened = Dataset.open(dataset.root)
    assert len(reopened.filter(source="synthetic")) == 5  # the manifest was persisted on exit
    resumed = plan_augmentation(reopened)
    assert resumed.already_present == 5
    assert execute_plan(resumed, reopened, pipeline, progress=False) == 7
    final = Dataset.open(dataset.root)
    counts = {label: len(final.filter(label=label)) for label in ("normal", "metastasis", "amyloidosis")}
    assert counts == {"normal": 10, "metastasis": 10, "amyloidosis": 10}
    assert plan_augmentation(final).studies == []
    assert all(r.path.startswith("synthetic/") for r in final.filter(source="synthetic"))

    fresh = imbalanced(tmp_path / "fresh")
    execute_plan(plan_augmentation(fresh), fresh, pipeline, batch_size=4, progress=False)
    for record in final.filter(source="synthetic"):
        assert np.array_equal(final.read(record).counts, fresh.read(record.study_id).counts)
        assert record.get("model_sha256") == pipeline.sha256 and record.seed is not None
    grades = sorted(r.perugini_grade for r in final.filter(source="synthetic", label="amyloidosis"))
    assert grades == [1, 1, 1, 3, 3, 3]


def test_cli_augments_in_place_and_reruns_add_nothing(tmp_path, tiny_generator):
    dataset = imbalanced(tmp_path / "d")
    args = ["augment", str(dataset.root), "--model", str(tiny_generator)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Added 12 synthetic studies" in result.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "0 studies to add (12 already present)" in again.output
    info = Dataset.open(dataset.root).info
    assert info.provenance["augment"]["model_sha256"] and info.provenance["train_dataset"] == str(
        dataset.root
    )


def test_refusals(tmp_path):
    dataset = imbalanced(tmp_path / "d")
    with pytest.raises(DatasetError, match="does not support"):
        plan_augmentation(dataset, supported=("normal", "metastasis"))
    with pytest.raises(DatasetError, match="generates"):
        check_model_fits(dataset, SimpleNamespace(matrix=(1024, 256), labels=("normal",)))
    config = SimpleNamespace(pixel_spacing_mm=dataset.info.pixel_spacing_mm)
    fits = SimpleNamespace(matrix=MATRIX, labels=("normal", "metastasis", "amyloidosis"), config=config)
    assert check_model_fits(dataset, fits) == ("normal", "metastasis", "amyloidosis")
    fits.config = SimpleNamespace(pixel_spacing_mm=2.26 * dataset.info.pixel_spacing_mm / 2.4)
    with pytest.raises(DatasetError, match=r"mm pixels but .* --pixel-spacing-mm"):  # the body's size
        check_model_fits(dataset, fits)


def test_cli_dry_run(tmp_path, tiny_generator):
    dataset = imbalanced(tmp_path / "d")
    args = ["augment", str(dataset.root), "--model", str(tiny_generator)]
    result = CliRunner().invoke(main, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "12 studies to add" in result.output
    assert len(Dataset.open(dataset.root)) == 18  # nothing written
    # the dry run refuses what the real run would refuse: here the shipped model's 1024x256 matrix
    mismatch = CliRunner().invoke(main, ["augment", str(dataset.root), "--dry-run"])
    assert mismatch.exit_code != 0 and "the model generates (1024, 256) studies" in mismatch.output
    both = CliRunner().invoke(main, [*args, "--ratio", "1", "--per-class", "2"])
    assert both.exit_code != 0 and "not --ratio and --per-class" in both.output
    balance = CliRunner().invoke(main, [*args, "--balance", "--per-class", "2", "--dry-run"])
    assert balance.exit_code != 0 and "not --balance and --per-class" in balance.output


def test_ratio_rounds_halves_up(tmp_path):
    dataset = imbalanced(tmp_path / "d")  # 10 normal, 4 metastasis, 4 amyloidosis
    assert plan_augmentation(dataset, mode="ratio", ratio=0.65).target_synthetic["normal"] == 7  # 6.5
    assert plan_augmentation(dataset, mode="ratio", ratio=0.375).target_synthetic["metastasis"] == 2  # 1.5


def test_augment_refuses_to_mix_models_or_write_into_another_dataset(tmp_path, tiny_generator):
    from synthscan.generator.augment import check_target

    dataset = imbalanced(tmp_path / "d")
    pipeline = load_pipeline(tiny_generator)
    execute_plan(plan_augmentation(dataset, mode="per-class", per_class=1), dataset, pipeline, progress=False)
    check_target(dataset, dataset, pipeline.sha256)  # the same model may resume
    with pytest.raises(DatasetError, match="synthetic studies of another model"):
        check_target(dataset, dataset, "0" * 64)
    other = imbalanced(tmp_path / "other")
    result = CliRunner().invoke(main, ["augment", str(dataset.root), "--model", str(tiny_generator),
                                       "--out", str(other.root), "--dry-run"])  # fmt: skip
    assert result.exit_code != 0 and "holds 18 real or simulated studies" in result.output
