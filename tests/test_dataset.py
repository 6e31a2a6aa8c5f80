"""The dataset contract: round-trip, streaming writer, filters, patient-level splits, bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from synthscan.dataset import (
    CORE_COLUMNS,
    Dataset,
    DatasetError,
    load_or_create_splits,
    make_patient_splits,
    split_records,
)

MATRIX = (64, 16)


def _counts(seed: int, peak: int = 500, dtype=np.uint16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, peak, size=(2, *MATRIX)).astype(dtype)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _populate(root: Path, n_patients: int = 40, studies_per_patient: int = 2) -> Dataset:
    dataset = Dataset.create(root, matrix=MATRIX)
    labels = ["normal", "metastasis", "amyloidosis"]
    with dataset.writer() as writer:
        for p in range(n_patients):
            for s in range(studies_per_patient):
                label = labels[(p + s) % 3] if p >= 30 else labels[p % 3]  # p ≥ 30: mixed labels
                writer.add(
                    _counts(p * 10 + s, peak=50),
                    study_id=f"p{p}-s{s}",
                    patient_id=f"p{p}",
                    label=label,
                    perugini_grade=2 if label == "amyloidosis" else 0,
                    source="simulated",
                    seed=p,
                )
    return dataset


def test_round_trip_keeps_arrays_dtypes_meta_and_extra_columns(tmp_path):
    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX, provenance={"tool": "test"})
    small, large = _counts(1), _counts(2, peak=70_000, dtype=np.uint32)
    meta = {"lesions": [{"bone": "rib", "contrast": 3.5}], "height_cm": np.float32(170.5)}
    with dataset.writer() as writer:
        writer.add(
            small, study_id="a", patient_id="pa", label="normal", site="X", tracer="MDP", seed=7, meta=meta
        )
        writer.add(
            large, study_id="b", patient_id="pb", label="amyloidosis", perugini_grade=3, extra={"age": 81}
        )
    reopened = Dataset.open(tmp_path / "ds")
    assert [r.study_id for r in reopened] == ["a", "b"]
    a, b = reopened.read("a"), reopened.read("b")
    np.testing.assert_array_equal(a.counts, small)
    np.testing.assert_array_equal(b.counts, large)
    assert a.counts.dtype == np.uint16 and b.counts.dtype == np.uint32
    assert a.meta == {"lesions": [{"bone": "rib", "contrast": 3.5}], "height_cm": 170.5}
    assert a.record.seed == 7 and a.record.site == "X" and a.record.tracer == "MDP"
    assert b.record.perugini_grade == 3 and b.record.get("age") == "81" and a.record.get("age") == ""
    assert reopened.info.matrix == MATRIX and reopened.info.provenance == {"tool": "test"}
    with open(tmp_path / "ds" / "manifest.csv", newline="") as handle:
        assert next(csv.reader(handle)) == [*CORE_COLUMNS, "age", "file_bytes", "file_sha256"]
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["views"] == ["anterior", "posterior"] and info["labels"]["amyloidosis"] == 2


def test_writer_persists_manifest_periodically_and_resumes(tmp_path, monkeypatch):
    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX)
    writer = dataset.writer(flush_every_s=0.0)
    writer.add(_counts(0), study_id="s0", patient_id="p0", label="normal")
    # Persisted without closing the writer: a crash now keeps s0.
    assert [r.study_id for r in Dataset.open(tmp_path / "ds")] == ["s0"]
    assert not [p for p in (tmp_path / "ds").rglob("*.tmp")]

    slow = dataset.writer(flush_every_s=3600)
    slow.add(_counts(1), study_id="s1", patient_id="p1", label="normal")
    assert len(Dataset.open(tmp_path / "ds")) == 1  # s1's row is not yet persisted ...
    # ... so a resumed run (after a crash) sees s0 only and simply writes s1 again.
    resumed = Dataset.create(tmp_path / "ds", matrix=MATRIX, exist_ok=True)
    assert "s0" in resumed and "s1" not in resumed
    with resumed.writer() as writer:
        writer.add(_counts(1), study_id="s1", patient_id="p1", label="normal")
    final = Dataset.open(tmp_path / "ds")
    assert [r.study_id for r in final] == ["s0", "s1"]
    np.testing.assert_array_equal(final.read("s1").counts, _counts(1))
    with pytest.raises(DatasetError, match="holds a"):
        Dataset.create(tmp_path / "ds", matrix=(32, 16), exist_ok=True)
    with pytest.raises(DatasetError, match=r"2\.4 mm pixels, cannot add 2\.26 mm"):
        Dataset.create(tmp_path / "ds", matrix=MATRIX, pixel_spacing_mm=2.26, exist_ok=True)


def test_writer_persists_completed_rows_when_the_loop_fails(tmp_path):
    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX)
    with pytest.raises(RuntimeError), dataset.writer(flush_every_s=3600) as writer:
        writer.add(_counts(0), study_id="s0", patient_id="p0", label="normal")
        raise RuntimeError("simulated crash")
    assert [r.study_id for r in Dataset.open(tmp_path / "ds")] == ["s0"]


def test_filter_by_columns_tuples_and_predicate(tmp_path):
    dataset = _populate(tmp_path / "ds", n_patients=6, studies_per_patient=1)
    assert {r.label for r in dataset.filter(label="normal")} == {"normal"}
    assert len(dataset.filter(label=("normal", "metastasis"))) == 4
    assert [r.study_id for r in dataset.filter(lambda r: r.seed == 5)] == ["p5-s0"]
    assert dataset.filter(source="real") == []
    studies = list(dataset.iter_studies(dataset.filter(label="amyloidosis")))
    assert [s.record.study_id for s in studies] == ["p2-s0", "p5-s0"]


def test_fingerprint_changes_with_a_rewritten_study_the_selection_or_the_salt(tmp_path):
    dataset = _populate(tmp_path / "ds", n_patients=3, studies_per_patient=1)
    records = dataset.records
    key = dataset.fingerprint(records, 2)
    assert key == dataset.fingerprint(records, 2)
    assert key != dataset.fingerprint(records, 4)
    assert key != dataset.fingerprint(records[:2], 2)
    dataset.add(_counts(99, peak=5000), replace=True, **_fields(records[0]))  # another size on disk
    assert key != dataset.fingerprint(records, 2)


def _fields(record):
    return {
        "study_id": record.study_id,
        "patient_id": record.patient_id,
        "label": record.label,
        "perugini_grade": record.perugini_grade,
        "source": record.source,
    }


def test_splits_are_deterministic_stratified_and_patient_level(tmp_path):
    dataset = _populate(tmp_path / "ds")
    first = make_patient_splits(dataset, seed=3)
    assert first == make_patient_splits(list(dataset), seed=3)
    assert first != make_patient_splits(dataset, seed=4)
    members = [p for ids in first.values() for p in ids]
    assert len(members) == len(set(members)) == 40  # every patient exactly once
    assert 24 <= len(first["train"]) <= 32 and first["val"] and first["test"]
    # Multi-study patients never straddle splits.
    for name, ids in first.items():
        for record in split_records(dataset, first, name):
            assert record.patient_id in ids
    # Stratified by each patient's worst label: every class reaches the test split.
    worst = {}
    for r in dataset:
        worst[r.patient_id] = max(
            worst.get(r.patient_id, -1), ["normal", "metastasis", "amyloidosis"].index(r.label)
        )
    assert {worst[p] for p in first["test"]} == {0, 1, 2}
    with pytest.raises(ValueError, match="sum to 1"):
        make_patient_splits(dataset, seed=0, fractions={"train": 0.8, "test": 0.1})


def test_splits_json_is_reused_and_conflicting_settings_refused(tmp_path, caplog):
    dataset = _populate(tmp_path / "ds", n_patients=20, studies_per_patient=1)
    created = load_or_create_splits(dataset, seed=1)
    saved = (tmp_path / "ds" / "splits.json").read_text()
    assert load_or_create_splits(Dataset.open(tmp_path / "ds"), seed=1) == created
    assert (tmp_path / "ds" / "splits.json").read_text() == saved
    with pytest.raises(DatasetError, match="seed=1"):
        load_or_create_splits(dataset, seed=2)
    with pytest.raises(DatasetError, match="fractions"):
        load_or_create_splits(dataset, seed=1, fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    with pytest.raises(DatasetError, match="sources"):
        load_or_create_splits(dataset, seed=1, sources=("real",))
    # Synthetic studies never enter a split; new real patients after the split are flagged.
    with dataset.writer() as writer:
        writer.add(_counts(9), study_id="syn", patient_id="syn-p", label="normal", source="synthetic", seed=1)
        writer.add(_counts(8), study_id="late", patient_id="late-p", label="normal")
    assert load_or_create_splits(dataset, seed=1) == created
    assert "1 patient(s) were added" in caplog.text
    (tmp_path / "ds" / "splits.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a valid splits file"):
        load_or_create_splits(dataset, seed=1)


@pytest.mark.parametrize(
    ("fields", "counts", "message"),
    [
        ({"label": "fracture"}, None, "unknown label 'fracture'"),
        ({"label": "normal", "perugini_grade": 2}, None, "implies amyloidosis"),
        ({"label": "amyloidosis", "perugini_grade": 0}, None, "needs a Perugini grade"),
        ({"label": "normal", "source": "web"}, None, "unknown source"),
        ({"label": "normal"}, np.zeros((2, 32, 16), np.uint16), r"shape \(2, 64, 16\)"),
        ({"label": "normal"}, np.zeros((64, 16), np.uint16), r"shape \(2, 64, 16\)"),
        ({"label": "normal"}, np.full((2, *MATRIX), 1.5), "non-negative integers"),
        ({"label": "normal"}, np.full((2, *MATRIX), -1), "non-negative"),
        ({"label": "normal", "study_id": "../escape"}, None, "may hold only"),
        ({"label": "normal", "patient_id": ""}, None, "'patient_id' is empty"),
        ({"label": "normal", "extra": {"label": "x"}}, None, "clash with core columns"),
    ],
)
def test_bad_input_fails_clearly_and_writes_nothing(tmp_path, fields, counts, message):
    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX)
    before = _files(tmp_path / "ds")
    args = {"study_id": "s", "patient_id": "p", **fields}
    with pytest.raises(ValueError, match=message), dataset.writer() as writer:
        writer.add(_counts(0) if counts is None else counts, **args)
    assert _files(tmp_path / "ds") == before
    assert len(Dataset.open(tmp_path / "ds")) == 0


def test_duplicate_id_missing_file_and_broken_manifest_are_reported(tmp_path):
    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX)
    with dataset.writer() as writer:
        writer.add(_counts(0), study_id="s", patient_id="p", label="normal")
        with pytest.raises(DatasetError, match="already in"):
            writer.add(_counts(1), study_id="s", patient_id="p", label="normal")
    np.testing.assert_array_equal(dataset.read("s").counts, _counts(0))  # first study untouched
    with pytest.raises(DatasetError, match="no study 'nope'"):
        dataset.read("nope")
    (tmp_path / "ds" / "studies" / "s.npz").unlink()
    with pytest.raises(DatasetError, match="does not exist"):
        dataset.read("s")
    manifest = tmp_path / "ds" / "manifest.csv"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(DatasetError, match="appears twice"):
        Dataset.open(tmp_path / "ds")
    manifest.write_text("\n".join([lines[0], lines[1].replace(",normal,", ",normal,1.5")]) + "\n")
    with pytest.raises(DatasetError, match="expected an integer"):
        Dataset.open(tmp_path / "ds")
    with pytest.raises(DatasetError, match="not a synthscan dataset"):
        Dataset.open(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(DatasetError, match="not an empty folder"):
        Dataset.create(tmp_path / "other")
    with pytest.raises(DatasetError, match="already holds a dataset"):
        Dataset.create(tmp_path / "ds", matrix=MATRIX)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not valid JSON"),
        ("[1]", r"lacks \['format_version'"),
        ("{}", r"lacks \['format_version'"),
        ('{"format_version": 2, "grid": {}}', "dataset format 2; this synthscan reads format 1"),
        (lambda info: {**info, "format_version": 99}, "dataset format 99"),
        (lambda info: {**info, "matrix": [64]}, "not two positive sizes"),
        (lambda info: {**info, "pixel_spacing_mm": float("nan")}, "not a positive size"),
        (lambda info: {**info, "matrix": "64x16"}, "malformed field"),
        (lambda info: {**info, "views": ["anterior"]}, "views"),
    ],
)
def test_a_damaged_dataset_json_is_refused_naming_it(tmp_path, text, message):
    """Found by a user walk-through: ``[1]`` raised AttributeError, ``{}`` opened as a dataset."""
    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX)
    path = tmp_path / "ds" / "dataset.json"
    if callable(text):
        text = json.dumps(text(json.loads(path.read_text())))
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as error:
        Dataset.open(dataset.root)
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("matrix", "spacing"), [((0, 16), 2.4), ((64,), 2.4), (MATRIX, 0.0), (MATRIX, float("inf"))]
)
def test_a_dataset_is_never_created_on_a_grid_it_cannot_reopen(tmp_path, matrix, spacing):
    with pytest.raises(DatasetError, match="positive"):
        Dataset.create(tmp_path / "ds", matrix=matrix, pixel_spacing_mm=spacing)
    assert not (tmp_path / "ds" / "dataset.json").exists()


def test_a_manifest_without_core_columns_is_refused_naming_it(tmp_path):
    Dataset.create(tmp_path / "ds", matrix=MATRIX)
    manifest = tmp_path / "ds" / "manifest.csv"
    manifest.write_text("study_id,label\ns,normal\n")
    with pytest.raises(DatasetError, match="lacks columns") as error:
        Dataset.open(tmp_path / "ds")
    assert str(manifest) in str(error.value)


def test_study_with_wrong_shape_on_disk_is_rejected_on_read(tmp_path):
    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX)
    with dataset.writer() as writer:
        writer.add(_counts(0), study_id="s", patient_id="p", label="normal")
    np.savez_compressed(tmp_path / "ds" / "studies" / "s.npz", counts=np.zeros((2, 8, 8), np.uint16))
    with pytest.raises(DatasetError, match=r"s\.npz: counts must have shape"):
        Dataset.open(tmp_path / "ds").read("s")


def test_splits_stratified_by_task_targets_reach_validation_and_record_it(tmp_path):
    """Label strata mix grade-1 (negative) and grade 2-3 (positive) amyloidosis; task strata do not."""
    from synthscan.classifier.data import TASK_STRATA, task_stratum

    dataset = Dataset.create(tmp_path / "ds", matrix=MATRIX)
    with dataset.writer() as writer:
        for i in range(100):
            label, grade = ("amyloidosis", 1 + (i % 10 == 0) * 2) if i % 5 == 0 else ("normal", 0)
            writer.add(_counts(i), study_id=f"s{i}", patient_id=f"p{i}", label=label, perugini_grade=grade)
    patients = load_or_create_splits(
        dataset,
        seed=0,
        fractions={"train": 0.6, "val": 0.2, "test": 0.2},
        stratum=task_stratum,
        stratified_by=TASK_STRATA,
    )
    positives = {r.patient_id for r in dataset if r.perugini_grade == 3}
    assert [len(positives & set(patients[name])) for name in ("train", "val", "test")] == [6, 2, 2]
    saved = json.loads((tmp_path / "ds" / "splits.json").read_text())
    assert saved["stratified_by"] == TASK_STRATA
    with pytest.raises(DatasetError, match="stratified by"):
        load_or_create_splits(dataset, seed=0, fractions={"train": 0.6, "val": 0.2, "test": 0.2})
    del saved["stratified_by"]  # a file from before the stratification was recorded: reused as written
    (tmp_path / "ds" / "splits.json").write_text(json.dumps(saved))
    again = load_or_create_splits(
        dataset,
        seed=0,
        fractions={"train": 0.6, "val": 0.2, "test": 0.2},
        stratum=task_stratum,
        stratified_by=TASK_STRATA,
    )
    assert again == patients
