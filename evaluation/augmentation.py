"""The augmentation study: does adding synthetic scans to a small real training set raise AUC elsewhere?

Design (the paper's downstream experiment, Haberl et al. 2025, made explicit):

- The real dataset is split by patient once (its ``splits.json``); every run trains on the same real
  training patients and is validated (early stopping, thresholds) on the same real validation
  patients. Its test patients form the ``internal`` cohort; the ``--test`` datasets are the external
  cohorts (other sites, scanners, tracers), scored whole.
- For each seed and synthetic:real ratio ``r`` (0 = real only, the baseline), a classifier trains on
  the real training studies plus ``round(r x n_real_train)`` synthetic studies with the same step
  budget (``train.max_steps``), so arms differ only in the data. Synthetic studies per condition follow
  the mix (:mod:`synthscan.classifier.synthetic`); each seed draws its own nested subsets, so ratio 1 is
  a subset of ratio 2 within a seed. Seed ``s`` also sets ``train.seed + s`` (weights, sampling,
  augmentation), identical across the arms of that seed.
- Per task and cohort: AUC with its 95 % DeLong CI per run; the AUC gain of each ratio over real only,
  per seed, as absolute AUC points and as relative % (100 x gain / real-only AUC), mean ± SD across
  seeds; a paired DeLong p-value on the seed-averaged scores (each arm's probabilities averaged over
  seeds, then compared on the same cases); sensitivity and specificity at each run's threshold chosen
  on validation (Youden), averaged over seeds.
- Pooled per task: the relative gain averaged over seeds, then mean ± SD across the external cohorts
  (the paper's "+33 ± 10 %" is across its four external sites), and one p-value combining the
  per-cohort DeLong z statistics of the seed-averaged scores by Stouffer's method,
  ``z = sum(z_c) / sqrt(k)`` (the cohorts are disjoint patients, so their z are independent). The
  headline ratio of each task is chosen on *validation* (highest mean validation AUC over seeds among
  ratios > 0), never on the test cohorts. The p-values treat the trained models as fixed; the SD over
  seeds shows how much training itself varies.

Every run is a classifier run folder under ``runs/seed<s>-ratio<r>`` with per-cohort predictions CSVs;
a rerun skips finished runs (and only predicts cohorts a run has not scored yet). Binned arrays are
cached under ``cache/``, so each cohort is read from its study files once per experiment.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import norm
from tqdm.auto import tqdm

from synthscan.atomic import atomic_write_bytes, atomic_write_text
from synthscan.classifier.config import MIXES, TASKS, ClassifierConfig
from synthscan.classifier.data import StudyArrays, check_grid, evaluable_tasks, load_arrays, targets_for
from synthscan.classifier.model import is_model_dir
from synthscan.classifier.predict import Classifier, read_predictions
from synthscan.classifier.synthetic import (
    SyntheticGenerator,
    SyntheticPool,
    allocate,
    generate_synthetic,
    label_weights,
    plan_blocks,
    synthetic_count,
)
from synthscan.classifier.train import check_trainable, fit, real_split_records
from synthscan.config import to_dict
from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.evaluation.stats import auc_ci, delong_test, operating_point
from synthscan.labels import LABELS, PATIENT_SOURCES

log = logging.getLogger(__name__)

SETTINGS = "study.json"
RESULTS = "results.json"
REPORT = "report.md"
INTERNAL = "internal"


@dataclass
class Cohort:
    """A test cohort: its studies, which tasks it can evaluate, and whether it is external."""

    name: str
    dataset: Dataset
    records: list[Record]
    external: bool
    tasks: list[str]
    arrays: StudyArrays | None = None

    @property
    def targets(self) -> np.ndarray:
        return np.stack([targets_for(r) for r in self.records])


def parse_ratios(text: str) -> tuple[float, ...]:
    """``"0,1,2,5"`` → (0.0, 1.0, 2.0, 5.0); 0 (real only) is always included as the baseline."""
    try:
        values = {float(v) for v in text.split(",") if v.strip()}
    except ValueError:
        raise ValueError(f"--ratios {text!r} must be comma-separated numbers, e.g. 0,1,2,5") from None
    if any(v < 0 or not math.isfinite(v) for v in values):
        raise ValueError(f"--ratios {text!r}: ratios must be finite and non-negative")
    return tuple(sorted(values | {0.0}))


def run_name(seed: int, ratio: float) -> str:
    return f"seed{seed}-ratio{ratio:g}"


def make_cohorts(
    real: Dataset, internal: Sequence[Record], external: Sequence[Dataset], size: tuple[int, int]
) -> list[Cohort]:
    """Validate the test cohorts (fail early, before any training) and name them by their folders."""
    cohorts = []
    names: Counter[str] = Counter()
    real_patients = {(r.site, r.patient_id) for r in real.filter(source=PATIENT_SOURCES)}
    for dataset in external:
        where = str(dataset.root)
        if dataset.root.resolve() == real.root.resolve():
            raise DatasetError(f"test cohort {where} is the real training dataset; pass another site's data")
        check_grid(dataset.info.matrix, size, f"test cohort {where}")
        records = dataset.filter(source=PATIENT_SOURCES)
        tasks = evaluable_tasks(records)
        if not tasks:
            labels = dict(Counter(r.label for r in records))
            raise DatasetError(
                f"test cohort {where} has {len(records)} non-synthetic studies ({labels}): no task has both "
                "positive and negative studies, so no AUC can be computed; add the missing class or drop it"
            )
        shared = real_patients & {(r.site, r.patient_id) for r in records}
        if shared:
            log.warning(
                "test cohort %s shares %d (site, patient) pairs with the real dataset", where, len(shared)
            )
        base = dataset.root.resolve().name
        names[base] += 1
        name = base if names[base] == 1 else f"{base}-{names[base]}"
        cohorts.append(Cohort(name, dataset, records, True, tasks))
    if any(c.name == INTERNAL for c in cohorts):
        raise DatasetError(f"a test cohort folder is named {INTERNAL!r}, which names the real test split")
    tasks = evaluable_tasks(internal)
    if tasks:
        cohorts.insert(0, Cohort(INTERNAL, real, list(internal), False, tasks))
    return cohorts


FIXED_SETTINGS = ("config", "real", "synthetic", "mix", "synthetic_seed", "synthetic_pool")
"""Settings a resumed study must share with the one that made its runs (ratios and seeds may grow)."""


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume a study in ``out`` that was made with other fixed settings."""
    path = out / SETTINGS
    if not path.is_file():
        return
    saved = json.loads(path.read_text(encoding="utf-8"))
    changed = [key for key in FIXED_SETTINGS if key in settings and saved.get(key) != settings[key]]
    if changed:
        raise DatasetError(
            f"{out} holds a study made with other {', '.join(changed)}; rerun with the same settings "
            "to resume it, or choose a new --out folder"
        )


def run_augmentation_study(
    real: Dataset,
    test: Sequence[Dataset],
    out: str | Path,
    config: ClassifierConfig,
    *,
    ratios: Sequence[float] = (0.0, 1.0, 2.0, 5.0),
    seeds: int = 5,
    synthetic: Sequence[Dataset] = (),
    generator: SyntheticGenerator | None = None,
    mix: str = "balanced",
    synthetic_seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every (seed, ratio) run, score every cohort, and return (and write) the study's results.

    Synthetic studies come from the ``synthetic`` datasets, or are sampled from ``generator`` into
    ``out/synthetic`` (as many as the largest ratio needs, recorded seeds).
    """
    out = Path(out)
    if seeds < 1:
        raise ValueError("--seeds must be at least 1")
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; valid mixes: {', '.join(MIXES)}")
    ratios = tuple(sorted(set(ratios) | {0.0}))
    size = tuple(config.preprocess.input_size)
    check_grid(real.info.matrix, size, f"real dataset {real.root}")
    splits = real_split_records(real, config)
    real_train, real_val = splits["train"], splits["val"]
    check_trainable(real_train, real_val, str(real.root))
    cohorts = make_cohorts(real, splits["test"], test, size)

    settings = {
        "config": to_dict(config),
        "real": str(real.root.resolve()),
        "synthetic": f"generator {generator.name}"
        if generator
        else ", ".join(str(d.root.resolve()) for d in synthetic) or "none",
        "mix": mix,
        "synthetic_seed": synthetic_seed,
        "ratios": list(ratios),
        "seeds": seeds,
        "cohorts": {c.name: str(c.dataset.root.resolve()) for c in cohorts},
    }
    _check_settings(out, settings)  # before sampling anything
    largest = max(ratios)
    n_synthetic = {r: synthetic_count(r, len(real_train)) for r in ratios}
    if largest > 0 and generator is not None:
        plan = plan_blocks(real_train, n_synthetic[largest], mix, generator.blocks)
        synthetic = generate_synthetic(out / "synthetic", plan, seed=synthetic_seed, sample=generator.sample)
    if largest > 0 and not synthetic:
        raise DatasetError("ratios above 0 need synthetic studies: pass a synthetic dataset or generator")
    for dataset in synthetic:
        if tuple(dataset.info.matrix) != tuple(real.info.matrix):
            raise DatasetError(
                f"synthetic dataset {dataset.root} is {dataset.info.matrix} but the real data is "
                f"{real.info.matrix}; use synthetic studies at the real matrix"
            )
    pool = SyntheticPool(synthetic if largest > 0 else [])
    labels = generator.labels if generator else tuple(k for k, n in pool.available().items() if n)
    if largest > 0 and set(labels) != set(LABELS):
        log.warning("synthetic studies exist only for %s; other conditions get none", ", ".join(labels))
    weights = label_weights(real_train, mix, labels)
    counts = {r: allocate(n_synthetic[r], weights) for r in ratios}
    pool.check(counts[largest], f"ratio {largest:g} with the {mix} mix")
    settings["synthetic_pool"] = pool.available()
    _check_settings(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SETTINGS, json.dumps(settings, indent=2) + "\n")

    cache = out / "cache"
    load = {"cache_dir": cache, "progress": progress}
    train_arrays = load_arrays(real, real_train, size, description="real train", **load)
    val_arrays = load_arrays(real, real_val, size, description="real val", **load)
    pool_arrays = [
        load_arrays(d, pool.records(k), size, description="synthetic", **load)
        for k, d in enumerate(pool.datasets)
    ]
    pool_index = [{r.study_id: i for i, r in enumerate(pool.records(k))} for k in range(len(pool.datasets))]
    for cohort in cohorts:
        cohort.arrays = load_arrays(cohort.dataset, cohort.records, size, description=cohort.name, **load)

    runs = [(s, r) for s in range(seeds) for r in ratios]
    bar = tqdm(runs, desc="runs", unit="run", disable=not progress)
    for seed, ratio in bar:
        name = run_name(seed, ratio)
        bar.set_postfix_str(name)
        folder = out / "runs" / name
        if not is_model_dir(folder):
            parts = [train_arrays]
            if ratio > 0:
                chosen = pool.select(counts[ratio], seed=seed)
                for k in range(len(pool.datasets)):
                    index = [pool_index[k][r.study_id] for d, r in chosen if d == k]
                    if index:
                        parts.append(pool_arrays[k].subset(sorted(index)))
            run_config = dataclasses.replace(
                config, train=dataclasses.replace(config.train, seed=config.train.seed + seed)
            )
            fit(
                StudyArrays.concat(parts),
                val_arrays,
                folder,
                run_config,
                matrix=real.info.matrix,
                progress=progress,
                description=name,
            )
        classifier = None
        for cohort in cohorts:
            path = folder / "predictions" / f"{cohort.name}.csv"
            if not path.is_file():
                classifier = classifier or Classifier.load(folder, device=config.train.device)
                classifier.predict_arrays(cohort.arrays, cohort.records).write_csv(
                    path, classifier.thresholds
                )
    results = summarise(out, cohorts, ratios, seeds, settings)
    write_report(results, out)
    return results


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else math.nan


def _run_info(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def summarise(
    out: Path, cohorts: Sequence[Cohort], ratios: Sequence[float], seeds: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """All numbers of the report from the runs' saved predictions (see the module docstring)."""
    infos = {(s, r): _run_info(out / "runs" / run_name(s, r)) for s in range(seeds) for r in ratios}
    probabilities: dict[tuple[str, int, float], np.ndarray] = {}
    for cohort in cohorts:
        for s, r in infos:
            ids, _, p = read_predictions(out / "runs" / run_name(s, r) / "predictions" / f"{cohort.name}.csv")
            if ids != [rec.study_id for rec in cohort.records]:
                raise DatasetError(
                    f"predictions of {run_name(s, r)} for {cohort.name} are stale; delete them"
                )
            probabilities[(cohort.name, s, r)] = p
    runs = {
        run_name(s, r): {"seed": s, "ratio": r, "thresholds": info["thresholds"], **info["training"]}
        for (s, r), info in infos.items()
    }
    per_run, per_ratio = [], []
    for cohort in cohorts:
        targets = cohort.targets
        for task in cohort.tasks:
            k = TASKS.index(task)
            y = targets[:, k].astype(int)

            def scores(s: int, r: float, k: int = k, cohort: Cohort = cohort) -> np.ndarray:
                return probabilities[(cohort.name, s, r)][:, k]

            ensemble = {r: np.mean([scores(s, r) for s in range(seeds)], axis=0) for r in ratios}
            real_only = [auc_ci(y, scores(s, 0.0)).auc for s in range(seeds)]
            for r in ratios:
                aucs, gains, relative, sens, spec = [], [], [], [], []
                for s in range(seeds):
                    auc = auc_ci(y, scores(s, r))
                    point = operating_point(y, scores(s, r), infos[(s, r)]["thresholds"][task])
                    entry = {
                        "task": task,
                        "cohort": cohort.name,
                        "seed": s,
                        "ratio": r,
                        "auc": auc.to_dict(),
                        "operating_point": point.to_dict(),
                    }
                    if r > 0:
                        entry["delong_vs_real_only"] = delong_test(y, scores(s, 0.0), scores(s, r)).to_dict()
                        gains.append(auc.auc - real_only[s])
                        relative.append(100 * (auc.auc - real_only[s]) / real_only[s])
                    per_run.append(entry)
                    aucs.append(auc.auc)
                    sens.append(point.sensitivity)
                    spec.append(point.specificity)
                auc_mean, auc_sd = _mean_sd(aucs)
                row = {
                    "task": task,
                    "cohort": cohort.name,
                    "external": cohort.external,
                    "ratio": r,
                    "n": len(y),
                    "n_positive": int(y.sum()),
                    "auc_mean": auc_mean,
                    "auc_sd": auc_sd,
                    "ensemble_auc": auc_ci(y, ensemble[r]).to_dict(),
                    "sensitivity_mean": _mean_sd(sens)[0],
                    "specificity_mean": _mean_sd(spec)[0],
                }
                if r > 0:
                    test = delong_test(y, ensemble[0.0], ensemble[r])
                    gain_abs_mean, gain_abs_sd = _mean_sd(gains)
                    gain_rel_mean, gain_rel_sd = _mean_sd(relative)
                    row.update(
                        gain_abs_mean=gain_abs_mean,
                        gain_abs_sd=gain_abs_sd,
                        gain_rel_mean=gain_rel_mean,
                        gain_rel_sd=gain_rel_sd,
                        gain_rel_per_seed=relative,
                        ensemble_delong=test.to_dict(),
                    )
                per_ratio.append(row)
    pooled = _pooled(per_ratio, ratios)
    headline = _headline(pooled, runs, ratios, seeds)
    return {
        "settings": settings,
        "cohorts": {
            c.name: {
                "path": str(c.dataset.root),
                "external": c.external,
                "n": len(c.records),
                "labels": dict(Counter(r.label for r in c.records)),
                "tasks": c.tasks,
            }
            for c in cohorts
        },
        "runs": runs,
        "per_run": per_run,
        "per_ratio": per_ratio,
        "pooled": pooled,
        "headline": headline,
    }


def _pooled(per_ratio: Sequence[dict[str, Any]], ratios: Sequence[float]) -> list[dict[str, Any]]:
    """Per task and ratio > 0 over the external cohorts: gains mean ± SD across cohorts, Stouffer p."""
    pooled = []
    for task in TASKS:
        for r in ratios:
            rows = [x for x in per_ratio if x["task"] == task and x["ratio"] == r and x["external"] and r > 0]
            if not rows:
                continue
            z = [x["ensemble_delong"]["z"] for x in rows]
            combined = float(np.sum(z) / np.sqrt(len(z)))
            rel_mean, rel_sd = _mean_sd([x["gain_rel_mean"] for x in rows])
            abs_mean, abs_sd = _mean_sd([x["gain_abs_mean"] for x in rows])
            pooled.append(
                {
                    "task": task,
                    "ratio": r,
                    "cohorts": [x["cohort"] for x in rows],
                    "gain_rel_mean": rel_mean,
                    "gain_rel_sd_across_cohorts": rel_sd,
                    "gain_rel_sd_across_runs": _mean_sd([g for x in rows for g in x["gain_rel_per_seed"]])[1],
                    "gain_abs_mean": abs_mean,
                    "gain_abs_sd_across_cohorts": abs_sd,
                    "stouffer_z": combined,
                    "p_value": float(2 * norm.sf(abs(combined))) if not math.isnan(combined) else math.nan,
                }
            )
    return pooled


def _headline(
    pooled: Sequence[dict[str, Any]], runs: dict[str, Any], ratios: Sequence[float], seeds: int
) -> dict[str, Any]:
    """Per task, the pooled row of the ratio > 0 with the best mean validation AUC over seeds."""
    headline = {}
    for task in TASKS:
        candidates = [row for row in pooled if row["task"] == task]
        if not candidates:
            continue

        def validation(ratio: float, task: str = task) -> tuple[float, float, float]:
            vals = [runs[run_name(s, ratio)]["validation"] for s in range(seeds)]
            aucs = [v[task]["auc"] for v in vals if v[task]["auc"] is not None]
            scores = [v["score"] for v in vals if v["score"] is not None]
            auc = float(np.mean(aucs)) if aucs else float(np.mean(scores)) if scores else -math.inf
            return auc, -float(np.mean([v[task]["loss"] for v in vals])), -ratio

        best = max(candidates, key=lambda row: validation(row["ratio"]))
        headline[task] = {**best, "validation_auc": validation(best["ratio"])[0]}
    return headline


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _f(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _pm(mean: float, sd: float, digits: int = 3, sign: bool = False) -> str:
    if not math.isfinite(mean):
        return "—"
    text = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return text + (f" ± {sd:.{digits}f}" if math.isfinite(sd) else "")


def _p(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return "< 0.0001" if value < 1e-4 else f"{value:.4f}"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def write_report(results: dict[str, Any], out: str | Path) -> Path:
    """``results.json``, ROC curves (``roc-<task>.png``) and ``report.md`` in ``out``."""
    out = Path(out)
    atomic_write_text(out / RESULTS, json.dumps(_clean(results), indent=1) + "\n")
    figures = plot_rocs(results, out)
    settings = results["settings"]
    train = settings["config"]["train"]
    any_run = next(iter(results["runs"].values()))
    lines = [
        "# Synthetic augmentation study",
        "",
        f"- real training data: `{settings['real']}` ({any_run['n_train_real']} training and "
        f"{any_run['n_val']} validation studies, split by patient)",
        f"- synthetic studies: `{settings['synthetic']}`, {settings['mix']} mix, "
        f"pool per condition {settings['synthetic_pool']}",
        f"- ratios (synthetic : real training studies): {', '.join(f'{r:g}' for r in settings['ratios'])}; "
        f"seeds: {settings['seeds']}; budget per run: {train['max_steps']} steps x {train['batch_size']} "
        "studies, early stopping on validation",
        "- cohorts: "
        + ", ".join(
            f"{name} ({c['n']} studies{', external' if c['external'] else ', real test split'})"
            for name, c in results["cohorts"].items()
        ),
        "",
        "## Headline",
        "",
        "Relative AUC gain = 100 x (AUC augmented − AUC real only) / AUC real only, averaged over seeds per "
        "cohort, then mean ± SD across the external cohorts. Absolute gain in AUC points. The ratio is "
        "chosen on validation; p combines the cohorts' paired DeLong tests (seed-averaged scores) by "
        "Stouffer's method.",
        "",
        _row("task", "ratio", "relative gain %", "absolute gain", "p", "external cohorts"),
        _row(*["---"] * 6),
    ]
    for task, row in results["headline"].items():
        lines.append(
            _row(
                task,
                f"{row['ratio']:g}",
                _pm(row["gain_rel_mean"], row["gain_rel_sd_across_cohorts"], 1, True),
                _pm(row["gain_abs_mean"], row["gain_abs_sd_across_cohorts"], 3, True),
                _p(row["p_value"]),
                len(row["cohorts"]),
            )
        )
    if not results["headline"]:
        lines.append(_row("—", "—", "no external cohort and ratio > 0 to compare", "—", "—", "—"))
    lines += ["", "## Pooled over external cohorts, every ratio", ""]
    lines += [
        _row("task", "ratio", "relative gain % (SD across cohorts)", "SD across seeds x cohorts", "p"),
        _row(*["---"] * 5),
    ]
    for row in results["pooled"]:
        lines.append(
            _row(
                row["task"],
                f"{row['ratio']:g}",
                _pm(row["gain_rel_mean"], row["gain_rel_sd_across_cohorts"], 1, True),
                _f(row["gain_rel_sd_across_runs"], 1),
                _p(row["p_value"]),
            )
        )
    for task in TASKS:
        rows = [x for x in results["per_ratio"] if x["task"] == task]
        if not rows:
            continue
        lines += [
            "",
            f"## {task}",
            "",
            "AUC mean ± SD over seeds; seed-averaged AUC with its 95 % DeLong CI; gains over real only "
            "(ratio 0) of the same seed; DeLong p on seed-averaged scores; sensitivity and specificity at "
            "each run's validation-chosen threshold, averaged over seeds.",
            "",
            _row(
                "cohort",
                "n (pos)",
                "ratio",
                "AUC",
                "seed-averaged AUC [95% CI]",
                "gain (AUC points)",
                "gain %",
                "p",
                "sensitivity",
                "specificity",
            ),
            _row(*["---"] * 10),
        ]
        for x in rows:
            ens = x["ensemble_auc"]
            lines.append(
                _row(
                    x["cohort"],
                    f"{x['n']} ({x['n_positive']})",
                    f"{x['ratio']:g}",
                    _pm(x["auc_mean"], x["auc_sd"]),
                    f"{_f(ens['auc'])} [{_f(ens['lower'])}, {_f(ens['upper'])}]",
                    _pm(x.get("gain_abs_mean", math.nan), x.get("gain_abs_sd", math.nan), 3, True),
                    _pm(x.get("gain_rel_mean", math.nan), x.get("gain_rel_sd", math.nan), 1, True),
                    _p(x["ensemble_delong"]["p_value"]) if "ensemble_delong" in x else "—",
                    _f(x["sensitivity_mean"]),
                    _f(x["specificity_mean"]),
                )
            )
        if task in figures:
            lines += ["", f"![ROC curves, {task}]({figures[task].name})"]
    lines += [
        "",
        "## Runs",
        "",
        _row("run", "real", "synthetic", "best step", "steps", "validation score", "seconds"),
        _row(*["---"] * 7),
    ]
    for name, run in results["runs"].items():
        lines.append(
            _row(
                name,
                run["n_train_real"],
                run["n_train_synthetic"],
                run["best_step"],
                run["steps"],
                _f(run["validation"].get("score")),
                f"{run['seconds']:.0f}",
            )
        )
    lines += ["", "Per-run AUCs, DeLong tests and operating points: `results.json`.", ""]
    atomic_write_text(out / REPORT, "\n".join(lines))
    return out / REPORT


def plot_rocs(results: dict[str, Any], out: Path) -> dict[str, Path]:
    """One PNG per task: a panel per cohort, one seed-averaged ROC curve per ratio."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    settings = results["settings"]
    ratios, seeds = settings["ratios"], settings["seeds"]
    figures = {}
    for task in TASKS:
        cohorts = [name for name, c in results["cohorts"].items() if task in c["tasks"]]
        if not cohorts:
            continue
        k = TASKS.index(task)
        fig, axes = plt.subplots(1, len(cohorts), figsize=(3.6 * len(cohorts), 3.8), squeeze=False)
        for ax, name in zip(axes[0], cohorts, strict=True):
            for ratio in ratios:
                curves = [
                    read_predictions(out / "runs" / run_name(s, ratio) / "predictions" / f"{name}.csv")
                    for s in range(seeds)
                ]
                y = curves[0][1][:, k]
                score = np.mean([c[2][:, k] for c in curves], axis=0)
                fpr, tpr, _ = roc_curve(y, score)
                auc = auc_ci(y, score).auc
                label = "real only" if ratio == 0 else f"+{ratio:g}x synthetic"
                ax.plot(fpr, tpr, label=f"{label} (AUC {auc:.3f})")
            ax.plot([0, 1], [0, 1], color="0.7", linestyle=":", linewidth=1)
            ax.set(title=name, xlabel="1 − specificity", ylabel="sensitivity", xlim=(0, 1), ylim=(0, 1.01))
            ax.legend(loc="lower right", fontsize=7)
        fig.suptitle(f"{task}: seed-averaged ROC curves")
        fig.tight_layout()
        path = out / f"roc-{task}.png"
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(path, buffer.getvalue())
        figures[task] = path
    return figures
