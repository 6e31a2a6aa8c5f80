"""Add synthetic studies to a dataset where it is short: plan per condition, then sample idempotently.

Every planned study has a fixed id (``syn-<label>[-g<grade>]-<index>``) and a seed derived only
from (base seed, label, grade, index), so a rerun skips studies already in the manifest and an
interrupted run regenerates exactly the studies it had not persisted yet.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthscan.dataset import Dataset, DatasetError
from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS

log = logging.getLogger(__name__)

MODES = ("balance", "ratio", "per-class")


@dataclass(frozen=True)
class PlannedStudy:
    study_id: str
    label: str
    perugini_grade: int | None
    index: int
    seed: int


@dataclass
class AugmentPlan:
    """What augmentation adds: per condition, the real count, the target and the studies to create."""

    mode: str
    real: dict[str, int]
    target_synthetic: dict[str, int]
    studies: list[PlannedStudy] = field(default_factory=list)
    already_present: int = 0

    def table(self) -> str:
        """Plain-text plan for ``--dry-run``."""
        added = Counter(s.label for s in self.studies)
        lines = [f"{'condition':<12} {'real':>6} {'synthetic':>10} {'to add':>7}"]
        for label in self.target_synthetic:
            real, target = self.real.get(label, 0), self.target_synthetic[label]
            lines.append(f"{label:<12} {real:>6} {target:>10} {added[label]:>7}")
        lines.append(f"{len(self.studies)} studies to add ({self.already_present} already present).")
        return "\n".join(lines)


def study_seed(base_seed: int, label: str, grade: int | None, index: int) -> int:
    """Deterministic 31-bit seed of one planned study."""
    key = f"{base_seed}:{label}:{grade}:{index}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") & 0x7FFFFFFF


def _grade_split(n: int, grade_counts: Mapping[int, int]) -> dict[int, int]:
    """Split ``n`` amyloidosis studies over grades like the real grades (evenly if none are known)."""
    weights = {g: grade_counts.get(g, 0) for g in AMYLOIDOSIS_GRADES}
    if not sum(weights.values()):
        weights = dict.fromkeys(AMYLOIDOSIS_GRADES, 1)
    total = sum(weights.values())
    share = {g: n * w // total for g, w in weights.items()}
    remainders = sorted(weights, key=lambda g: (n * weights[g] % total, -g), reverse=True)
    for g in remainders[: n - sum(share.values())]:
        share[g] += 1
    return share


def plan_augmentation(
    dataset: Dataset,
    *,
    mode: str = "balance",
    ratio: float = 1.0,
    per_class: int = 0,
    seed: int = 0,
    supported: tuple[str, ...] = tuple(LABELS),
    existing: Dataset | None = None,
) -> AugmentPlan:
    """Plan synthetic studies per condition from the dataset's real label and grade counts.

    ``balance`` brings every condition up to the largest real class; ``ratio`` adds ``ratio`` x
    the real count; ``per-class`` adds a fixed number.  Studies already in ``existing``
    (default: the dataset itself) are not planned again.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    real_records = dataset.filter(source="real")
    if not real_records:
        raise DatasetError(f"{dataset.root} holds no real studies to augment")
    real = Counter(r.label for r in real_records)
    grades = Counter(r.perugini_grade for r in real_records if r.label == "amyloidosis")
    conditions = list(LABELS)
    if mode == "balance":
        largest = max(real.values())
        target = {label: max(largest - real[label], 0) for label in conditions}
    elif mode == "ratio":
        target = {label: round(ratio * real[label]) for label in conditions}
    else:
        target = dict.fromkeys(conditions, per_class)
    missing = [label for label, n in target.items() if n and label not in supported]
    if missing:
        raise DatasetError(
            f"conditions {missing} need synthetic studies but the model does not support them "
            f"(supported: {list(supported)}); use --ratio or --per-class to skip them"
        )
    present = existing if existing is not None else dataset
    plan = AugmentPlan(mode=mode, real=dict(real), target_synthetic=target)
    for label in conditions:
        split = _grade_split(target[label], grades) if label == "amyloidosis" else {None: target[label]}
        for grade, n in split.items():
            for index in range(n):
                suffix = f"-g{grade}" if grade is not None else ""
                study_id = f"syn-{label}{suffix}-{index:05d}"
                if study_id in present:
                    plan.already_present += 1
                    continue
                plan.studies.append(
                    PlannedStudy(study_id, label, grade, index, study_seed(seed, label, grade, index))
                )
    return plan


def model_sha256(model_dir: str | Path) -> str:
    """Hash of every file of a model folder (names and bytes), recorded per synthetic study."""
    digest = hashlib.sha256()
    root = Path(model_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


SampleFn = Callable[[PlannedStudy], tuple[Any, dict[str, Any]]]


def execute_plan(
    plan: AugmentPlan,
    target: Dataset,
    sample: SampleFn,
    *,
    model_hash: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Sample and write each planned study not yet in ``target``; returns how many were added.

    ``sample(study)`` returns ``(counts (2,H,W), meta)`` for one planned study from its seed.
    The manifest is persisted atomically every few seconds and on exit (also on interruption).
    """
    added = 0
    with target.writer() as writer:
        for study in plan.studies:
            if study.study_id in target:
                continue
            counts, meta = sample(study)
            writer.add(
                counts,
                study_id=study.study_id,
                patient_id=study.study_id,
                label=study.label,
                perugini_grade=study.perugini_grade,
                source="synthetic",
                site="synthetic",
                tracer=str(meta.get("tracer", "")),
                seed=study.seed,
                meta=meta,
                extra={"model_sha256": model_hash},
            )
            added += 1
            if progress:
                progress(1)
    return added


def pipeline_sampler(pipeline: Any, *, steps: int | None, guidance: float | None) -> SampleFn:
    """A :data:`SampleFn` drawing one study per seed through the generator's ``sample_to_dataset``."""
    from synthscan.generator.sampling import sample_to_dataset

    options = {k: v for k, v in {"steps": steps, "guidance": guidance}.items() if v is not None}

    def sample(study: PlannedStudy) -> tuple[Any, dict[str, Any]]:
        with tempfile.TemporaryDirectory() as tmp:
            out = sample_to_dataset(
                pipeline,
                Path(tmp) / "one",
                condition=study.label,
                grade=study.perugini_grade,
                n=1,
                seed=study.seed,
                batch_size=1,
                **options,
            )
            result = next(out.iter_studies())
        return result.counts, result.meta

    return sample


def check_model_fits(dataset: Dataset, pipeline: Any) -> tuple[str, ...]:
    """Refuse a model whose matrix or views differ from the dataset; return its supported conditions."""
    matrix = getattr(pipeline, "matrix", None)
    if matrix is not None and tuple(matrix) != tuple(dataset.info.matrix):
        raise DatasetError(
            f"the model generates {tuple(matrix)} studies but {dataset.root} is {dataset.info.matrix}; "
            "use a model trained at the dataset's matrix, or resample the dataset"
        )
    views = getattr(pipeline, "views", None)
    if views is not None and tuple(views) != ("anterior", "posterior"):
        raise DatasetError(f"the model generates views {tuple(views)}; datasets hold anterior and posterior")
    return tuple(getattr(pipeline, "conditions", None) or LABELS)
