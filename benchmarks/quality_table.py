"""Side-by-side table of several ``generator_quality`` runs: the numbers models are compared by.

    python benchmarks/quality_table.py REPORT [REPORT ...]

Each REPORT is a ``benchmarks/generator_quality.py --out`` folder (or its ``results.json``). Prints one
Markdown row per measure and one column per run, in the order given, so two models on the same sample
seeds sit next to each other. The image detector varies by about 0.1 between sample sets: compare
models on at least two (``--seed 0`` and ``--seed 100000``), never one.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthscan.labels import LABELS

Results = dict[str, Any]


def realism_measures(results: Results) -> dict[str, float]:
    """The realism numbers the ship rules in ``docs/`` gate on, from one run's ``results.json``."""
    realism = results["realism"]["real_vs_synthetic"]
    return {
        "detector within": results["image_detector_auc"]["within_condition"]["auc"],
        "two-sample within, cls_a": realism["two_sample_auc_within_condition"],
        "two-sample within, cls_ref": results["reference_classifier"]["real_vs_synthetic"][
            "two_sample_auc_within_condition"
        ],
        "precision": realism["precision"],
        "recall": realism["recall"],
    }


def _fidelity(results: Results, label: str) -> float:
    return results["condition_fidelity"]["synthetic"]["per_condition"][label]["share"]


def _grades(results: Results, group: str = "synthetic", value: str = "share") -> str:
    by_grade = results["condition_fidelity"][group]["amyloidosis_by_grade"]
    return " / ".join(f"{by_grade[g][value]:.2f}" for g in sorted(by_grade))


def _marks(results: Results) -> str:
    found = results["lesions"]["with_lesions"]
    return " / ".join(
        f"{found[c]['synthetic']['mean_detected']:.2f}" for c in ("normal", "metastasis", "amyloidosis")
    )


def _burdens(results: Results) -> str:
    burden = results["lesions"]["burden"]
    return " / ".join(f"{burden[b]['synthetic']['share']:.2f}" for b in ("1-3", "4-10", ">10"))


def _single_trainings(results: Results) -> str:
    detector = results["image_detector_auc"]
    return ", ".join(f"{auc:.3f}" for auc in detector.get("repeats", {"auc": [detector["auc"]]})["auc"])


def _tracers(results: Results) -> str:
    kept = {name: row["kept"] for name, row in results["tracer_effect"]["per_tracer"].items()}
    return " / ".join(f"{name} " + ("n/a" if k is None else f"{k:.2f}") for name, k in kept.items())


def _trunks(results: Results) -> str:
    normal = results.get("trunk_length", {}).get("normal")  # not measured before 2026-12-05
    return f"{normal['share_longer']:.3f} / {normal['share_shorter']:.3f}" if normal else "n/a"


def _reference_two_sample(results: Results) -> str:
    reading = results.get("reference_classifier")  # only with --reference-classifier
    return f"{reading['real_vs_synthetic']['two_sample_auc_within_condition']:.3f}" if reading else "n/a"


def _reference_reading(results: Results, studies: str = "per_condition") -> str:
    reading = results.get("reference_classifier", {}).get(studies)
    if not reading:
        return "n/a"
    return " / ".join(f"{reading[c]['share_correct']:.2f}" if c in reading else "-" for c in LABELS)


def _kept_intervals(results: Results) -> str:
    rows = results["tracer_effect"]["per_tracer"].items()
    return " / ".join(
        f"{name} " + ("n/a" if row.get("kept_ci95") is None else "{:.2f}-{:.2f}".format(*row["kept_ci95"]))
        for name, row in rows
    )


def _held_out_two_sample(results: Results) -> str:
    """Held-out studies against themselves (the floor of the within-condition two-sample AUC)."""
    spaces = [results["realism"], results.get("reference_classifier")]
    auc = "two_sample_auc_within_condition"
    return " / ".join(f"{space['real_vs_real'][auc]:.3f}" if space else "n/a" for space in spaces)


def _conspicuity(results: Results) -> str:
    found = results["lesions"]["conspicuity"]
    if found["contrast_auc"] is None:  # a set without detected lesions
        return "n/a"
    return (
        " / ".join(
            f"{found[group]['contrast_quartiles'][1]:.2f}; {found[group]['area_mm2_quartiles'][1]:.0f} mm²"
            for group in ("synthetic", "real")
        )
        + f"; AUC {found['contrast_auc']:.3f}"
    )


def _memorization(results: Results) -> str:
    return " / ".join(str(space["n_flagged"]) for space in results["memorization"])


def _redrawn(results: Results) -> float:
    redrawn = results["body_placement"].get("redrawn")  # None: a model without the check
    if redrawn is None:
        raise KeyError("redrawn")
    return redrawn["share"]


ROWS: list[tuple[str, Callable[[Results], Any]]] = [
    ("image detector AUC, trainings averaged", lambda r: r["image_detector_auc"]["auc"]),
    ("its single trainings", _single_trainings),
    (
        "image detector AUC within conditions",
        lambda r: r["image_detector_auc"]["within_condition"]["auc"],
    ),
    ("feature two-sample AUC", lambda r: r["realism"]["real_vs_synthetic"]["two_sample_auc"]),
    (
        "feature two-sample AUC within conditions",
        lambda r: r["realism"]["real_vs_synthetic"]["two_sample_auc_within_condition"],
    ),
    ("precision", lambda r: r["realism"]["real_vs_synthetic"]["precision"]),
    ("recall", lambda r: r["realism"]["real_vs_synthetic"]["recall"]),
    ("Fréchet distance", lambda r: r["realism"]["real_vs_synthetic"]["frechet"]),
    ("classified as asked: normal", lambda r: _fidelity(r, "normal")),
    ("classified as asked: metastasis", lambda r: _fidelity(r, "metastasis")),
    ("classified as asked: amyloidosis", lambda r: _fidelity(r, "amyloidosis")),
    ("classified amyloidosis per Perugini grade", _grades),
    ("mean P(amyloidosis) per Perugini grade", lambda r: _grades(r, value="mean_probability")),
    ("the same, held-out studies", lambda r: _grades(r, "held_out_real", "mean_probability")),
    ("lesion marks per normal / metastasis / amyloidosis", _marks),
    ("lesion contrast; area (medians), samples / held-out; AUC a held-out one stands out more", _conspicuity),
    ("burden in class 1-3 / 4-10 / >10", _burdens),
    ("body placement (misplaced share)", lambda r: r["body_placement"]["share"]),
    ("bodies drawn again by the generator (share)", _redrawn),
    ("normals' trunk beyond the held-out range (longer / shorter)", _trunks),
    ("tracer effect kept (1 = as in real studies)", _tracers),
    ("its 95 % intervals", _kept_intervals),
    ("memorization flags (image / feature)", _memorization),
    ("reference classifier: feature two-sample AUC within conditions", _reference_two_sample),
    ("reference classifier: read as asked, normal / metastasis / amyloidosis", _reference_reading),
    ("the same, held-out studies", lambda r: _reference_reading(r, "real_per_condition")),
    ("held-out vs held-out: two-sample AUC within conditions (cls_a / cls_ref)", _held_out_two_sample),
]
"""(measure, how to read it from a run's ``results.json``)."""


def load(path: str | Path) -> Results:
    path = Path(path)
    return json.loads((path / "results.json" if path.is_dir() else path).read_text(encoding="utf-8"))


def table(runs: dict[str, Results]) -> str:
    """Markdown rows × runs; a measure a run lacks (no lesion detector, an older benchmark) is left empty."""
    lines = ["| measure | " + " | ".join(runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for name, read in ROWS:
        cells = []
        for results in runs.values():
            try:
                value = read(results)
            except KeyError:
                value = ""
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reports", nargs="+", help="generator_quality --out folders (or their results.json)")
    args = parser.parse_args()
    runs = {str(Path(p).with_suffix("") if Path(p).is_file() else Path(p)): load(p) for p in args.reports}
    print(table(runs))


if __name__ == "__main__":
    main()
