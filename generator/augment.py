"""Add synthetic studies to a dataset where it is short: plan per condition, then sample idempotently.

Every planned study has a fixed id (``syn-<label>[-g<grade>]-<index>``) and a seed derived only
from (base seed, label, grade, index), so a rerun skips studies already in the manifest and an
interrupted run regenerates exactly the studies it had not persisted yet.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthscan.apportion import apportion_counts
from synthscan.dataset import INFO, Dataset, DatasetError, same_pixel_size
from synthscan.generator.conditions import condition_key, tracer_sequence
from synthscan.generator.sampling import SampleRequest, write_samples
from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS, PATIENT_SOURCES, TRACERS

log = logging.getLogger(__name__)

MODES = ("balance", "ratio", "per-class")


@dataclass
class AugmentPlan:
    """What augmentation adds: per condition, the dataset's own (real or simulated) count, the target
    and the studies to create."""

    mode: str
    real: dict[str, int]
    target_synthetic: dict[str, int]
    studies: list[SampleRequest] = field(default_factory=list)
    already_present: int = 0

    def table(self) -> str:
        """Plain-text plan for ``--dry-run``."""
        added = Counter(s.label for s in self.studies)
        lines = [f"{'condition':<12} {'studies':>7} {'synthetic':>10} {'to add':>7}"]  # real or simulated
        for label in self.target_synthetic:
            real, target = self.real.get(label, 0), self.target_synthetic[label]
            lines.append(f"{label:<12} {real:>7} {target:>10} {added[label]:>7}")
        tracers = Counter(s.tracer for s in self.studies if s.tracer)
        if tracers:
            mix = ", ".join(f"{t} {n}" for t, n in tracers.items())
            lines.append(f"tracers of the studies to add (each condition's mix in the dataset): {mix}")
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
    return apportion_counts(n, weights)


def plan_augmentation(
    dataset: Dataset,
    *,
    mode: str = "balance",
    ratio: float = 1.0,
    per_class: int = 0,
    seed: int = 0,
    supported: tuple[str, ...] = tuple(LABELS),
    existing: Dataset | None = None,
    tracers: tuple[str, ...] = (),
) -> AugmentPlan:
    """Plan synthetic studies per condition from the dataset's real label and grade counts.

    ``balance`` brings every condition up to the largest real class; ``ratio`` adds ``ratio`` x
    the real count; ``per-class`` adds a fixed number.  Studies already in ``existing``
    (default: the dataset itself) are not planned again. With ``tracers`` (those a model with
    tracer conditions knows), each condition's studies follow the dataset's tracer mix for that
    condition (all its real studies' mix where the condition has none of its own).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    real_records = dataset.filter(source=PATIENT_SOURCES)
    if not real_records:
        raise DatasetError(f"{dataset.root} holds no real or simulated studies to augment")
    real = Counter(r.label for r in real_records)
    grades = Counter(r.perugini_grade for r in real_records if r.label == "amyloidosis")
    conditions = list(LABELS)
    if mode == "balance":
        largest = max(real.values())
        target = {label: max(largest - real[label], 0) for label in conditions}
    elif mode == "ratio":
        target = {label: math.floor(ratio * real[label] + 0.5) for label in conditions}  # halves up
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
            sequence = tracer_sequence(n, label, real_records, tracers)  # one per condition key
            for index, tracer in enumerate(sequence):
                study_id = f"syn-{condition_key(label, grade)}-{index:05d}"
                if study_id in present:
                    plan.already_present += 1
                    continue
                plan.studies.append(
                    SampleRequest(study_id, label, grade, study_seed(seed, label, grade, index), tracer)
                )
    return plan


@dataclass
class Augmentation:
    """An augmentation checked and planned, nothing written yet: :func:`prepare_augmentation` makes
    it, :func:`run_augmentation` carries it out."""

    dataset: Dataset
    plan: AugmentPlan
    pipeline: Any
    model: str | None
    out: Path | None
    finetune_steps: int | None
    seed: int
    device: str | None
    precision: str


def prepare_augmentation(
    dataset: str | Path,
    model: str | None = None,
    *,
    mode: str = "balance",
    ratio: float = 0.0,
    per_class: int = 0,
    out: str | Path | None = None,
    finetune_steps: int | None = None,
    seed: int = 0,
    device: str | None = None,
    precision: str = "fp32",
) -> Augmentation:
    """Every check the run makes (model, grid, conditions, target folder) and the plan, writing nothing.

    ``out`` (default: ``dataset`` itself) receives the studies; ``finetune_steps`` first fine-tunes the
    model on the real studies of the dataset's training patients (checked against the base model here;
    in one process only: the fine-tuned model is cached in ``DATASET/models`` for later launches).
    """
    from accelerate import PartialState

    from synthscan.generator.storage import load_pipeline, model_sha256

    if finetune_steps and PartialState().num_processes > 1:
        raise ValueError(
            "--finetune runs in one process: fine-tune once without accelerate launch (the model is "
            "cached in DATASET/models), then launch the same command on several processes"
        )
    source = Dataset.open(dataset)
    pipeline = load_pipeline(model, device=device, precision=precision)
    supported = check_model_fits(source, pipeline)
    out = Path(out) if out else None
    existing = Dataset.open(out) if out and (out / INFO).is_file() else None
    target = existing if out else source
    tuned = finetuned_dir(source, pipeline.sha256, finetune_steps, seed) if finetune_steps else None
    writer = pipeline.sha256 if tuned is None else model_sha256(tuned) if tuned.is_dir() else None
    check_target(source, target, writer)
    plan = plan_augmentation(
        source,
        mode=mode,
        ratio=ratio,
        per_class=per_class,
        seed=seed,
        existing=target,
        supported=supported,
        tracers=model_tracers(pipeline),
    )
    return Augmentation(source, plan, pipeline, model, out, finetune_steps, seed, device, precision)


def run_augmentation(
    job: Augmentation,
    *,
    steps: int | None = None,
    guidance: float | None = None,
    progress: bool = True,
) -> int:
    """Fine-tune if asked, sample the planned studies into the target (``out``, else the dataset) and
    record the provenance; returns how many studies were added (nothing is done for an empty plan).

    Under ``accelerate launch`` the studies are split between the processes, which all planned against
    the folder as it was.
    """
    from accelerate import PartialState

    from synthscan.generator.storage import load_pipeline

    if not job.plan.studies:
        return 0
    state = PartialState()
    pipeline = job.pipeline
    if job.finetune_steps:
        tuned = finetune_for_augmentation(
            job.dataset, job.model, pipeline.sha256, job.finetune_steps, job.seed
        )
        pipeline = load_pipeline(tuned, device=job.device, precision=job.precision)
    target = job.dataset
    state.wait_for_everyone()  # every process planned against the folder as it was
    if job.out:
        grid = {"matrix": job.dataset.info.matrix, "pixel_spacing_mm": job.dataset.info.pixel_spacing_mm}
        with state.main_process_first():
            target = Dataset.create(job.out, **grid, exist_ok=True)
    added = execute_plan(job.plan, target, pipeline, steps=steps, guidance=guidance, progress=progress)
    if state.is_main_process:
        target.update_provenance(
            augment={
                "mode": job.plan.mode,
                "seed": job.seed,
                "model": str(pipeline.path),
                "model_sha256": pipeline.sha256,
                "source_dataset": str(job.dataset.root),
            },
            train_dataset=str(job.dataset.root),
        )
    return added


def finetuned_dir(dataset: Dataset, base_sha256: str, steps: int, seed: int) -> Path:
    """One cache folder per base model, steps and seed: another base model is never reused by mistake."""
    return dataset.root / "models" / f"finetuned-{base_sha256[:12]}-{steps}-seed{seed}"


def finetune_for_augmentation(
    dataset: Dataset, model: str | None, base_sha256: str, steps: int, seed: int
) -> Path:
    """Fine-tune the generator on the real studies of the dataset's training patients (the classifier's
    default split, so the generator never sees its validation and test patients) into
    ``DATASET/models/finetuned-...``; reused when already there."""
    from synthscan.classifier.config import ClassifierConfig
    from synthscan.classifier.train import real_split_records
    from synthscan.config import builtin_config, load_config
    from synthscan.generator.train import finetune

    out = finetuned_dir(dataset, base_sha256, steps, seed)
    if (out / "model_index.json").is_file():
        log.info("reusing fine-tuned model %s", out)
        return out
    split = load_config(ClassifierConfig, builtin_config("classifier", "default"))
    train = real_split_records(dataset, split)["train"]
    finetune(model, dataset, out, steps=steps, seed=seed, patients={r.patient_id for r in train})
    dataset.update_provenance(finetuned_model=str(out))
    return out


def execute_plan(
    plan: AugmentPlan,
    target: Dataset,
    pipeline: Any,
    *,
    batch_size: int = 16,
    steps: int | None = None,
    guidance: float | None = None,
    progress: bool = True,
) -> int:
    """Sample and write each planned study not yet in ``target``; returns how many were added.

    The manifest is persisted atomically every few seconds and on exit (also on interruption), and a
    study depends only on its seed, so a resumed run writes exactly what an uninterrupted one would.
    """
    return write_samples(
        pipeline,
        target,
        plan.studies,
        batch_size=batch_size,
        steps=steps,
        guidance=guidance,
        progress=progress,
    )


def check_target(dataset: Dataset, target: Dataset | None, model_sha256: str | None) -> None:
    """Refuse to write where the result would mix provenances.

    ``target`` is ``dataset`` itself, or the existing ``--out`` dataset (``None``: a new one). It may
    hold synthetic studies only of the model that will write (``model_sha256``; ``None``: a model not
    trained yet); an ``--out`` dataset may hold no real or simulated studies and must have been
    augmented from this ``dataset``.
    """
    if target is None:
        return
    if target.root != dataset.root:
        patients = target.filter(source=PATIENT_SOURCES)
        if patients:
            raise DatasetError(
                f"--out {target.root} holds {len(patients)} real or simulated studies; augment writes into "
                f"{dataset.root} itself or into a folder of its own"
            )
        source = target.info.provenance.get("augment", {}).get("source_dataset")
        if source and Path(source).resolve() != dataset.root.resolve():
            raise DatasetError(f"--out {target.root} augments {source}, not {dataset.root}; use a new --out")
    others = {r.get("model_sha256") for r in target.filter(source="synthetic")} - {model_sha256}
    if others:
        raise DatasetError(
            f"{target.root} already holds synthetic studies of another model (sha256 "
            f"{', '.join(sorted(str(h)[:12] for h in others))}); adding this model's would mix them. "
            "Use --out NEW_FOLDER, or the model that wrote them"
        )


def model_tracers(pipeline: Any) -> tuple[str, ...]:
    """Tracers a model with tracer conditions generates (none for a model without them)."""
    return tuple(t for t in getattr(pipeline, "factors", {}).get("tracer", []) if t in TRACERS)


def check_model_fits(dataset: Dataset, pipeline: Any) -> tuple[str, ...]:
    """Refuse a model whose grid (matrix, pixel size) differs from the dataset's; return its labels."""
    if tuple(pipeline.matrix) != tuple(dataset.info.matrix):
        raise DatasetError(
            f"the model generates {tuple(pipeline.matrix)} studies but {dataset.root} is "
            f"{dataset.info.matrix}; use a model trained at the dataset's matrix, or resample the dataset"
        )
    spacing = float(pipeline.config.pixel_spacing_mm)
    if not same_pixel_size(spacing, dataset.info.pixel_spacing_mm):
        raise DatasetError(
            f"the model generates studies of {spacing} mm pixels but {dataset.root} holds "
            f"{dataset.info.pixel_spacing_mm} mm ones; use a model trained at the dataset's pixel size, "
            f"or import the studies again with --pixel-spacing-mm {spacing}"
        )
    return tuple(pipeline.labels)
