"""Simulator throughput: studies/s written to a dataset with 1 worker (baseline) and with W workers.

The requirement is 1,000 default studies (1024x256, centre_a) in <= 2 minutes on a 2-core machine,
i.e. >= 8.3 studies/s with 2 workers. Both runs happen here, back to back, on the same machine:

    python benchmarks/simulate_speed.py --n 200 --workers 2
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from synthscan.simulator import load_site, simulate_dataset, simulate_study


def throughput(site: str, n: int, workers: int, root: Path) -> tuple[float, float]:
    """Studies per second of ``simulate_dataset`` into a fresh folder (pool start-up included), and
    the CPU seconds per study of this process and its workers together."""
    config = load_site(site)
    cpu_before = _cpu_seconds()
    start = time.perf_counter()
    simulate_dataset(config, n, root / f"w{workers}", seed=0, workers=workers, progress=False)
    return n / (time.perf_counter() - start), (_cpu_seconds() - cpu_before) / n


def _cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished child processes."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--site", default="centre_a", help="Site preset to simulate.")
    parser.add_argument("--n", type=int, default=200, help="Studies per run.")
    parser.add_argument("--workers", type=int, default=2, help="Workers of the measured run.")
    args = parser.parse_args()
    simulate_study(load_site(args.site), 0)  # warm imports and caches before timing
    with tempfile.TemporaryDirectory(prefix="synthscan-bench-") as tmp:
        root = Path(tmp)
        single, single_cpu = throughput(args.site, args.n, 1, root)
        parallel, parallel_cpu = throughput(args.site, args.n, args.workers, root)
    load = os.getloadavg()[0]
    print(f"site {args.site}, {args.n} studies per run, {os.cpu_count()} CPUs, load average {load:.1f}")
    print(f"1 worker:  {single:6.2f} studies/s, {single_cpu:.3f} CPU s/study (baseline)")
    print(
        f"{args.workers} workers: {parallel:6.2f} studies/s, {parallel_cpu:.3f} CPU s/study "
        f"({parallel / single:.2f}x baseline)"
    )
    print(f"1,000 studies with {args.workers} workers: {1000 / parallel:.0f} s (target <= 120 s)")
    cores = min(args.workers + 1, os.cpu_count() or 1)
    print(
        f"CPU-bound rate on {cores} otherwise idle cores: {cores / parallel_cpu:.2f} studies/s "
        "(other jobs on the machine lower the measured rate, not the CPU time per study)"
    )


if __name__ == "__main__":
    main()
