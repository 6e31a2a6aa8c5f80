"""Apply a trained classifier: per-study probabilities, penultimate features, the predictions CSV.

Inference uses the same binning and count-aware normalisation as training, without augmentation.
Probabilities are the sigmoid of each task's logit; a study is called positive for a task when its
probability reaches the task's validation-chosen (Youden) threshold stored with the model.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from synthscan.atomic import atomic_open
from synthscan.classifier.config import TASKS, PreprocessConfig
from synthscan.classifier.data import (
    StudyArrays,
    bin_counts,
    check_grid,
    normalise_batch,
    targets_for,
    torch_threads,
)
from synthscan.classifier.model import ModelInfo, TwoViewNet, load_model
from synthscan.dataset import Dataset, Record


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _batches(binned: np.ndarray, preprocess: PreprocessConfig, batch_size: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(binned), batch_size):
        yield normalise_batch(np.asarray(binned[start : start + batch_size], dtype=np.float32), preprocess)


@torch.no_grad()
def network_outputs(
    net: TwoViewNet,
    binned: np.ndarray,
    preprocess: PreprocessConfig,
    *,
    batch_size: int,
    device: torch.device,
    features: bool = False,
    channels_last: bool = False,
    progress: bool = False,
) -> np.ndarray:
    """Task probabilities ``(N, len(TASKS))`` (or penultimate features) of binned studies, in eval mode."""
    was_training = net.training
    net.eval()
    out = []
    total = -(-len(binned) // batch_size)
    for batch in tqdm(
        _batches(binned, preprocess, batch_size), total=total, desc="predict", disable=not progress
    ):
        batch = batch.to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        values = net.features(batch) if features else torch.sigmoid(net(batch))
        out.append(values.float().cpu().numpy())
    net.train(was_training)
    width = net.feature_size if features else len(TASKS)
    return np.concatenate(out) if out else np.zeros((0, width), np.float32)


class Classifier:
    """A trained classifier loaded from its folder, applied to raw counts or to binned studies."""

    def __init__(self, net: TwoViewNet, info: ModelInfo, *, device: str = "auto", path: Path | None = None):
        self.path = path  # its folder, when loaded from one
        self.device = resolve_device(device)
        self.net = net.to(self.device).eval()
        self.info = info
        self.config = info.config
        self.thresholds = info.thresholds

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> Classifier:
        net, info = load_model(path)
        return cls(net, info, device=device, path=Path(path))

    def seen(self) -> set[str]:
        """Study ids the classifier trained or validated on (its folder's ``data.json``)."""
        if self.path is None or not (self.path / "data.json").is_file():
            return set()
        members = json.loads((self.path / "data.json").read_text(encoding="utf-8"))
        return {study for ids in members.values() for study in ids}

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.config.preprocess.input_size)

    def bin(self, counts: np.ndarray) -> np.ndarray:
        """Raw counts ``(B, 2, H, W)`` (posterior as acquired) → binned working-grid studies."""
        counts = np.asarray(counts)
        if counts.ndim != 4 or counts.shape[1] != 2:
            raise ValueError(f"counts must have shape (B, 2, H, W), got {counts.shape}")
        check_grid(counts.shape[-2:], self.input_size, "the input")
        with torch_threads(self.config.train.threads):
            return bin_counts(counts, self.input_size)

    def _outputs(self, binned: np.ndarray, features: bool, progress: bool = False) -> np.ndarray:
        with torch_threads(self.config.train.threads):
            return network_outputs(
                self.net,
                binned,
                self.config.preprocess,
                batch_size=self.config.train.predict_batch_size,
                device=self.device,
                features=features,
                channels_last=self.config.network.channels_last,
                progress=progress,
            )

    def probabilities_binned(self, binned: np.ndarray, *, progress: bool = False) -> np.ndarray:
        """Per-task probabilities ``(N, len(TASKS))`` of binned studies."""
        return self._outputs(binned, False, progress)

    def features_binned(self, binned: np.ndarray) -> np.ndarray:
        """Penultimate features ``(N, feature_size)`` of binned studies."""
        return self._outputs(binned, True)

    @torch.no_grad()
    def probabilities_of_features(self, features: np.ndarray) -> np.ndarray:
        """Per-task probabilities ``(N, len(TASKS))`` from penultimate features (the head alone; eval-mode
        dropout is the identity)."""
        head = self.net.head
        x = torch.as_tensor(np.asarray(features), dtype=head.weight.dtype, device=self.device)
        return torch.sigmoid(head(x)).float().cpu().numpy()

    def predict_dataset(
        self,
        dataset: Dataset,
        records: Sequence[Record] | None = None,
        *,
        progress: bool = True,
    ) -> Predictions:
        """Probabilities of ``records`` (default: every study) of ``dataset``, streamed through in chunks
        so memory stays flat in their number."""
        records = list(dataset.records if records is None else records)
        check_grid(dataset.info.matrix, self.input_size, str(dataset.root))
        chunk = 4 * self.config.train.predict_batch_size
        studies = tqdm(
            dataset.iter_studies(records), total=len(records), desc="predict", disable=not progress
        )
        probabilities, binned = [], []
        for study in studies:
            with torch_threads(self.config.train.threads):
                binned.append(bin_counts(study.counts, self.input_size))
            if len(binned) == chunk:
                probabilities.append(self.probabilities_binned(np.stack(binned)))
                binned = []
        if binned:
            probabilities.append(self.probabilities_binned(np.stack(binned)))
        stacked = np.concatenate(probabilities) if probabilities else np.zeros((0, len(TASKS)), np.float32)
        return Predictions(records, stacked)

    def predict_arrays(
        self, arrays: StudyArrays, records: Sequence[Record], *, progress: bool = False
    ) -> Predictions:
        return Predictions(list(records), self.probabilities_binned(arrays.binned, progress=progress))


@dataclass
class Predictions:
    """Per-study task probabilities beside their manifest records."""

    records: list[Record]
    probabilities: np.ndarray  # (N, len(TASKS))

    @property
    def targets(self) -> np.ndarray:
        if not self.records:
            return np.zeros((0, len(TASKS)), np.float32)
        return np.stack([targets_for(r) for r in self.records])

    def write_csv(self, path: str | Path, thresholds: dict[str, float]) -> None:
        """One row per study: identity, labels, per-task target, probability and call at the threshold."""
        columns = ["study_id", "patient_id", "label", "perugini_grade", "source", "site", "tracer"]
        for task in TASKS:
            columns += [f"target_{task}", f"p_{task}", f"positive_{task}"]
        with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for record, target, probability in zip(
                self.records, self.targets, self.probabilities, strict=True
            ):
                fields = record.to_row()
                row = {c: fields[c] for c in columns[:7]}
                for k, task in enumerate(TASKS):
                    row[f"target_{task}"] = int(target[k])
                    row[f"p_{task}"] = f"{probability[k]:.6g}"
                    row[f"positive_{task}"] = int(probability[k] >= thresholds[task])
                writer.writerow(row)


def read_predictions(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Study ids, targets ``(N, len(TASKS))`` and probabilities ``(N, len(TASKS))`` of a predictions CSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    ids = [row["study_id"] for row in rows]
    targets = np.array([[float(row[f"target_{t}"]) for t in TASKS] for row in rows], dtype=np.float32)
    probabilities = np.array([[float(row[f"p_{t}"]) for t in TASKS] for row in rows], dtype=np.float64)
    return ids, targets.reshape(-1, len(TASKS)), probabilities.reshape(-1, len(TASKS))
