"""Train the two-view classifier: patient-level splits, class-balanced sampling, early stopping.

The real studies are split by patient once (``splits.json`` of the dataset, reused by every run and
every arm of an experiment); synthetic studies only ever join the training part. Each optimizer
step draws a label-balanced batch with replacement, so the step budget (``train.max_steps``), not the
training-set size, fixes the cost of a run. The network is validated every ``train.eval_every`` steps
on the real validation patients; the best validation state (mean AUC over the tasks, ties broken by
the lower loss) is kept and its Youden thresholds are stored with the model.

Everything random (initial weights, sampler, dropout, augmentations) derives from ``train.seed``, so
a run is reproducible on the same machine and thread count. An interrupted run leaves no model
(the model folder's ``config.json`` is written last) and is simply trained again from step 0.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from synthscan.atomic import atomic_write_text
from synthscan.classifier.config import TASKS, ClassifierConfig
from synthscan.classifier.data import (
    TASK_STRATA,
    StudyArrays,
    TrainingSet,
    balanced_sampler,
    build_transforms,
    evaluable_tasks,
    load_arrays,
    plain_tensors,
    targets_for,
    task_stratum,
    torch_threads,
)
from synthscan.classifier.model import MODEL_CONFIG, ModelInfo, build_network, is_model_dir, save_model
from synthscan.classifier.predict import network_outputs, resolve_device
from synthscan.classifier.synthetic import synthetic_records
from synthscan.dataset import FILE_SHA256, Dataset, DatasetError, Record, load_or_create_splits, split_records
from synthscan.evaluation.stats import youden_threshold
from synthscan.labels import PATIENT_SOURCES
from synthscan.runs import RunDir

log = logging.getLogger(__name__)

LOG_EVERY = 20  # steps between training-loss lines in metrics.jsonl
MIN_VALIDATION_POSITIVES = 5
"""Positives (and negatives) of each task the validation split must hold before a study may choose a
threshold or a synthetic ratio on it (# assumption: with fewer, one case moves a task's validation AUC
by 0.2 or more, and its Youden threshold rests on a handful of scores)."""


@dataclass
class TrainResult:
    """Where the model went and how training went."""

    path: Path
    best_step: int
    steps: int  # optimizer steps actually run (fewer than max_steps after an early stop)
    validation: dict[str, Any]  # per-task AUC and loss at the best step
    thresholds: dict[str, float]
    seconds: float
    images_per_second: float


def real_split_records(dataset: Dataset, config: ClassifierConfig) -> dict[str, list[Record]]:
    """The dataset's real (or simulated) records per split, from its saved patient-level splits."""
    patients = load_or_create_splits(
        dataset,
        seed=config.train.split_seed,
        fractions=config.split_fractions,
        sources=PATIENT_SOURCES,
        stratum=task_stratum,
        stratified_by=TASK_STRATA,
    )
    return {
        name: [r for r in split_records(dataset, patients, name) if r.source in PATIENT_SOURCES]
        for name in patients
    }


def check_trainable(train: Sequence[Record], val: Sequence[Record], where: str) -> None:
    """Refuse splits that cannot train or validate a classifier, saying what is missing."""
    if not train or not val:
        raise DatasetError(
            f"{where}: the patient-level split has {len(train)} training and {len(val)} validation studies; "
            "both need studies: add patients or change train.split_fractions"
        )
    learnable = evaluable_tasks(train)
    if not learnable:
        raise DatasetError(
            f"{where}: no task has both positive and negative training studies "
            f"(labels: {sorted({r.label for r in train})}); a classifier needs both"
        )
    for task in TASKS:
        if task not in learnable:
            log.warning(
                "%s: the training split has one class only for %s; that output cannot learn", where, task
            )


def check_validation(val: Sequence[Record], where: str, minimum: int = MIN_VALIDATION_POSITIVES) -> None:
    """Refuse a validation split with fewer than ``minimum`` positives or negatives of any task.

    Thresholds, early stopping and the study's ratio are chosen per task on validation; a task without
    positives there would be chosen by the other task's numbers or by a tie-break.
    """
    targets = np.stack([targets_for(r) for r in val]) if val else np.zeros((0, len(TASKS)))
    short = []
    for k, task in enumerate(TASKS):
        positives = int(targets[:, k].sum())
        if min(positives, len(val) - positives) < minimum:
            short.append(f"{task} {positives} positive / {len(val) - positives} negative")
    if short:
        raise DatasetError(
            f"{where}: the validation split ({len(val)} studies) holds {'; '.join(short)}; each task "
            f"needs at least {minimum} of both to choose its threshold and ratio. Add patients, raise the "
            "validation share (train.split_fractions), or, if splits.json predates stratification by task "
            "targets, delete it so the split is made again"
        )


def validation_metrics(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    """Per-task AUC (None without both classes) and binary cross-entropy; their means as the score."""
    from sklearn.metrics import roc_auc_score

    metrics: dict[str, Any] = {}
    aucs, losses = [], []
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    for k, task in enumerate(TASKS):
        y = targets[:, k]
        loss = float(-np.mean(y * np.log(clipped[:, k]) + (1 - y) * np.log(1 - clipped[:, k])))
        auc = float(roc_auc_score(y, probabilities[:, k])) if 0 < y.sum() < len(y) else None
        metrics[task] = {"auc": auc, "loss": loss}
        losses.append(loss)
        if auc is not None:
            aucs.append(auc)
    metrics["score"] = float(np.mean(aucs)) if aucs else None
    metrics["loss"] = float(np.mean(losses))
    return metrics


def _selection_key(metrics: dict[str, Any]) -> tuple[float, float]:
    score = metrics["score"]
    return (-math.inf if score is None else score, -metrics["loss"])


def _thresholds(targets: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    thresholds = {}
    for k, task in enumerate(TASKS):
        y = targets[:, k]
        if 0 < y.sum() < len(y):
            thresholds[task] = youden_threshold(y, probabilities[:, k])
        else:
            log.warning("validation has one class only for %s; its threshold falls back to 0.5", task)
            thresholds[task] = 0.5
    return thresholds


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _probabilities(
    net: torch.nn.Module, arrays: StudyArrays, config: ClassifierConfig, device: torch.device
) -> np.ndarray:
    with torch_threads(config.train.threads):
        return network_outputs(
            net,
            arrays.binned,
            config.preprocess,
            batch_size=config.train.predict_batch_size,
            device=device,
            channels_last=config.network.channels_last,
        )


def fit(
    train: StudyArrays,
    val: StudyArrays,
    out: str | Path,
    config: ClassifierConfig,
    *,
    matrix: tuple[int, int],
    progress: bool = True,
    description: str = "train",
) -> TrainResult:
    """Train on binned ``train`` studies, select on ``val``, save the model folder in ``out``."""
    out = Path(out)
    if is_model_dir(out):
        raise FileExistsError(f"{out} already holds a trained classifier; choose a new folder")
    if (out / "metrics.jsonl").is_file():
        log.info("%s holds an interrupted run; training again from step 0", out)
        (out / "metrics.jsonl").unlink()
    settings = config.train
    device = resolve_device(settings.device)
    channels_last = config.network.channels_last
    with RunDir(out, config, kind="classifier") as run:
        synthetic = [src == "synthetic" for src in train.sources]
        members = {
            "train_real": [s for s, syn in zip(train.study_ids, synthetic, strict=True) if not syn],
            "train_synthetic": [s for s, syn in zip(train.study_ids, synthetic, strict=True) if syn],
            "val": list(val.study_ids),
        }
        atomic_write_text(out / "data.json", json.dumps(members, indent=1) + "\n")
        log.info(
            "training on %d real + %d synthetic studies, validating on %d (%s, seed %d)",
            len(members["train_real"]),
            len(members["train_synthetic"]),
            len(val),
            device,
            settings.seed,
        )
        net = build_network(config.network, seed=settings.seed).to(device)
        examples = TrainingSet(train, build_transforms(config.preprocess, config.augment), settings.seed)
        sampler = balanced_sampler(
            train.labels,
            settings.max_steps * settings.batch_size,
            seed=settings.seed,
            balance=settings.balance,
        )
        loader = DataLoader(
            examples,
            batch_size=settings.batch_size,
            sampler=sampler,
            drop_last=True,
            num_workers=settings.workers,
            worker_init_fn=TrainingSet.worker_init,
        )
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: _lr_factor(step, settings.warmup_steps, settings.max_steps)
        )
        best_key, best_state, best_step, best_metrics, best_probabilities, stale = None, None, 0, {}, None, 0
        running, step = [], 0
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]), plain_tensors(), torch_threads(settings.threads):
            torch.manual_seed(settings.seed)
            net.train()
            bar = tqdm(total=settings.max_steps, desc=description, disable=not progress, leave=False)
            for step, (x, y) in enumerate(loader, start=1):
                x, y = x.to(device), y.to(device)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                loss = F.binary_cross_entropy_with_logits(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                running.append(loss.item())
                bar.update()
                if step % LOG_EVERY == 0:
                    run.log_metrics(step=step, loss=float(np.mean(running)), lr=schedule.get_last_lr()[0])
                    bar.set_postfix(loss=f"{np.mean(running):.3f}")
                    running = []
                if step % settings.eval_every and step != settings.max_steps:
                    continue
                probabilities = _probabilities(net, val, config, device)
                metrics = validation_metrics(val.targets, probabilities)
                run.log_metrics(step=step, split="val", **metrics)
                key = _selection_key(metrics)
                if best_key is None or key > best_key:
                    best_key, best_step, best_metrics, stale = key, step, metrics, 0
                    best_probabilities = probabilities
                    best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    stale += 1
                if settings.patience and stale >= settings.patience:
                    log.info("early stop at step %d (best step %d)", step, best_step)
                    break
            bar.close()
        seconds = time.perf_counter() - start
        net.load_state_dict(best_state)
        thresholds = _thresholds(val.targets, best_probabilities)
        result = TrainResult(
            path=out,
            best_step=best_step,
            steps=step,
            validation=best_metrics,
            thresholds=thresholds,
            seconds=seconds,
            images_per_second=step * settings.batch_size / seconds,
        )
        training = {
            "best_step": best_step,
            "steps": step,
            "validation": best_metrics,
            "n_train_real": len(members["train_real"]),
            "n_train_synthetic": len(members["train_synthetic"]),
            "n_val": len(val),
            "seconds": round(seconds, 2),
            "images_per_second": round(result.images_per_second, 1),
        }
        run.log_metrics(event="done", **training)
        save_model(net.cpu(), ModelInfo(config, thresholds, tuple(matrix), training=training), out)
        log.info(
            "saved %s (best step %d, validation score %s) after %.0f s, %.0f images/s",
            out / MODEL_CONFIG,
            best_step,
            best_metrics.get("score"),
            seconds,
            result.images_per_second,
        )
    return result


def _first_copies(records: Sequence[Record], seen: set[str]) -> list[Record]:
    """The records whose pixels (file checksum) are not in ``seen`` yet; adds theirs to it."""
    kept = []
    for record in records:
        key = record.get(FILE_SHA256) or f"{record.study_id}\x00{record.seed}"
        if key not in seen:
            seen.add(key)
            kept.append(record)
    return kept


def train_classifier(
    data: Dataset,
    out: str | Path,
    config: ClassifierConfig,
    *,
    synthetic: Sequence[Dataset] = (),
    cache_dir: Path | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train on ``data``'s training patients plus every synthetic study of ``data`` and ``synthetic``."""
    size = tuple(config.preprocess.input_size)
    splits = real_split_records(data, config)
    check_trainable(splits["train"], splits["val"], str(data.root))
    parts = [load_arrays(data, splits["train"], size, cache_dir=cache_dir, progress=progress)]
    own = data.filter(source="synthetic")
    if own:
        log.info("%s holds %d synthetic studies; they join the training set", data.root, len(own))
    seen: set[str] = set()
    for dataset, records in [(data, own)] + [(d, synthetic_records(d)) for d in synthetic]:
        distinct = _first_copies(records, seen)
        if len(distinct) < len(records):
            log.warning(
                "%s: %d synthetic studies are copies of ones already in training (the same pixels, e.g. "
                "augment run twice with one --seed); each joins once",
                dataset.root,
                len(records) - len(distinct),
            )
        if distinct:
            parts.append(load_arrays(dataset, distinct, size, cache_dir=cache_dir, progress=progress))
    val = load_arrays(data, splits["val"], size, cache_dir=cache_dir, progress=progress)
    return fit(StudyArrays.concat(parts), val, out, config, matrix=data.info.matrix, progress=progress)
