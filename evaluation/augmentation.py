"""The augmentation study: does adding synthetic scans to a small real training set raise AUC elsewhere?

Design (the paper's downstream experiment, Haberl et al. 2025, made explicit and repeatable):

- The real dataset is a *pool*, split by patient once (its ``splits.json``, stratified by label and
  both task targets): its validation patients choose every model's best step and thresholds and
  every task's headline ratio; its test patients form the ``internal`` cohort; the ``--test``
  datasets are the external cohorts, scored whole. Validation must hold at least
  :data:`MIN_VALIDATION_POSITIVES` positives and negatives of each task.
- For each real-set size ``n`` and draw ``d``, a small real training set of ``n`` patients is drawn
  from the pool's training patients (stratified like the split; nested, so draw ``d`` at 50 patients
  holds draw ``d`` at 25). Draws are independent of each other, so the spread across draws is the
  sampling variance of "a hospital's small real set" that one fixed set never shows.
- Per draw, ``seeds`` training seeds, and per seed the arms: real only; real + synthetic studies at
  each declared ratio ``r`` (``round(r x n_real)`` studies, balanced over conditions or matched to the
  draw); optionally real + extra *real* studies from the generator's training site (``oracle``: is the
  generator the bottleneck?) and real + simulator studies (``simulator``: a physics prior). Every arm
  of one (size, draw, seed) has the same real studies, training seed and step budget, so arms differ
  only in the added data; added studies are drawn by a permutation keyed by (draw, seed), nested
  across ratios and sizes.
- Inference treats the training procedure, not one trained model, as the thing tested: per cohort,
  the gain of an arm over real only of the same (draw, seed) is averaged over seeds within a draw,
  and the draw means give a t interval and p-value (:func:`~synthscan.evaluation.stats.across_draws`).
  Pooled over the external cohorts, each run's gain is first averaged over them. Gains: absolute
  AUC points, relative % (100 x gain / AUC_0) and the share of headroom closed
  ((AUC - AUC_0) / (1 - AUC_0)), which removes the ceiling that bounds the relative gain by
  (1 - AUC_0) / AUC_0. The DeLong test of one model against its real-only twin is kept per run as a
  detail only: it treats both trained models as fixed.
- Learning curves: mean AUC per arm and size with its CI across draws. The effective-sample
  multiplier of an arm at size ``n`` is ``n_eff / n``, where ``n_eff`` is the real-only size whose
  (isotonic, log-size) learning curve reaches the arm's mean external AUC; its 95 % interval is a
  percentile bootstrap over draws.
- Per task and size, the headline ratio is the synthetic ratio with the best mean validation AUC *of
  that task* (ties: lower validation loss of that task, then the smaller ratio), never a test cohort.

Every run is a classifier run folder ``runs/n<size>-d<draw>-s<seed>-<arm><ratio>`` with per-cohort
predictions; it is written as it ends and skipped by a rerun, and runs are independent, so
``shard=(i, N)`` trains every N-th run and any number of processes or machines share one study
(``results.json`` is assembled once every run is complete, and equals a single process's). Binned
arrays are cached under ``cache/``; the report is written by :mod:`.augmentation_report`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy.stats import bootstrap
from tqdm.auto import tqdm

from synthscan.atomic import atomic_write_text
from synthscan.classifier.config import MIXES, TASKS, ClassifierConfig
from synthscan.classifier.data import (
    StudyArrays,
    check_grid,
    evaluable_tasks,
    load_arrays,
    targets_for,
    task_stratum,
)
from synthscan.classifier.model import is_model_dir
from synthscan.classifier.predict import Classifier, read_predictions
from synthscan.classifier.synthetic import (
    StudyPool,
    SyntheticGenerator,
    allocate,
    block_tracers,
    generate_synthetic,
    label_weights,
    patient_records,
    plan_label_blocks,
    synthetic_count,
)
from synthscan.classifier.train import (
    check_trainable,
    check_validation,
    fit,
    real_split_records,
)
from synthscan.config import NonNegativeInt, PositiveInt, to_dict
from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.evaluation.augmentation_report import EXTERNAL, INTERNAL, REAL, RESULTS, write_report
from synthscan.evaluation.stats import across_draws, auc_ci, delong_test, effective_size, operating_point
from synthscan.generator.conditions import condition_key
from synthscan.labels import LABELS, PATIENT_SOURCES
from synthscan.runs import RunDir

log = logging.getLogger(__name__)

SETTINGS = "study.json"
ADDED_ARMS: tuple[str, ...] = ("synthetic", "oracle", "simulator")
"""Arms that add studies to the real ones: generated, extra real from the generator's site, simulated."""
ALL = 0
"""A real-set size of 0 means the whole training split (one draw)."""
BOOTSTRAP_RESAMPLES = 999


@dataclass(frozen=True)
class StudyDesign:
    """What an augmentation study trains, declared before it runs (recorded in ``study.json``)."""

    ratios: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0)  # added:real training studies; 0 = real only
    real_sizes: tuple[NonNegativeInt, ...] = (ALL,)  # real training patients per draw (0: the whole split)
    draws: PositiveInt = 1  # independent draws of the small real set per size
    seeds: PositiveInt = 3  # training seeds per draw
    draw_seed: NonNegativeInt = 0  # seed of the draws of small real sets
    mix: str = "balanced"  # condition mix of added studies: "balanced" or "matched" to the draw
    synthetic_seed: NonNegativeInt = 0  # first seed of generated studies (recorded per study)

    def __post_init__(self) -> None:
        if self.mix not in MIXES:
            raise ValueError(f"unknown mix {self.mix!r}; valid mixes: {', '.join(MIXES)}")
        if any(r < 0 or not math.isfinite(r) for r in self.ratios):
            raise ValueError(f"ratios {self.ratios} must be finite and non-negative")
        if self.seeds < 1 or self.draws < 1:
            raise ValueError("--draws and --seeds must be at least 1")
        if any(n < 0 for n in self.real_sizes) or not self.real_sizes:
            raise ValueError("--real-sizes must be positive numbers of patients, or 'all'")
        if ALL in self.real_sizes and self.draws > 1:
            raise ValueError(
                "every draw of the whole training split is the same set: with --draws above 1, give "
                "--real-sizes smaller than the training split"
            )
        object.__setattr__(self, "ratios", tuple(sorted(set(self.ratios) | {0.0})))
        object.__setattr__(self, "real_sizes", tuple(sorted(set(self.real_sizes))))

    @property
    def added_ratios(self) -> tuple[float, ...]:
        return tuple(r for r in self.ratios if r > 0)


@dataclass(frozen=True)
class Run:
    """One classifier of the study."""

    size: int
    draw: int
    seed: int
    arm: str  # "real" or one of ADDED_ARMS
    ratio: float

    @property
    def name(self) -> str:
        arm = REAL if self.arm == REAL else f"{self.arm}{self.ratio:g}"
        return f"n{self.size}-d{self.draw}-s{self.seed}-{arm}"

    @property
    def twin(self) -> Run:
        """The real-only run of the same size, draw and seed."""
        return Run(self.size, self.draw, self.seed, REAL, 0.0)


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


def parse_sizes(text: str) -> tuple[int, ...]:
    """``"25,50,100"`` → (25, 50, 100); ``"all"`` → the whole training split (0)."""
    values = []
    for item in (v.strip() for v in text.split(",") if v.strip()):
        if item == "all":
            values.append(ALL)
        elif item.isdigit() and int(item) > 0:
            values.append(int(item))
        else:
            raise ValueError(f"--real-sizes {text!r} must be positive whole numbers of patients, or 'all'")
    if not values:
        raise ValueError("--real-sizes is empty; give sizes such as 25,50,100 or 'all'")
    return tuple(sorted(set(values)))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"2/4"`` → (2, 4): the second of four shards."""
    if text is None:
        return None
    index, sep, count = text.partition("/")
    if not (sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise ValueError(f"--shard {text!r} must be I/N with 1 <= I <= N, e.g. 1/4")
    return int(index), int(count)


def patient_strata(records: Sequence[Record]) -> dict[str, tuple[int, ...]]:
    """Each patient's split stratum (element-wise maximum over its studies, as in ``splits.json``)."""
    strata: dict[str, tuple[int, ...]] = {}
    for record in records:
        key = task_stratum(record)
        previous = strata.get(record.patient_id, key)
        strata[record.patient_id] = tuple(max(a, b) for a, b in zip(previous, key, strict=True))
    return strata


def draw_patients(strata: dict[str, tuple[int, ...]], size: int, draw: int, seed: int) -> list[str]:
    """``size`` patients drawn without replacement, stratified; nested in ``size`` for one ``draw``.

    Each stratum's patients are permuted by ``(seed, draw, stratum)``; the stratum counts follow
    :func:`allocate`, which only ever adds patients as ``size`` grows.
    """
    if size > len(strata):
        raise DatasetError(
            f"a real-set size of {size} patients exceeds the {len(strata)} training patients of the pool; "
            "lower --real-sizes or add patients"
        )
    keys = sorted(set(strata.values()))
    members = {key: sorted(p for p, k in strata.items() if k == key) for key in keys}
    counts = allocate(size, {key: float(len(members[key])) for key in keys})
    chosen = []
    for index, key in enumerate(keys):
        order = np.random.default_rng([seed, draw, index]).permutation(len(members[key]))
        chosen += [members[key][i] for i in order[: counts[key]]]
    return sorted(chosen)


def _overlap(a: Sequence[Record], b: Sequence[Record]) -> tuple[int, str]:
    """Patients two record sets share: same (site, patient) or, for simulated studies, the same seed."""
    pairs = {(r.site, r.patient_id) for r in a} & {(r.site, r.patient_id) for r in b}
    seeds = {r.seed for r in a if r.source == "simulated" and r.seed is not None} & {
        r.seed for r in b if r.source == "simulated" and r.seed is not None
    }
    if pairs:
        return len(pairs), f"(site, patient) {sorted(pairs)[0]}"
    if seeds:
        return len(seeds), f"simulation seed {min(seeds)} (the same simulated patient)"
    return 0, ""


def make_cohorts(
    real: Dataset,
    internal: Sequence[Record],
    external: Sequence[Dataset],
    size: tuple[int, int],
    training: Sequence[tuple[str, Sequence[Record]]] = (),
) -> list[Cohort]:
    """Validate the test cohorts (fail early, before any training) and name them by their folders.

    A cohort that shares a patient with any training source (the real pool, an oracle or simulator
    dataset) is refused: the test would no longer be patient-disjoint.
    """
    cohorts = []
    names: Counter[str] = Counter()
    sources = [("the real dataset", real.filter(source=PATIENT_SOURCES)), *training]
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
        for what, train_records in sources:
            shared, example = _overlap(train_records, records)
            if shared:
                raise DatasetError(
                    f"test cohort {where} shares {shared} patient(s) with {what}, e.g. {example}; a test "
                    "cohort must be patient-disjoint from training (simulate it with another --seed)"
                )
        base = dataset.root.resolve().name
        names[base] += 1
        name = base if names[base] == 1 else f"{base}-{names[base]}"
        cohorts.append(Cohort(name, dataset, records, True, tasks))
    if any(c.name in (INTERNAL, EXTERNAL) for c in cohorts):
        raise DatasetError(
            f"a test cohort folder is named {INTERNAL!r} or {EXTERNAL!r}, which name report rows"
        )
    tasks = evaluable_tasks(internal)
    if tasks:
        cohorts.insert(0, Cohort(INTERNAL, real, list(internal), False, tasks))
    return cohorts


FIXED_SETTINGS = (
    "config",
    "real",
    "synthetic",
    "oracle",
    "simulator",
    "ratios",
    "mix",
    "synthetic_seed",
    "draw_seed",
    "pools",
)
"""Settings a resumed study must share with the one that made its runs (sizes, draws, seeds may grow)."""


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


def plan_runs(design: StudyDesign, sizes: Sequence[int], arms: Sequence[str]) -> list[Run]:
    """Every run of the study in a fixed order (shards take every N-th)."""
    runs = []
    for size in sizes:
        for draw in range(design.draws):
            for seed in range(design.seeds):
                runs.append(Run(size, draw, seed, REAL, 0.0))
                runs += [Run(size, draw, seed, arm, r) for arm in arms for r in design.added_ratios]
    return runs


def _prepared(
    out: Path, plan: dict[tuple[str, int | None], int], generator: SyntheticGenerator, real: Sequence[Record]
) -> list[Dataset] | None:
    """The synthetic datasets already sampled for ``plan`` (``synthetic.json`` names them), else None.

    Refuses studies sampled with other tracers than the real training studies' mix asks for.
    """
    path = out / "synthetic.json"
    if not path.is_file():
        return None
    blocks = json.loads(path.read_text(encoding="utf-8"))["blocks"]
    wanted = {(label, grade): n for (label, grade), n in plan.items() if n}
    if {(b["condition"], b["grade"]): b["n"] for b in blocks} != wanted:
        return None
    for b in blocks:
        tracers = Counter(t for t in block_tracers(b["n"], b["condition"], generator, real) if t)
        if dict(tracers) != b.get("tracers", {}):
            raise DatasetError(
                f"{out} holds {condition_key(b['condition'], b['grade'])} studies sampled with tracers "
                f"{b.get('tracers') or 'drawn by the model'}, but the real training studies' mix asks for "
                f"{dict(tracers) or 'none'}; delete {out} to sample them again, or choose a new --out"
            )
    return [Dataset.open(out / condition_key(b["condition"], b["grade"])) for b in blocks]


def run_augmentation_study(
    real: Dataset,
    test: Sequence[Dataset],
    out: str | Path,
    config: ClassifierConfig,
    design: StudyDesign,
    *,
    synthetic: Sequence[Dataset] = (),
    generator: SyntheticGenerator | None = None,
    oracle: Sequence[Dataset] = (),
    simulator: Sequence[Dataset] = (),
    shard: tuple[int, int] | None = None,
    prepare_only: bool = False,
    progress: bool = True,
) -> dict[str, Any] | None:
    """Train this process's runs, score every cohort; return (and write) the results once all runs exist.

    Synthetic studies come from the ``synthetic`` datasets, or are sampled from ``generator`` into
    ``out/synthetic`` (as many as the largest run needs, recorded seeds). ``prepare_only`` stops after
    the checks, the sampling and the binning (run it once before starting shards that share ``out``).
    Returns ``None`` while runs of other shards are missing.
    """
    out = Path(out)
    input_size = tuple(config.preprocess.input_size)
    check_grid(real.info.matrix, input_size, f"real dataset {real.root}")
    splits = real_split_records(real, config)
    pool_train, real_val = splits["train"], splits["val"]
    check_trainable(pool_train, real_val, str(real.root))
    check_validation(real_val, str(real.root))
    extra = {"oracle": list(oracle), "simulator": list(simulator)}
    pools = {
        arm: StudyPool(datasets, patient_records, kind=f"{arm} (extra real)" if arm == "oracle" else arm)
        for arm, datasets in extra.items()
        if datasets and design.added_ratios
    }
    training = [(f"the {arm} data", pool.all_records()) for arm, pool in pools.items()]
    cohorts = make_cohorts(real, splits["test"], test, input_size, training)
    for arm, pool in pools.items():
        shared, example = _overlap(real.filter(source=PATIENT_SOURCES), pool.all_records())
        if shared:
            raise DatasetError(
                f"the {arm} data shares {shared} patient(s) with the real dataset, e.g. {example}"
            )

    strata = patient_strata(pool_train)
    sizes = [size or len(strata) for size in design.real_sizes]
    draws = {
        (size, d): draw_patients(strata, size, d, design.draw_seed)
        for size in sizes
        for d in range(design.draws)
    }
    by_patient: dict[str, list[Record]] = {}
    for record in pool_train:
        by_patient.setdefault(record.patient_id, []).append(record)
    draw_records = {key: [r for p in patients for r in by_patient[p]] for key, patients in draws.items()}

    arms = [arm for arm in ADDED_ARMS if arm in pools or (arm == "synthetic" and design.added_ratios)]
    runs = plan_runs(design, sizes, arms)
    source_labels = {arm: tuple(k for k, n in pool.available().items() if n) for arm, pool in pools.items()}
    source_labels["synthetic"] = (
        generator.labels if generator else tuple(dict.fromkeys(r.label for d in synthetic for r in d))
    )

    def added_counts(run: Run) -> dict[str, int]:
        records = draw_records[(run.size, run.draw)]
        weights = label_weights(records, design.mix, source_labels[run.arm])
        return allocate(synthetic_count(run.ratio, len(records)), weights)

    counts = {run: added_counts(run) for run in runs if run.arm != REAL}
    needed = {
        arm: {label: max([c[label] for r, c in counts.items() if r.arm == arm] or [0]) for label in LABELS}
        for arm in arms
    }
    settings: dict[str, Any] = {
        "config": to_dict(config),
        "design": to_dict(design),
        "ratios": list(design.ratios),
        "mix": design.mix,
        "synthetic_seed": design.synthetic_seed,
        "draw_seed": design.draw_seed,
        "real": str(real.root.resolve()),
        "synthetic": f"generator {generator.name}"
        if generator
        else ", ".join(str(d.root.resolve()) for d in synthetic) or "none",
        "oracle": ", ".join(str(d.root.resolve()) for d in oracle) or "none",
        "simulator": ", ".join(str(d.root.resolve()) for d in simulator) or "none",
        "cohorts": {c.name: str(c.dataset.root.resolve()) for c in cohorts},
        "pool": {
            "train_patients": len(strata),
            "val_studies": len(real_val),
            "test_studies": len(splits["test"]),
        },
    }
    _check_settings(out, settings)  # before sampling anything
    if "synthetic" in arms and generator is not None:
        plan = plan_label_blocks(needed["synthetic"], pool_train, design.mix, generator.blocks)
        synthetic = _prepared(out / "synthetic", plan, generator, pool_train) or []
        if not synthetic and shard is not None:
            raise DatasetError(
                f"shards must not sample into {out / 'synthetic'} at the same time: run the same command "
                "once with --prepare-only (no --shard) first"
            )
        if not synthetic:
            synthetic = generate_synthetic(
                out / "synthetic", plan, seed=design.synthetic_seed, generator=generator, real=pool_train
            )
    if "synthetic" in arms and not synthetic:
        raise DatasetError("ratios above 0 need synthetic studies: pass a synthetic dataset or generator")
    for dataset in [*synthetic, *oracle, *simulator]:
        if tuple(dataset.info.matrix) != tuple(real.info.matrix):
            raise DatasetError(
                f"added-study dataset {dataset.root} is {dataset.info.matrix} but the real data is "
                f"{real.info.matrix}; use studies at the real matrix"
            )
    if "synthetic" in arms:
        pools["synthetic"] = StudyPool(synthetic)
        if set(source_labels["synthetic"]) != set(LABELS):
            log.warning(
                "synthetic studies exist only for %s; other conditions get none",
                ", ".join(source_labels["synthetic"]),
            )
    for arm in arms:
        pools[arm].check(needed[arm], f"the largest {arm} run with the {design.mix} mix")
    settings["pools"] = {arm: pool.available() for arm, pool in pools.items()}
    _check_settings(out, settings)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / SETTINGS, json.dumps(settings, indent=2) + "\n")

    with RunDir(out, design, kind="augmentation-study") as study:
        cache = out / "cache"
        load = {"cache_dir": cache, "progress": progress}
        train_arrays = load_arrays(real, pool_train, input_size, description="real train pool", **load)
        val_arrays = load_arrays(real, real_val, input_size, description="real val", **load)
        train_index = {r.study_id: i for i, r in enumerate(pool_train)}
        pool_arrays = {
            arm: [
                load_arrays(d, pool.records(k), input_size, description=arm, **load)
                for k, d in enumerate(pool.datasets)
            ]
            for arm, pool in pools.items()
        }
        pool_index = {
            arm: [{r.study_id: i for i, r in enumerate(pool.records(k))} for k in range(len(pool.datasets))]
            for arm, pool in pools.items()
        }
        for cohort in cohorts:
            cohort.arrays = load_arrays(
                cohort.dataset, cohort.records, input_size, description=cohort.name, **load
            )
        if prepare_only:
            log.info("prepared %s: %d runs to train", out, len(runs))
            return None

        mine = runs if shard is None else runs[shard[0] - 1 :: shard[1]]
        bar = tqdm(mine, desc="runs", unit="run", disable=not progress)
        for run in bar:
            bar.set_postfix_str(run.name)
            folder = out / "runs" / run.name
            if not is_model_dir(folder):
                rows = [train_index[r.study_id] for r in draw_records[(run.size, run.draw)]]
                parts = [train_arrays.subset(rows)]
                if run.arm != REAL:
                    chosen = pools[run.arm].select(counts[run], seed=(design.draw_seed, run.draw, run.seed))
                    for k in range(len(pools[run.arm].datasets)):
                        index = [pool_index[run.arm][k][r.study_id] for d, r in chosen if d == k]
                        if index:
                            parts.append(pool_arrays[run.arm][k].subset(sorted(index)))
                run_config = dataclasses.replace(
                    config, train=dataclasses.replace(config.train, seed=config.train.seed + run.seed)
                )
                result = fit(
                    StudyArrays.concat(parts),
                    val_arrays,
                    folder,
                    run_config,
                    matrix=real.info.matrix,
                    progress=progress,
                    description=run.name,
                )
                study.log_metrics(run=run.name, event="trained", seconds=round(result.seconds, 2))
            classifier = None
            for cohort in cohorts:
                path = folder / "predictions" / f"{cohort.name}.csv"
                if not path.is_file():
                    classifier = classifier or Classifier.load(folder, device=config.train.device)
                    classifier.predict_arrays(cohort.arrays, cohort.records).write_csv(
                        path, classifier.thresholds
                    )
        missing = [run.name for run in runs if not _complete(out, run, cohorts)]
        if missing:
            log.info(
                "%d of %d runs are complete; the report follows when all are",
                len(runs) - len(missing),
                len(runs),
            )
            return None
        settings["draw_overlap"] = {
            str(size): _mean_overlap([draws[(size, d)] for d in range(design.draws)]) for size in sizes
        }
        write_report(summarise(out, cohorts, runs, settings), out)
        study.log_metrics(event="report", runs=len(runs))
    return json.loads((out / RESULTS).read_text(encoding="utf-8"))


def run_study_in_processes(
    real: Dataset,
    test: Sequence[Dataset],
    out: str | Path,
    config: ClassifierConfig,
    design: StudyDesign,
    *,
    shard: tuple[int, int] | None = None,
    prepare_only: bool = False,
    **options: Any,
) -> dict[str, Any] | Literal[False] | None:
    """:func:`run_augmentation_study` in this process, or this process's share under ``accelerate launch``.

    Launched processes take shards ``rank + 1`` of ``N`` and the main process returns the results once
    every process is done (the others return ``False``). A study that samples from a generator must
    be prepared first by one process (``prepare_only``, without ``accelerate launch``), so that no two
    processes sample into its folder; :func:`run_augmentation_study` refuses otherwise.
    """
    from accelerate import PartialState

    state = PartialState()
    if state.num_processes == 1:
        return run_augmentation_study(
            real, test, out, config, design, shard=shard, prepare_only=prepare_only, **options
        )
    if shard is not None or prepare_only:
        raise ValueError(
            "under accelerate launch every process takes its own shard: leave out --shard, and run "
            "--prepare-only in one process (without accelerate launch)"
        )
    shard = (state.process_index + 1, state.num_processes)
    results = run_augmentation_study(real, test, out, config, design, shard=shard, **options)
    state.wait_for_everyone()
    if not state.is_main_process:
        return False
    if results is None:  # another process finished the last run: every run is there now
        results = run_augmentation_study(real, test, out, config, design, shard=shard, **options)
    return results


def _complete(out: Path, run: Run, cohorts: Sequence[Cohort]) -> bool:
    folder = out / "runs" / run.name
    return is_model_dir(folder) and all((folder / "predictions" / f"{c.name}.csv").is_file() for c in cohorts)


def _mean_overlap(draws: Sequence[Sequence[str]]) -> float | None:
    """Mean share of patients two draws of one size have in common (0: disjoint, 1: the same set)."""
    shares = [len(set(a) & set(b)) / len(a) for a, b in combinations(draws, 2)]
    return float(np.mean(shares)) if shares else None


def _run_info(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text(encoding="utf-8"))


def _by_cell(values: dict[Run, float], runs: Sequence[Run], size: int, arm: str, ratio: float) -> np.ndarray:
    """(draws, seeds) array of one arm's per-run values at one size (NaN where a value is missing)."""
    cell = [r for r in runs if (r.size, r.arm, r.ratio) == (size, arm, ratio)]
    n_draws, n_seeds = max(r.draw for r in cell) + 1, max(r.seed for r in cell) + 1
    array = np.full((n_draws, n_seeds), np.nan)
    for r in cell:
        array[r.draw, r.seed] = values.get(r, np.nan)
    return array


def summarise(
    out: Path, cohorts: Sequence[Cohort], runs: Sequence[Run], settings: dict[str, Any]
) -> dict[str, Any]:
    """All numbers of the report from the runs' saved predictions (see the module docstring)."""
    infos = {run: _run_info(out / "runs" / run.name) for run in runs}
    kept = ("best_step", "steps", "validation", "n_train_real", "n_train_synthetic", "n_val")
    run_table = {
        run.name: {
            "size": run.size,
            "draw": run.draw,
            "seed": run.seed,
            "arm": run.arm,
            "ratio": run.ratio,
            "thresholds": info["thresholds"],
            **{k: info["training"][k] for k in kept},
        }
        for run, info in infos.items()
    }
    per_run = []
    auc: dict[tuple[str, str], dict[Run, float]] = {}  # (task, cohort) → run → AUC
    delong: dict[tuple[str, str, Run], dict[str, float]] = {}
    for cohort in cohorts:
        targets = cohort.targets
        probabilities = {}
        for run in runs:
            ids, _, p = read_predictions(out / "runs" / run.name / "predictions" / f"{cohort.name}.csv")
            if ids != [rec.study_id for rec in cohort.records]:
                raise DatasetError(f"predictions of {run.name} for {cohort.name} are stale; delete them")
            probabilities[run] = p
        for task in cohort.tasks:
            k = TASKS.index(task)
            y = targets[:, k].astype(int)
            auc[(task, cohort.name)] = {}
            for run in runs:
                score = probabilities[run][:, k]
                result = auc_ci(y, score)
                auc[(task, cohort.name)][run] = result.auc
                entry = {
                    "run": run.name,
                    "task": task,
                    "cohort": cohort.name,
                    "auc": result.to_dict(),
                    "operating_point": operating_point(y, score, infos[run]["thresholds"][task]).to_dict(),
                }
                if run.arm != REAL:
                    test = delong_test(y, probabilities[run.twin][:, k], score).to_dict()
                    entry["delong_vs_real_only"] = delong[(task, cohort.name, run)] = test
                per_run.append(entry)
    curves, gains = _curves_and_gains(auc, delong, cohorts, runs)
    sizes = sorted({r.size for r in runs})
    multipliers = _multipliers(auc, cohorts, runs, sizes)
    headline = _headline(gains, multipliers, run_table, runs)
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
        "runs": run_table,
        "curves": curves,
        "gains": gains,
        "multipliers": multipliers,
        "headline": headline,
        "per_run": per_run,
    }


def _cells(runs: Sequence[Run]) -> list[tuple[int, str, float]]:
    """(size, arm, ratio) of every cell of the design, real only first within a size."""
    return sorted({(r.size, r.arm, r.ratio) for r in runs}, key=lambda c: (c[0], c[1] != REAL, c[1], c[2]))


def _rows(task: str, cohorts: Sequence[Cohort]) -> list[tuple[str, list[str]]]:
    """Report rows of a task: each cohort that evaluates it, then the external cohorts pooled."""
    external = [c.name for c in cohorts if c.external and task in c.tasks]
    rows = [(c.name, [c.name]) for c in cohorts if task in c.tasks]
    return rows + ([(EXTERNAL, external)] if external else [])


def _curves_and_gains(
    auc: dict[tuple[str, str], dict[Run, float]],
    delong: dict[tuple[str, str, Run], dict[str, float]],
    cohorts: Sequence[Cohort],
    runs: Sequence[Run],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Mean AUC per cell and gains over real only, each with its CI across draws."""
    curves, gains = [], []
    for task in TASKS:
        for row, members in _rows(task, cohorts):
            values = [auc[(task, name)] for name in members]

            def pooled(fn: Any, values: list[dict[Run, float]] = values) -> dict[Run, float]:
                return {run: float(np.mean([fn(v, run) for v in values])) for run in runs}

            measures = {
                "gain_abs": pooled(lambda v, run: v[run] - v[run.twin]),
                "gain_rel": pooled(lambda v, run: 100 * (v[run] - v[run.twin]) / v[run.twin]),
                "headroom_closed": pooled(
                    lambda v, run: (v[run] - v[run.twin]) / (1 - v[run.twin]) if v[run.twin] < 1 else math.nan
                ),
            }
            aucs = pooled(lambda v, run: v[run])
            for size, arm, ratio in _cells(runs):
                cell = {"task": task, "cohort": row, "size": size, "arm": arm, "ratio": ratio}
                mean_auc = across_draws(_by_cell(aucs, runs, size, arm, ratio)).to_dict()
                for end in ("lower", "upper"):  # an AUC's interval stays within [0, 1]
                    mean_auc[end] = float(np.clip(mean_auc[end], 0.0, 1.0))
                curves.append({**cell, "auc": mean_auc})
                if arm == REAL:
                    continue
                tests = [
                    delong[(task, name, run)]
                    for name in members
                    for run in runs
                    if (run.size, run.arm, run.ratio) == (size, arm, ratio)
                ]
                gains.append(
                    {
                        **cell,
                        **{
                            name: across_draws(_by_cell(measure, runs, size, arm, ratio)).to_dict()
                            for name, measure in measures.items()
                        },
                        "per_model_delong": {
                            "tests": len(tests),
                            "better_p05": sum(t["difference"] > 0 and t["p_value"] < 0.05 for t in tests),
                            "worse_p05": sum(t["difference"] < 0 and t["p_value"] < 0.05 for t in tests),
                        },
                    }
                )
    return curves, gains


def _multipliers(
    auc: dict[tuple[str, str], dict[Run, float]],
    cohorts: Sequence[Cohort],
    runs: Sequence[Run],
    sizes: Sequence[int],
) -> list[dict[str, Any]]:
    """Effective-sample multipliers on the pooled external AUC (needs two sizes or more)."""
    if len(sizes) < 2:
        return []
    rows = []
    for task in TASKS:
        members = [c.name for c in cohorts if c.external and task in c.tasks]
        if not members:
            continue
        external = {run: float(np.mean([auc[(task, name)][run] for name in members])) for run in runs}
        real = np.stack([np.nanmean(_by_cell(external, runs, n, REAL, 0.0), axis=1) for n in sizes])

        def multiplier(draws: np.ndarray, arm_means: np.ndarray, size: int, real: np.ndarray = real) -> float:
            curve = real[:, draws].mean(axis=1)
            return effective_size(sizes, curve, float(arm_means[draws].mean()))[0] / size

        for size, arm, ratio in _cells(runs):
            if arm == REAL:
                continue
            arm_means = np.nanmean(_by_cell(external, runs, size, arm, ratio), axis=1)
            target = float(arm_means.mean())
            n_eff, bound = effective_size(sizes, real.mean(axis=1), target)
            lower = upper = math.nan
            if len(arm_means) >= 3:
                interval = bootstrap(
                    (np.arange(len(arm_means)),),
                    lambda d, arm_means=arm_means, size=size: multiplier(np.asarray(d, int), arm_means, size),
                    vectorized=False,
                    n_resamples=BOOTSTRAP_RESAMPLES,
                    method="percentile",
                    rng=np.random.default_rng(0),
                ).confidence_interval
                lower, upper = float(interval.low), float(interval.high)
            rows.append(
                {
                    "task": task,
                    "size": size,
                    "arm": arm,
                    "ratio": ratio,
                    "external_auc": target,
                    "effective_size": n_eff,
                    "bound": bound,
                    "multiplier": n_eff / size,
                    "lower": lower,
                    "upper": upper,
                }
            )
    return rows


def _headline(
    gains: Sequence[dict[str, Any]],
    multipliers: Sequence[dict[str, Any]],
    run_table: dict[str, dict[str, Any]],
    runs: Sequence[Run],
) -> list[dict[str, Any]]:
    """Per task and size: the synthetic ratio chosen on that task's validation, and its pooled numbers."""
    headline = []
    for task in TASKS:
        for size in sorted({r.size for r in runs}):
            ratios = sorted({r.ratio for r in runs if r.arm == "synthetic" and r.size == size})
            pooled = {
                (g["arm"], g["ratio"]): g
                for g in gains
                if (g["task"], g["cohort"], g["size"]) == (task, EXTERNAL, size)
            }
            if not ratios or not pooled:
                continue

            def validation(ratio: float, size: int = size, task: str = task) -> tuple[float, float, float]:
                chosen = [r for r in runs if (r.size, r.arm, r.ratio) == (size, "synthetic", ratio)]
                metrics = [run_table[r.name]["validation"][task] for r in chosen]
                aucs = [m["auc"] for m in metrics if m["auc"] is not None]
                return (
                    float(np.mean(aucs)) if aucs else -math.inf,
                    -float(np.mean([m["loss"] for m in metrics])),
                    -ratio,
                )

            best = max(ratios, key=validation)
            entry = {
                "task": task,
                "size": size,
                "ratio": best,
                "validation_auc": validation(best)[0],
                "synthetic": pooled[("synthetic", best)],
                "multiplier": next(
                    (
                        m
                        for m in multipliers
                        if (m["task"], m["size"], m["arm"], m["ratio"]) == (task, size, "synthetic", best)
                    ),
                    None,
                ),
            }
            for arm in ("oracle", "simulator"):
                if (arm, best) in pooled:
                    entry[arm] = pooled[(arm, best)]
            headline.append(entry)
    return headline
