"""Run folders: a resumed run's working time sums its invocations and leaves out the pause between them;
each invocation records the machine and kernel settings it ran on."""

import json
import time

import pytest
import torch

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
    assert first["threads"] == torch.get_num_threads() and first["torch"] == torch.__version__
    assert first["cpu"] and "ONEDNN_MAX_CPU_ISA" not in first["kernel_settings"]
    assert second["kernel_settings"]["ONEDNN_MAX_CPU_ISA"] == "AVX2"
