"""Files are what the manifest says: recorded size and checksum, verified resume, ``check``, umask."""

from __future__ import annotations

import logging
import os
import stat

import numpy as np
import pytest
from click.testing import CliRunner

from synthscan.atomic import atomic_write_text
from synthscan.cli import main
from synthscan.dataset import FILE_BYTES, FILE_SHA256, Dataset, DatasetError, read_study_file
from synthscan.simulator import load_site, simulate_dataset

MATRIX = (32, 8)
TINY_SITE = {"matrix": [256, 64], "pixel_spacing_mm": 9.6}


def _dataset(root, n: int = 3) -> Dataset:
    dataset = Dataset.create(root, matrix=MATRIX)
    rng = np.random.default_rng(0)
    with dataset.writer() as writer:
        for i in range(n):
            writer.add(
                rng.poisson(5.0, (2, *MATRIX)),
                study_id=f"s{i}",
                patient_id=f"p{i}",
                label="normal",
                perugini_grade=0,
                source="simulated",
                meta={"label": "normal"},
            )
    return Dataset.open(root)


def _truncate(path, keep: int = 100) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_files_are_written_with_the_users_umask_not_private(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    dataset = _dataset(tmp_path / "ds", n=1)
    for path in (tmp_path / "a.txt", dataset.root / "manifest.csv", dataset.root / "studies" / "s0.npz"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_every_study_row_records_its_files_size_and_checksum(tmp_path):
    dataset = _dataset(tmp_path / "ds")
    for record in dataset:
        path = dataset.root / record.path
        assert int(record.extra[FILE_BYTES]) == path.stat().st_size
        assert len(record.extra[FILE_SHA256]) == 64
    assert dataset.broken() == {}


def test_a_corrupt_study_file_is_named_in_a_dataset_error(tmp_path):
    dataset = _dataset(tmp_path / "ds", n=1)
    path = dataset.root / "studies" / "s0.npz"
    _truncate(path)
    with pytest.raises(DatasetError, match=r"studies/s0\.npz is corrupt.*synthscan check"):
        read_study_file(path)
    path.write_bytes(b"not a zip at all" * 100)
    with pytest.raises(DatasetError, match=r"s0\.npz"):
        dataset.read("s0")


def test_a_file_outside_a_dataset_that_is_no_npz_is_called_so(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("a text file")
    with pytest.raises(DatasetError, match=r"notes\.txt is not a study \.npz"):
        read_study_file(path)


def test_verify_finds_missing_truncated_and_replaced_files_and_unlisted_ones(tmp_path):
    dataset = _dataset(tmp_path / "ds", n=4)
    studies = dataset.root / "studies"
    (studies / "s0.npz").unlink()
    _truncate(studies / "s1.npz")
    data = bytearray((studies / "s2.npz").read_bytes())  # same size, one byte flipped
    data[-40] ^= 0xFF
    (studies / "s2.npz").write_bytes(bytes(data))
    (studies / "orphan.npz").write_bytes(b"")
    quick = dataset.broken(quick=True)
    assert set(quick) == {"s0", "s1"}  # a stat cannot see a flipped byte ...
    full = dataset.broken()
    assert set(full) == {"s0", "s1", "s2"}  # ... the checksum does
    assert "missing" in full["s0"] and "100 bytes" in full["s1"] and "checksum" in full["s2"]
    assert dataset.unlisted_files() == [studies / "orphan.npz"]
    dataset.remove(full)
    assert [r.study_id for r in Dataset.open(dataset.root)] == ["s3"]
    assert not (studies / "s1.npz").exists()


def test_check_command_reports_every_damaged_row_and_can_remove_them(tmp_path):
    dataset = _dataset(tmp_path / "ds")
    runner = CliRunner()
    assert runner.invoke(main, ["check", str(dataset.root)]).exit_code == 0
    _truncate(dataset.root / "studies" / "s1.npz")
    result = runner.invoke(main, ["check", str(dataset.root)])
    assert result.exit_code != 0
    assert "s1.npz has 100 bytes" in result.output and "Traceback" not in result.output
    result = runner.invoke(main, ["check", str(dataset.root), "--remove-broken"])
    assert result.exit_code == 0, result.output
    assert [r.study_id for r in Dataset.open(dataset.root)] == ["s0", "s2"]
    assert runner.invoke(main, ["check", str(dataset.root)]).exit_code == 0


def test_simulate_resume_verifies_what_it_skips_and_simulates_damaged_studies_again(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    config = load_site("centre_a", TINY_SITE)
    dataset = simulate_dataset(config, 3, tmp_path / "sim", workers=1, progress=False)
    originals = {r.study_id: dataset.read(r).counts for r in dataset}
    studies = tmp_path / "sim" / "studies"
    _truncate(studies / "centre_a-000001.npz")
    (studies / "centre_a-000002.npz").unlink()
    resumed = simulate_dataset(config, 3, tmp_path / "sim", workers=1, progress=False)
    assert resumed.broken() == {}
    for record in resumed:
        assert np.array_equal(resumed.read(record).counts, originals[record.study_id])
    assert "1 of 3 studies already there" in caplog.text
    simulate_dataset(config, 2, tmp_path / "sim", workers=1, progress=False)
    assert "already holds 3 studies, more than -n 2" in caplog.text
