"""Run folders: a resumed run's working time sums its invocations and leaves out the pause between them;
each invocation records the machine and kernel settings it ran on."""

import json
import platform
import time
from pathlib import Path

import pytest
import torch

from synthscan import runs
from synthscan.runs import STARTED_FORMAT, RunDir


def test_a_resumed_run_counts_each_invocation_up_to_its_last_metrics_line(tmp_path):
    with RunDir(tmp_path, kind="test") as run:
        run.log_metrics(step=1, time=1_000_000.0)
    with RunDir(tmp_path, kind="test"):
        pass
    info = json.loads((tmp_path / "run.json").read_text())
    first, second = info["invocations"]
    first["started"] = time.strftime(STARTED_FORMAT, time.localtime(1_000_000 - 3600))  # worked 1 h
    second["started"] = time.strftime(STARTED_FORMAT, time.localtime(time.time() - 600))  # days later, 5 min
    (tmp_path / "run.json").write_text(json.dumps(info))
    with open(tmp_path / "metrics.jsonl", "a") as handle:  # the second invocation's last line
        handle.write(json.dumps({"step": 2, "time": time.time() - 300}) + "\n")
    with RunDir(tmp_path, kind="test") as run:  # the third starts now
        assert run.active_seconds() == pytest.approx(3600 + 300, abs=5)


def test_each_invocation_records_the_kernels_it_ran_on(tmp_path, monkeypatch):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    with RunDir(tmp_path, kind="test"):
        pass
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with RunDir(tmp_path, kind="test"):
        pass
    first, second = (i["machine"] for i in json.loads((tmp_path / "run.json").read_text())["invocations"])
    assert first["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert first["torch"] == torch.__version__ and first["cpu"]["name"]
    assert "ONEDNN_MAX_CPU_ISA" not in first["kernel_settings"]
    assert second["kernel_settings"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"


def test_the_machine_record_survives_a_cpu_without_cpuinfo_and_a_broken_cuda(monkeypatch):
    cpuinfo = "processor\t: 0\nmodel name\t: Some CPU\nflags\t: fpu sse avx avx2 fma avx512f\n"
    monkeypatch.setattr(Path, "read_text", lambda self, *args, **kwargs: cpuinfo)
    assert runs.cpu_model() == {"name": "Some CPU", "flags": ["avx2", "fma", "avx512f"]}

    def missing(self, *args, **kwargs):
        raise OSError("no /proc")

    monkeypatch.setattr(Path, "read_text", missing)
    assert runs.cpu_model() == {"name": platform.processor() or "unknown", "flags": None}

    def broken(index):
        raise RuntimeError("driver too old")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_name", broken)
    assert runs.cuda_devices() == "unavailable: driver too old"
