"""The same seeds simulated by two simulator versions, side by side (``ghosts_and_stripes.png``).

    # in a worktree of the earlier version (commit 0b36723 for ghosts_and_stripes.png), giving its
    # own site file (a preset name would load this checkout's, which an editable install serves):
    PYTHONPATH=. python /path/to/docs/simulator/before_after.py save before.npz \
        configs/simulator/centre_a.yaml 2484502639 2192399465
    # here:
    python docs/simulator/before_after.py show before.npz centre_a docs/simulator/ghosts_and_stripes.png

Seeds are study seeds of the site (a dataset manifest's ``seed`` column); 2484502639 is the grade-3 DPD
study ``centre_a-s7-000425`` of ``centre_a_holdout``.
"""

from __future__ import annotations

import sys

import numpy as np

from synthscan.render import render_grid
from synthscan.simulator.sites import load_site
from synthscan.simulator.study import simulate_study


def main(mode: str, npz: str, site: str, *args: str) -> None:
    config = load_site(site)
    if mode == "save":
        seeds = [int(s) for s in args]
        np.savez(npz, seeds=seeds, counts=np.stack([simulate_study(config, s).counts for s in seeds]))
        return
    before = np.load(npz)
    items = []
    for seed, counts in zip(before["seeds"], before["counts"], strict=True):
        items += [
            (counts, f"before: seed {seed}"),
            (simulate_study(config, int(seed)).counts, f"after: seed {seed}"),
        ]
    render_grid(items, columns=len(items)).save(args[0])


if __name__ == "__main__":
    main(*sys.argv[1:])
