"""Synthetic training studies for the classifier: from a dataset folder, or generated from a model.

How many synthetic studies of each condition: ``ratio`` x the real training studies in total, split
over the conditions by a *mix*:

- ``balanced`` (default): the three conditions equally, amyloidosis equally over Perugini grades
  1-3. Rare conditions gain the most new examples, which is what augmentation of a small real set
  is for (amyloidosis is ~3 % of referrals).
- ``matched``: like the real training set's label mix (and its amyloidosis grade mix).

Only conditions the source can supply share the studies: those in a generator's condition table (a
model trained without grade-2 amyloidosis generates none), or those present in a synthetic dataset.
The split is house-monotone (adding a study never removes one from another condition), so the
studies chosen for a smaller ratio are a subset of those for a larger one.

With a generator folder (one holding ``model_index.json``), each (condition, grade) block is sampled
into its own dataset with seeds ``seed + block * SEED_STRIDE + i``, recorded per study in the
manifest; a rerun finds the studies already there and only adds missing ones. A model with tracer
conditions is asked for the real training studies' tracer mix of each condition (as ``augment``
does), not left to draw tracers in its own training proportions.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthscan.apportion import apportion_counts
from synthscan.atomic import atomic_write_text
from synthscan.classifier.config import MIXES, ClassifierConfig
from synthscan.dataset import INFO, Dataset, DatasetError, Record, same_pixel_size
from synthscan.generator.conditions import condition_key, split_key, tracer_sequence
from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS, PATIENT_SOURCES

log = logging.getLogger(__name__)

SEED_STRIDE = 1_000_000
"""Seed distance between (condition, grade) blocks: blocks never share a seed below a million studies."""

SampleFn = Callable[..., Dataset]
"""``sample(out, *, condition, n, grade, seed[, tracer]) -> Dataset``: the generator's
``sample_to_dataset`` with its pipeline bound (tests inject a fake); ``tracer`` (one per study) is
passed only for a model with tracer conditions and real studies naming one of its tracers."""

Block = tuple[str, int | None]
ALL_BLOCKS: tuple[Block, ...] = (
    *((label, None) for label in LABELS if label != "amyloidosis"),
    *(("amyloidosis", grade) for grade in AMYLOIDOSIS_GRADES),
    ("amyloidosis", None),
)
"""Every (condition, grade) block in a fixed order; a block's position fixes its seeds. Amyloidosis
without a grade is for generators trained on ungraded amyloidosis studies."""


@dataclass(frozen=True)
class SyntheticGenerator:
    """A generator to sample synthetic training studies from, and the blocks it can generate."""

    sample: SampleFn
    blocks: tuple[Block, ...] = ALL_BLOCKS[:-1]
    name: str = ""
    tracers: tuple[str, ...] = ()  # tracers it can be asked for (none: it has no tracer condition)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(label for label, _ in self.blocks))


def is_generator_dir(path: str | Path) -> bool:
    """A diffusers-style generator folder (``model_index.json``), as opposed to a dataset folder."""
    return (Path(path) / "model_index.json").is_file()


def allocate(n: int, weights: Mapping[Any, float]) -> dict[Any, int]:
    """``n`` items per key in proportion to ``weights`` (:func:`~synthscan.apportion.apportion_counts`)."""
    try:
        return apportion_counts(n, weights)
    except ValueError:
        raise ValueError("cannot allocate studies: every condition has weight 0") from None


def label_weights(
    real: Sequence[Record], mix: str, labels: Sequence[str] = tuple(LABELS)
) -> dict[str, float]:
    """Per-condition weight of the synthetic studies over ``labels`` (the ones the source can supply)."""
    if mix not in MIXES:
        raise ValueError(f"unknown mix {mix!r}; valid mixes: {', '.join(MIXES)}")
    counts = Counter(r.label for r in real)
    weights = {label: (1.0 if mix == "balanced" else float(counts[label])) for label in LABELS}
    return {label: weights[label] if label in labels else 0.0 for label in LABELS}


def grade_weights(real: Sequence[Record], mix: str, grades: Sequence[int]) -> dict[int, float]:
    """Weights of the amyloidosis ``grades``: even for balanced (or none known), else the real grade mix."""
    counts = Counter(r.perugini_grade for r in real if r.label == "amyloidosis")
    if mix == "balanced" or not any(counts[g] for g in grades):
        return dict.fromkeys(grades, 1.0)
    return {g: float(counts[g]) for g in grades}


def synthetic_count(ratio: float, n_real: int) -> int:
    return round(ratio * n_real)


def plan_blocks(
    real: Sequence[Record], n: int, mix: str, blocks: Sequence[Block] = ALL_BLOCKS[:-1]
) -> dict[Block, int]:
    """Studies to generate per (condition, grade) block for ``n`` synthetic studies, over ``blocks``."""
    labels = tuple(dict.fromkeys(label for label, _ in blocks))
    return plan_label_blocks(allocate(n, label_weights(real, mix, labels)), real, mix, blocks)


def plan_label_blocks(
    counts: Mapping[str, int], real: Sequence[Record], mix: str, blocks: Sequence[Block] = ALL_BLOCKS[:-1]
) -> dict[Block, int]:
    """``counts[label]`` studies per condition, spread over the ``blocks`` of each (amyloidosis: grades)."""
    labels = tuple(dict.fromkeys(label for label, _ in blocks))
    plan: dict[Block, int] = {}
    for label, count in counts.items():
        grades = [g for b_label, g in blocks if b_label == label and g is not None]
        if label == "amyloidosis" and grades:
            for grade, k in allocate(count, grade_weights(real, mix, grades)).items():
                plan[(label, grade)] = k
        elif label in labels:
            plan[(label, None)] = count
    return plan


def generate_synthetic(
    out: str | Path,
    plan: Mapping[Block, int],
    *,
    seed: int,
    generator: SyntheticGenerator,
    real: Sequence[Record] = (),
) -> list[Dataset]:
    """Sample each block of ``plan`` into ``out/<condition>[-g<grade>]``; ``synthetic.json`` records seeds.

    A generator with tracers gets each condition's tracer mix of the ``real`` training studies.
    """
    out = Path(out)
    datasets, record = [], []
    for block, n in sorted(plan.items(), key=lambda item: ALL_BLOCKS.index(item[0])):
        if n == 0:
            continue
        label, grade = block
        block_seed = seed + ALL_BLOCKS.index(block) * SEED_STRIDE
        name = condition_key(label, grade)
        log.info("sampling %d synthetic %s studies from seed %d", n, name, block_seed)
        entry = {"condition": label, "grade": grade, "n": n, "first_seed": block_seed}
        options = {}
        tracers = block_tracers(n, label, generator, real)
        if any(tracers):
            _check_block_tracers(out / name, block_seed, tracers)
            options["tracer"] = tracers
            entry["tracers"] = dict(Counter(tracers))
        dataset = generator.sample(out / name, condition=label, n=n, grade=grade, seed=block_seed, **options)
        datasets.append(dataset)
        record.append(entry)
    atomic_write_text(out / "synthetic.json", json.dumps({"blocks": record}, indent=2) + "\n")
    return datasets


def block_tracers(
    n: int, label: str, generator: SyntheticGenerator, real: Sequence[Record]
) -> list[str | None]:
    """Tracers of a block's ``n`` studies: the ``real`` studies' mix where the generator has tracers."""
    return tracer_sequence(n, label, real, generator.tracers) if generator.tracers else [None] * n


def _check_block_tracers(folder: Path, first_seed: int, tracers: Sequence[str | None]) -> None:
    """Refuse a block folder holding a planned seed sampled with another tracer (by an earlier synthscan
    that let the model draw tracers, or for other real data): resuming would add a second study."""
    if not (folder / INFO).is_file():
        return
    for record in Dataset.open(folder).filter(source="synthetic"):
        i = -1 if record.seed is None else record.seed - first_seed
        if 0 <= i < len(tracers) and tracers[i] is not None and record.tracer != tracers[i]:
            raise DatasetError(
                f"{folder} holds {record.study_id} (seed {record.seed}) with tracer "
                f"{record.tracer or 'none'} where the real training studies' tracer mix asks for "
                f"{tracers[i]}; delete {folder} to sample it again, or choose a new --out"
            )


def training_synthetic(
    data: Dataset,
    sources: Sequence[str | Path],
    config: ClassifierConfig,
    out: str | Path,
    *,
    ratio: float,
    mix: str,
    seed: int,
) -> list[Dataset]:
    """The synthetic studies a classifier trains on beside ``data``'s real ones.

    Each of ``sources`` is a synthetic dataset folder (opened and checked against ``data``'s grid) or a
    generator folder, sampled into ``out/synthetic/<name>``: ``ratio`` times the real training
    studies of ``config``'s patient split, blocks in ``mix`` (:func:`plan_blocks`), from ``seed``.
    """
    from synthscan.classifier.train import real_split_records

    models = [p for p in sources if is_generator_dir(p)]
    datasets = open_synthetic_datasets(
        [p for p in sources if not is_generator_dir(p)], data.info.matrix, data.info.pixel_spacing_mm
    )
    real_train = real_split_records(data, config)["train"] if models else []
    for model in models:
        generator = load_generator(
            model, matrix=data.info.matrix, pixel_spacing_mm=data.info.pixel_spacing_mm
        )
        plan = plan_blocks(real_train, synthetic_count(ratio, len(real_train)), mix, generator.blocks)
        datasets += generate_synthetic(
            Path(out) / "synthetic" / Path(model).name, plan, seed=seed, generator=generator, real=real_train
        )
    return datasets


def synthetic_records(dataset: Dataset) -> list[Record]:
    """The ``source=synthetic`` studies of a dataset; refuses a dataset without any."""
    records = dataset.filter(source="synthetic")
    if not records:
        raise DatasetError(
            f"{dataset.root} holds no synthetic studies (source=synthetic rows); "
            "generate some with `synthscan sample`, or pass a generator folder to sample on the fly"
        )
    return records


def open_synthetic_datasets(
    paths: Sequence[str | Path], matrix: tuple[int, int], pixel_spacing_mm: float
) -> list[Dataset]:
    """Open synthetic dataset folders and check they match the real data's grid (matrix, pixel size)."""
    datasets = []
    for path in paths:
        dataset = Dataset.open(path)
        if tuple(dataset.info.matrix) != tuple(matrix):
            raise DatasetError(
                f"synthetic dataset {path} is {dataset.info.matrix[0]}x{dataset.info.matrix[1]} but the real "
                f"data is {matrix[0]}x{matrix[1]}; generate synthetic studies at the real matrix"
            )
        _check_pixel_size(f"synthetic dataset {path} holds", dataset.info.pixel_spacing_mm, pixel_spacing_mm)
        synthetic_records(dataset)
        datasets.append(dataset)
    return datasets


def _check_pixel_size(what: str, spacing: float, real: float) -> None:
    """Bodies drawn at another pixel size on the same matrix differ in size: a class-free tell."""
    if not same_pixel_size(spacing, real):
        raise DatasetError(
            f"{what} {spacing} mm pixels but the real data {real} mm; "
            "use synthetic studies of the real data's pixel size"
        )


def load_generator(
    model_dir: str | Path | None, *, matrix: tuple[int, int], pixel_spacing_mm: float, **options: Any
) -> SyntheticGenerator:
    """The generator in ``model_dir``: its ``sample_to_dataset`` (with ``options``) and its conditions.

    Refuses a model that generates another grid than the real data's before any sampling starts.
    """
    from functools import partial

    from synthscan.generator.augment import model_tracers
    from synthscan.generator.sampling import load_pipeline, sample_to_dataset, sampler_settings

    pipeline = load_pipeline(None if model_dir is None else str(model_dir))
    if tuple(pipeline.matrix) != tuple(matrix):
        raise DatasetError(
            f"the generator {model_dir} makes {pipeline.matrix[0]}x{pipeline.matrix[1]} studies but the real "
            f"data is {matrix[0]}x{matrix[1]}; use a generator trained at the real matrix"
        )
    _check_pixel_size(
        f"the generator {model_dir} makes", float(pipeline.config.pixel_spacing_mm), pixel_spacing_mm
    )
    blocks = []
    for key in pipeline.config.conditions:  # "normal", "metastasis", "amyloidosis-g2" or "amyloidosis"
        label, grade = split_key(key)
        blocks.append((label, grade if label == "amyloidosis" else None))
    sample = partial(sample_to_dataset, pipeline, **{k: v for k, v in options.items() if v is not None})
    tracers = model_tracers(pipeline)
    settings = sampler_settings(pipeline, options.get("steps"), options.get("guidance"))
    scales = ", ".join(f"{label} {g:g}" for label, g in settings["guidance"].items())
    name = (
        f"{getattr(pipeline, 'path', model_dir)} ({settings['steps']} steps, "
        f"guidance {scales}, sha256 {settings['model_sha256'][:12]})"
    )
    return SyntheticGenerator(sample, tuple(blocks), name=name, tracers=tracers)


def patient_records(dataset: Dataset) -> list[Record]:
    """The real or simulated studies of a dataset (an oracle or simulator arm); refuses one without any."""
    records = dataset.filter(source=PATIENT_SOURCES)
    if not records:
        raise DatasetError(f"{dataset.root} holds no real or simulated studies to add to the training set")
    return records


class StudyPool:
    """Extra training studies by condition, from which each run draws nested subsets (one per ratio).

    ``records`` picks a dataset's studies: its synthetic ones by default, :func:`patient_records` for
    the extra real studies of an oracle arm.
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        records: Callable[[Dataset], list[Record]] = synthetic_records,
        kind: str = "synthetic",
    ):
        self.datasets = list(datasets)
        self.kind = kind
        self.by_label: dict[str, list[tuple[int, Record]]] = {label: [] for label in LABELS}
        for d, dataset in enumerate(self.datasets):
            for record in records(dataset):
                self.by_label[record.label].append((d, record))

    def records(self, dataset_index: int) -> list[Record]:
        """The pooled studies of ``self.datasets[dataset_index]``."""
        return [r for items in self.by_label.values() for d, r in items if d == dataset_index]

    def available(self) -> dict[str, int]:
        return {label: len(items) for label, items in self.by_label.items()}

    def all_records(self) -> list[Record]:
        return [r for items in self.by_label.values() for _, r in items]

    def check(self, counts: Mapping[str, int], what: str) -> None:
        short = {
            label: (n, len(self.by_label[label]))
            for label, n in counts.items()
            if n > len(self.by_label[label])
        }
        if short:
            detail = "; ".join(f"{label}: needs {need}, has {have}" for label, (need, have) in short.items())
            raise DatasetError(
                f"too few {self.kind} studies for {what} ({detail}); add more, lower the ratio"
                + (
                    ", or pass a generator folder to sample them on the fly"
                    if self.kind == "synthetic"
                    else ""
                )
            )

    def select(self, counts: Mapping[str, int], *, seed: int | Sequence[int]) -> list[tuple[int, Record]]:
        """``counts[label]`` studies per condition, drawn by a permutation that depends only on ``seed``.

        The same seed gives the same order, so a smaller count selects a subset of a larger one.
        """
        self.check(counts, "this selection")
        key = [seed] if isinstance(seed, int) else list(seed)
        chosen = []
        for k, label in enumerate(LABELS):
            items = self.by_label[label]
            order = np.random.default_rng([*key, k]).permutation(len(items))
            chosen += [items[i] for i in order[: counts.get(label, 0)]]
        return chosen
