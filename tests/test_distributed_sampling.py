"""Sampling on several processes (`accelerate launch -m synthscan`), resuming their journals, devices
and half precision."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from click.testing import CliRunner

from synthscan.cli import main
from synthscan.dataset import JOURNAL_DIR, MANIFEST, Dataset
from synthscan.dicom.write import ExportIdentity
from synthscan.generator.sampling import (
    SAMPLE_COLUMNS,
    SampleRequest,
    generate_studies,
    request_id,
    sample_to_dataset,
)
from synthscan.generator.storage import load_pipeline

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}


def launch(processes: int, *args: str, cwd: Path) -> None:
    """``synthscan ARGS`` as ``accelerate launch -m synthscan`` on CPU processes (gloo), or plain ``-m``."""
    prefix = [sys.executable, "-m"]
    if processes > 1:
        prefix += [
            "accelerate.commands.launch", "--cpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "-m",
        ]  # fmt: skip
    result = subprocess.run(
        [*prefix, "synthscan", *args], capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_processes_write_exactly_what_one_process_writes(tiny_generator, tmp_path):
    """Same manifest, same study files, same PNGs byte for byte; one DICOM identity for all processes."""
    common = [
        "sample",
        "--model",
        str(tiny_generator),
        "--condition",
        "amyloidosis",
        "-n",
        "7",
        "--batch-size",
        "2",
    ]
    launch(1, *common, "--out", "one", "--format", "png", cwd=tmp_path)
    launch(2, *common, "--out", "two", "--format", "png", cwd=tmp_path)
    one, two = files(tmp_path / "one"), files(tmp_path / "two")
    assert len([k for k in one if k.endswith(".npz")]) == 7
    assert one == two
    assert not (tmp_path / "two" / JOURNAL_DIR).exists() or not any(
        (tmp_path / "two" / JOURNAL_DIR).iterdir()
    )

    launch(2, *common, "--out", "dicom", "--format", "dicom", cwd=tmp_path)
    identity = ExportIdentity.of(Dataset.open(tmp_path / "dicom"))  # recorded once, by the main process
    written = sorted((tmp_path / "dicom").rglob("*.dcm"))
    assert len(written) == 7
    for path in written:  # studies of both processes carry the dataset's one export identity
        assert pydicom.dcmread(path).StudyInstanceUID == identity.uid(path.stem, "study")


def test_a_resumed_run_merges_journals_of_killed_processes(tiny_generator, tmp_path):
    """A killed process's studies are kept (its journal merged); a cut last line, a lost file are redone."""
    pipeline = load_pipeline(tiny_generator)
    reference = sample_to_dataset(pipeline, tmp_path / "ref", condition="normal", n=5, progress=False)

    partial = tmp_path / "partial"
    sample_to_dataset(pipeline, partial, condition="normal", n=1, progress=False)
    dataset = Dataset.open(partial)
    requests = [SampleRequest(request_id("normal", None, s), "normal", None, s) for s in (3, 1, 2)]
    with dataset.writer(journal="process-1") as writer:  # what a second process had written when killed
        for request, (counts, meta) in zip(requests, generate_studies(pipeline, requests), strict=True):
            writer.add(
                counts, study_id=request.study_id, patient_id=request.study_id, label="normal",
                perugini_grade=meta["perugini_grade"], source="synthetic", site="synthetic",
                tracer=meta.get("tracer", ""), seed=request.seed, meta=meta,
                extra={k: meta[k] for k in SAMPLE_COLUMNS if k in meta},
            )  # fmt: skip
    journal = partial / JOURNAL_DIR / "process-1.jsonl"
    journal.write_text(journal.read_text() + '{"study_id": "syn-normal-s00')  # cut by the kill
    (partial / dataset.record("syn-normal-s0000000002").path).unlink()  # its file lost
    before = {p: p.stat().st_mtime_ns for p in (partial / "synthetic").glob("*.npz")}

    resumed = sample_to_dataset(pipeline, partial, condition="normal", n=5, progress=False)
    assert [r.study_id for r in resumed] == [r.study_id for r in reference], "rows in request order"
    assert (partial / MANIFEST).read_bytes() == (tmp_path / "ref" / MANIFEST).read_bytes()
    assert not any((partial / JOURNAL_DIR).iterdir())
    kept = {p for p, t in before.items() if p.stat().st_mtime_ns == t}
    assert {p.stem for p in kept} == {
        "syn-normal-s0000000000",
        "syn-normal-s0000000001",
        "syn-normal-s0000000003",
    }


def test_half_precision_keeps_the_count_statistics_and_is_recorded(tiny_generator, tmp_path):
    """bf16 autocast (on the CPU here; fp16/bf16 on GPUs) draws the same studies up to rounding."""
    fp32, bf16 = load_pipeline(tiny_generator), load_pipeline(tiny_generator, precision="bf16")
    args = {"conditions": ["normal", "metastasis"] * 4, "return_expected": True}
    a = fp32(generator=[torch.Generator().manual_seed(s) for s in range(8)], **args)
    b = bf16(generator=[torch.Generator().manual_seed(s) for s in range(8)], **args)
    assert a.conditions == b.conditions and a.total_counts == b.total_counts
    assert not np.array_equal(a.expected, b.expected), "autocast ran the networks in bf16"
    other = fp32(generator=[torch.Generator().manual_seed(s) for s in range(100, 108)], **args)

    def distance(x, y):
        return np.abs(x.expected - y.expected).sum(axis=(1, 2, 3)) / x.expected.sum(axis=(1, 2, 3))

    # Rounding error is a property of the network, not a fixed number: it must stay far below
    # the difference between two studies of the same condition.
    rounding, between = distance(a, b), distance(a, other)
    assert np.all(rounding < between / 10), (rounding, between)
    totals_a, totals_b = (x.counts.astype(np.int64).sum(axis=(1, 2, 3)) for x in (a, b))
    assert np.all(np.abs(totals_a - totals_b) < 5 * np.sqrt(totals_a) + 1)

    dataset = sample_to_dataset(bf16, tmp_path / "bf16", condition="normal", n=2, progress=False)
    assert dataset.info.provenance["generator"]["precision"] == "bf16"
    assert "precision" not in Dataset.open(reference_folder(fp32, tmp_path)).info.provenance["generator"]


def reference_folder(pipeline, tmp_path: Path) -> Path:
    return sample_to_dataset(pipeline, tmp_path / "fp32", condition="normal", n=1, progress=False).root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "nosuchdevice"], "cannot move the generator to device 'nosuchdevice'"),
        (["--precision", "fp8"], "'fp8' is not one of 'fp32', 'bf16', 'fp16'"),
    ],
)
def test_bad_device_or_precision_fails_in_one_line(tiny_generator, tmp_path, args, message):
    result = CliRunner().invoke(
        main,
        [
            "sample",
            "--model",
            str(tiny_generator),
            "--condition",
            "normal",
            "--out",
            str(tmp_path / "x"),
            *args,
        ],
    )
    assert result.exit_code != 0 and message in result.output, result.output
