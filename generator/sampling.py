"""Sampling into a dataset: one seed per study, resumable, written as studies are generated.

A synthetic study is fully described by (model hash, condition, grade, seed, steps, guidance), all
recorded in its manifest row, so any single study can be regenerated exactly with
:func:`generate_studies`. Study ids are derived from the condition and seed, so a rerun with the
same settings skips what is already written and never duplicates a study.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import PartialState
from tqdm.auto import tqdm

from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.generator.conditions import condition_key, split_key
from synthscan.generator.config import GUIDED_EVERY_STEP
from synthscan.generator.storage import load_pipeline
from synthscan.labels import PATIENT_SOURCES

log = logging.getLogger(__name__)

SAMPLE_COLUMNS = ("model_sha256", "model_name", "steps", "guidance", "burden", "redraws")
"""Manifest columns of a sampled study, beside the core ones (from its metadata, where it has them)."""

__all__ = ["SampleRequest", "generate_studies", "load_pipeline", "sample_to_dataset", "write_samples"]


@dataclass(frozen=True)
class SampleRequest:
    """One study to generate."""

    study_id: str
    label: str
    grade: int | None
    seed: int
    tracer: str | None = None  # None: drawn in the training proportions (factor models)
    burden: str | None = None


def request_id(label: str, grade: int | None, seed: int, **factors: str | None) -> str:
    """Study id of a request: condition, any requested factors (``>10`` spelt ``gt10``) and seed."""
    named = "".join(f"-{v.replace('>', 'gt')}" for v in factors.values() if v is not None)
    return f"syn-{condition_key(label, grade)}{named}-s{seed:010d}"


def sampler_settings(pipeline, steps: int | None, guidance: float | None) -> dict[str, Any]:
    """The settings that, with a seed and condition, determine a study (a dataset's provenance).

    ``guidance`` maps each label to its scale (``burden_guidance`` and ``grade_guidance`` the burdens
    and Perugini grades that have their own); a study's own row records the scale it was drawn with.
    """
    settings = {
        "model_sha256": getattr(pipeline, "sha256", ""),
        "model_name": Path(str(getattr(pipeline, "path", "model"))).name,
        "steps": int(steps or pipeline.config.default_steps),
        "guidance": {label: pipeline.guidance_for(label, guidance) for label in pipeline.labels},
        "sampler": pipeline.sampler,
    }
    by_burden = pipeline.config.get("burden_guidance") or {}
    if by_burden and guidance is None:  # models without burden scales: the settings as before
        settings["burden_guidance"] = dict(by_burden)
    by_grade = pipeline.config.get("grade_guidance") or {}
    if by_grade and guidance is None:  # models without grade scales: the settings as before
        settings["grade_guidance"] = dict(by_grade)
    interval = list(pipeline.config.guidance_interval)
    if tuple(interval) != GUIDED_EVERY_STEP:  # every step guided: the settings as before
        settings["guidance_interval"] = interval
    by_label = pipeline.config.get("label_guidance_interval") or {}
    if by_label:  # models without per-label intervals: the settings as before
        settings["label_guidance_interval"] = {k: list(v) for k, v in by_label.items()}
    final_sigma = pipeline.config.get("label_final_sigma") or {}
    if final_sigma:  # models without it: the settings as before
        settings["label_final_sigma"] = dict(final_sigma)
    by_burden_end = pipeline.config.get("burden_final_sigma") or {}
    if by_burden_end:  # models without it: the settings as before
        settings["burden_final_sigma"] = dict(by_burden_end)
    if getattr(pipeline, "precision", "fp32") != "fp32":  # fp32 datasets keep the settings they had
        settings["precision"] = pipeline.precision
    return settings


def generate_studies(
    pipeline, requests: Sequence[SampleRequest], *, steps: int | None = None, guidance: float | None = None
) -> list[tuple[np.ndarray, dict[str, Any]]]:
    """Counts (2, H, W) and ground-truth metadata of each request, generated in one batch."""
    settings = sampler_settings(pipeline, steps, guidance)
    output = pipeline(
        [r.label for r in requests],
        [r.grade for r in requests],
        generator=[torch.Generator().manual_seed(r.seed) for r in requests],
        num_inference_steps=steps,
        guidance_scale=guidance,
        tracers=[r.tracer for r in requests],
        burdens=[r.burden for r in requests],
    )
    factors = output.factors or [{} for _ in requests]
    results = []
    redraws = output.redraws or [None] * len(requests)  # None: a model without the body check
    for request, counts, key, total, study_factors, study_redraws in zip(
        requests, output.counts, output.conditions, output.total_counts, factors, redraws, strict=True
    ):
        label, grade = split_key(key)
        meta = {
            "seed": request.seed,
            "condition": key,
            "label": label,
            "perugini_grade": grade,
            **study_factors,
            "total_counts_target": total,
            "counts_per_view": [int(v) for v in counts.reshape(2, -1).sum(axis=1)],
            "redraws": study_redraws,  # times its body was misplaced and drawn again (same seed)
            **settings,
            "guidance": pipeline.guidance_for(label, guidance, study_factors.get("burden"), grade),
        }
        results.append((counts, meta))
    return results


def write_samples(
    pipeline,
    target: Dataset,
    requests: Iterable[SampleRequest],
    *,
    batch_size: int = 16,
    steps: int | None = None,
    guidance: float | None = None,
    progress: bool = True,
    on_written: Callable[[Record, np.ndarray], None] | None = None,
) -> int:
    """Generate and append every request not yet in ``target``; returns how many were written.

    The manifest is persisted every few seconds and on exit (also on Ctrl-C), and study files are
    written atomically, so an interrupted run leaves a consistent dataset that a rerun completes.
    Requests already in ``target`` are verified, not trusted: one whose file is missing or does not
    match its recorded size and checksum is generated again.

    Under ``accelerate launch`` the pending requests are split between the processes in contiguous
    blocks; each process writes its studies' files and a journal of their rows, and the main process
    merges the journals into the manifest in request order. A study depends only on its seed, so the
    dataset is the one a single process writes; a journal left by a killed process is merged (its
    verified rows kept) when the run is resumed. Returns the studies written by all processes.
    """
    if tuple(target.info.matrix) != tuple(pipeline.matrix):
        raise DatasetError(
            f"the model generates {tuple(pipeline.matrix)} studies but {target.root} is {target.info.matrix}"
        )
    requests = list(requests)
    state = PartialState()
    order = [r.study_id for r in requests]
    with state.main_process_first():
        if state.is_main_process:
            target.merge_journals(order)  # rows of processes of an interrupted run
        else:
            target.reload()  # the manifest as the main process left it
    refuse_other_models(target, pipeline)
    present = [target.record(r.study_id) for r in requests if r.study_id in target]
    damaged = target.broken(present)
    pending = [r for r in requests if r.study_id not in target or r.study_id in damaged]
    if present and state.is_main_process:
        log.info(
            "resuming %s: %d of %d studies already there%s",
            target.root,
            len(present) - len(damaged),
            len(requests),
            f"; regenerating {len(damaged)} whose files are damaged" if damaged else "",
        )
        for study_id, problem in damaged.items():
            log.warning("regenerating %s: %s", study_id, problem)
    with state.main_process_first():
        if state.is_main_process and getattr(pipeline, "privacy", None):
            statements = target.info.provenance.get("privacy_statements", {})
            if pipeline.sha256 not in statements:
                statements = {**statements, pipeline.sha256: pipeline.privacy}
                target.update_provenance(privacy_statements=statements)
        if hasattr(on_written, "prepare"):
            on_written.prepare()  # shared state (e.g. DICOM identity) drawn once, by the main process
    journal = f"process-{state.process_index}" if state.num_processes > 1 else None
    with (
        state.split_between_processes(pending) as mine,
        target.writer(journal=journal) as writer,
        # smoothing=0: the ETA uses the mean rate of the whole run, not the last batch's jump
        tqdm(
            total=len(mine),
            desc="sample",
            unit="study",
            disable=not (progress and state.is_main_process),
            smoothing=0,
        ) as bar,
    ):
        for start in range(0, len(mine), batch_size):
            batch = mine[start : start + batch_size]
            for request, (counts, meta) in zip(
                batch, generate_studies(pipeline, batch, steps=steps, guidance=guidance), strict=True
            ):
                record = writer.add(
                    counts,
                    study_id=request.study_id,
                    patient_id=request.study_id,
                    label=meta["label"],
                    perugini_grade=meta["perugini_grade"],
                    source="synthetic",
                    site="synthetic",
                    tracer=meta.get("tracer", ""),  # empty: the model is not conditioned on a tracer
                    seed=request.seed,
                    meta=meta,
                    extra={k: meta[k] for k in SAMPLE_COLUMNS if k in meta},
                    replace=request.study_id in damaged,
                )
                if on_written is not None:
                    on_written(record, counts)
            bar.update(len(batch))
    state.wait_for_everyone()
    if state.is_main_process:
        target.merge_journals(order)
    state.wait_for_everyone()
    target.reload()
    return len(pending)


def refuse_other_models(target: Dataset, pipeline) -> None:
    """Refuse to add this model's studies to a dataset holding synthetic studies of another model."""
    sha256 = getattr(pipeline, "sha256", "")
    others = {r.get("model_sha256") for r in target.filter(source="synthetic")} - {sha256, ""}
    if others:
        raise DatasetError(
            f"{target.root} holds synthetic studies of another model (sha256 "
            f"{', '.join(sorted(h[:12] for h in others))}); this one is {sha256[:12]}. "
            "Write its studies to a new folder, so that no dataset mixes models"
        )


def refuse_mixing(target: Dataset, condition: str, grade: int | None, add_condition: bool = False) -> None:
    """Refuse to sample into a dataset of real/simulated studies, or of another condition unless
    ``add_condition``."""
    patients = target.filter(source=PATIENT_SOURCES)
    if patients:
        raise DatasetError(
            f"{target.root} holds {len(patients)} real or simulated studies; sampled studies go to their own "
            f"folder. Choose a new --out, or run `synthscan augment {target.root}` to add synthetic studies "
            "to this dataset on purpose"
        )
    others = sorted(
        {
            condition_key(r.label, r.perugini_grade if r.label == "amyloidosis" else None)
            for r in target.filter(source="synthetic")
            if r.label != condition or (grade is not None and r.perugini_grade != grade)
        }
    )
    if others and not add_condition:
        wanted = condition_key(condition, grade)
        raise DatasetError(
            f"{target.root} holds synthetic {', '.join(others)} studies, not {wanted}; "
            "choose a new --out per condition, or pass --add-condition to mix conditions in one folder"
        )


def sample_to_dataset(
    pipeline,
    out: str | Path,
    *,
    condition: str,
    n: int,
    grade: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
    steps: int | None = None,
    guidance: float | None = None,
    progress: bool = True,
    on_written: Callable[[Record, np.ndarray], None] | None = None,
    add_condition: bool = False,
    tracer: str | Sequence[str | None] | None = None,
    burden: str | None = None,
) -> Dataset:
    """Generate ``n`` studies of one condition into the dataset ``out`` (created or resumed).

    Study ``i`` uses seed ``seed + i`` and ``tracer`` (a list: ``tracer[i]``; ``None``: drawn).
    Resuming with other sampler settings than the ones the dataset was started with is refused, so
    one dataset never mixes settings silently; so is a dataset of real or simulated studies, or of
    another condition unless ``add_condition``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    tracers = [tracer] * n if tracer is None or isinstance(tracer, str) else list(tracer)
    if len(tracers) != n:
        raise ValueError(f"{len(tracers)} tracers given for {n} studies")
    for asked in dict.fromkeys(tracers):
        pipeline.check_factors(condition, {"tracer": asked, "burden": burden})
    settings = sampler_settings(pipeline, steps, guidance)
    with PartialState().main_process_first():  # one process creates the folder, the others open it
        target = Dataset.create(
            out,
            matrix=pipeline.matrix,
            pixel_spacing_mm=pipeline.config.pixel_spacing_mm,
            provenance={"generator": settings},
            exist_ok=True,
        )
        refuse_mixing(target, condition, grade, add_condition)
        recorded = target.info.provenance.get("generator")
        if recorded is not None and recorded != settings:
            raise DatasetError(
                f"{target.root} was sampled with {recorded}; now asked for {settings}. "
                "Use the same model, --steps and --guidance to resume, or a new --out folder"
            )
        if recorded is None:
            target.update_provenance(generator=settings)
    requests = [
        SampleRequest(
            request_id(condition, grade, seed + i, tracer=tracers[i], burden=burden),
            condition,
            grade,
            seed + i,
            tracers[i],
            burden,
        )
        for i in range(n)
    ]
    write_samples(
        pipeline,
        target,
        requests,
        batch_size=batch_size,
        steps=steps,
        guidance=guidance,
        progress=progress,
        on_written=on_written,
    )
    return target
