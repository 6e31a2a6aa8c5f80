"""Simulator realism against real whole-body scans: the landmark table and the picture in docs/simulator/.

Simulates 24 centre_a studies at a clinical count level (0.4-0.7 M counts per view), measures them
with ``synthscan.evaluation.realism`` against the indicative real ranges shipped with synthscan, and
writes ``realism.md`` / ``realism.json``. It also renders one normal, metastasis, grade-3
amyloidosis and superscan study (anterior and posterior) beside the same kinds of study from
another simulator version, saved earlier with ``--save-figure-studies`` by that version:

    git worktree add /tmp/previous <commit> && cd /tmp/previous && PYTHONPATH=. python \\
        /path/to/benchmarks/simulator_realism.py --site configs/simulator/centre_a.yaml \\
        --save-figure-studies /tmp/previous.npz
    python benchmarks/simulator_realism.py --previous /tmp/previous.npz --out docs/simulator
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from synthscan.render import render_grid
from synthscan.simulator import load_site, simulate_dataset, simulate_study

KINDS = ("normal", "metastasis", "amyloidosis grade 3", "superscan")
FIGURE_OVERRIDES = {"counts_per_view": [500_000, 700_000], "disease.superscan_fraction": 0.3}


def figure_studies(site: str) -> list[tuple[np.ndarray, str]]:
    """The first seeds giving each of KINDS (superscans made frequent), at a clinical count level."""
    config = load_site(site, FIGURE_OVERRIDES)
    found: dict[str, tuple[np.ndarray, str]] = {}
    for seed in range(300):
        study = simulate_study(config, seed)
        if study.meta.get("superscan"):
            kind = "superscan"
        elif study.label == "amyloidosis":
            kind = f"amyloidosis grade {study.perugini_grade}"
        else:
            kind = study.label
        if kind in KINDS and kind not in found:
            found[kind] = (study.counts, f"{kind}, seed {seed}")
        if len(found) == len(KINDS):
            break
    return [found[k] for k in KINDS if k in found]


def realism_table(site: str, n: int, seed: int, work: Path) -> tuple[str, dict]:
    """Markdown table and JSON report of ``n`` simulated studies against the real ranges."""
    from synthscan.evaluation import realism

    config = load_site(site, {"counts_per_view": [400_000, 700_000]})
    simulate_dataset(config, n, work / "studies", seed=seed, workers=2, progress=False)
    result = realism.measure_dataset(work / "studies", 500_000, None)
    targets = realism.load_targets(realism.TARGETS, 500_000)
    realism.summarise(result, targets)
    lines = [
        f"{result['inside']} of {result['compared']} metrics inside the real range "
        f"({n} {site} studies, seed {seed}, 0.4-0.7 M counts per view)",
        "",
        "| metric | real range | simulated median [min..max] | inside |",
        "|---|---|---|---|",
    ]
    for name in realism.METRICS:
        entry, target = result["summary"][name], targets.get(name)
        if not entry["n"] or target is None:
            continue
        cell = f"{realism.fmt(entry['median'])} [{realism.fmt(entry['min'])}..{realism.fmt(entry['max'])}]"
        span = f"{realism.fmt(target['min'])}..{realism.fmt(target['max'])}"
        lines.append(f"| {name} | {span} | {cell} | {'yes' if entry['inside'] else '**no**'} |")
    report = {"site": site, "n": n, "seed": seed, "targets": targets, "summary": result["summary"]}
    return "\n".join(lines) + "\n", realism.finite_or_none(report)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--site", default="centre_a", help="Site preset (default: %(default)s).")
    parser.add_argument("--n", type=int, default=24, help="Studies measured (default: %(default)s).")
    parser.add_argument("--seed", type=int, default=0, help="Base seed (default: %(default)s).")
    parser.add_argument("--out", type=Path, default=Path("docs/simulator"), help="Report folder.")
    parser.add_argument("--previous", type=Path, help="Figure studies of another version (.npz).")
    parser.add_argument("--save-figure-studies", type=Path, help="Only save this version's figure studies.")
    args = parser.parse_args()

    studies = figure_studies(args.site)
    if args.save_figure_studies:
        np.savez_compressed(
            args.save_figure_studies,
            counts=np.stack([c for c, _ in studies]),
            captions=np.asarray([t for _, t in studies]),
        )
        return
    args.out.mkdir(parents=True, exist_ok=True)
    items = [(c, f"new: {t}") for c, t in studies]
    if args.previous:
        with np.load(args.previous) as old:
            previous = [(c, f"previous: {t}") for c, t in zip(old["counts"], old["captions"], strict=True)]
        items = [pair for both in zip(previous, items, strict=False) for pair in both]
    sheet: Image.Image = render_grid(items, columns=len(items) if len(items) <= 4 else len(items) // 2)
    sheet.save(args.out / "previous_vs_new.png", optimize=True)
    with tempfile.TemporaryDirectory(prefix="synthscan-realism-") as tmp:
        table, report = realism_table(args.site, args.n, args.seed, Path(tmp))
    (args.out / "realism.md").write_text(table)
    (args.out / "realism.json").write_text(json.dumps(report, indent=1) + "\n")
    print(table)


if __name__ == "__main__":
    main()
