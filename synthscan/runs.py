"""Self-describing run folders: resolved config, command line, version, git hash, machine, metrics, log."""

from __future__ import annotations

import itertools
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import synthscan
from synthscan.atomic import atomic_write_text
from synthscan.config import dump_config

STARTED_FORMAT = "%Y-%m-%dT%H:%M:%S%z"  # run.json's "started": written at open, read back by active_seconds


def git_hash() -> str:
    """Commit of the synthscan source tree, with ``-dirty`` if it has local changes; ``unknown`` if none."""
    source = Path(synthscan.__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=source,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


KERNEL_SETTINGS = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "ONEDNN_DEFAULT_FPMATH_MODE",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
    "MKL_NUM_THREADS",
    "OMP_NUM_THREADS",
)
"""Environment variables that change which kernels PyTorch, oneDNN and MKL run, or how they round."""

ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
"""CPU flags that decide those kernels' paths: a VM's model name often says no more than "Xeon"."""


def cpu_model() -> dict[str, Any]:
    """The CPU's model name and its vector-instruction flags (``/proc/cpuinfo`` on Linux; elsewhere
    what ``platform`` knows, without flags)."""
    name = platform.processor() or "unknown"
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return {"name": name, "flags": None}
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in lines)}
    flags = set(fields.get("flags", "").split())
    return {"name": fields.get("model name", name), "flags": [flag for flag in ISA_FLAGS if flag in flags]}


def cuda_devices() -> list[str] | str:
    """Names of the GPUs CUDA can start, or why it cannot (a broken driver must not stop a CPU run)."""
    import torch  # here, not at the top: the simulator records git_hash without loading torch

    try:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except (RuntimeError, AssertionError) as error:
        return f"unavailable: {error}"


def machine() -> dict[str, Any]:
    """What a run computed on: one stage-1 command gave reconstructions detectable at 0.56 / 0.61 (two
    seeds) on a Xeon VM and 0.88 / 0.87 on an EPYC VM (docs/one_command), so the machine is part of
    a run's description."""
    import torch

    return {
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda": cuda_devices(),
        "kernel_settings": {name: os.environ[name] for name in KERNEL_SETTINGS if name in os.environ},
    }


class RunDir:
    """A run folder: ``config.yaml``, ``run.json``, ``log.txt`` and ``metrics.jsonl``.

    Re-opening an existing folder (a resumed run) appends to the log and metrics and records the
    new command line and machine in ``run.json``'s ``invocations`` list.
    """

    def __init__(self, path: str | Path, config: Any | None = None, *, kind: str):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        if config is not None:
            atomic_write_text(self.path / "config.yaml", dump_config(config))
        info_path = self.path / "run.json"
        info = json.loads(info_path.read_text()) if info_path.is_file() else {"kind": kind, "invocations": []}
        info["invocations"].append(
            {
                "command": sys.argv,
                "version": synthscan.__version__,
                "git": git_hash(),
                "python": platform.python_version(),
                "platform": platform.platform(),
                "machine": machine(),
                "started": time.strftime(STARTED_FORMAT),
            }
        )
        atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
        self._handler = logging.FileHandler(self.path / "log.txt", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger("synthscan").addHandler(self._handler)
        logging.getLogger("synthscan").setLevel(logging.INFO)

    def log_metrics(self, **metrics: Any) -> None:
        """Append one JSON line to ``metrics.jsonl`` (flushed at once so nothing is lost on a kill)."""
        metrics.setdefault("time", time.time())
        with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(metrics) + "\n")

    def active_seconds(self) -> float:
        """Seconds the run has worked over all its invocations, the idle time between them left out.

        A resumed run's own clock only knows its last invocation; a card quoting that understates the
        training time. Each earlier invocation counts from its start to its last ``metrics.jsonl`` line.
        """
        starts = [
            datetime.strptime(i["started"], STARTED_FORMAT).timestamp()
            for i in json.loads((self.path / "run.json").read_text())["invocations"]
        ]
        metrics = self.path / "metrics.jsonl"
        times = (
            [json.loads(line)["time"] for line in metrics.read_text().splitlines() if line.strip()]
            if metrics.is_file()
            else []
        )
        earlier = sum(max([s, *(t for t in times if s <= t < e)]) - s for s, e in itertools.pairwise(starts))
        return earlier + time.time() - starts[-1]

    def close(self) -> None:
        logging.getLogger("synthscan").removeHandler(self._handler)
        self._handler.close()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
