"""Training data of the generator: model-space images and latents, cached on disk and memory-mapped.

Each study is converted once (:func:`synthscan.generator.transform.to_model`) into a float16 array
of shape (N, 2, H/f, W/f) written as ``.npy`` through a temporary name, so training memory does not
grow with the dataset and a resumed run reuses the cache.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from accelerate import PartialState
from tqdm.auto import tqdm

from synthscan.atomic import atomic_memmap, atomic_write_text
from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.generator.conditions import condition_key
from synthscan.generator.transform import AcquisitionWindow, to_model, view_ratios

log = logging.getLogger(__name__)

IMAGES = "images.npy"
INDEX = "index.json"


@dataclass
class TrainingImages:
    """Model-space training images with what each study is (condition key, count scale, total counts)."""

    key: str  # Dataset.fingerprint of the studies and bin factor the images were made from
    images: np.ndarray  # (N, 2, rows, cols) float16, memory-mapped
    study_ids: list[str]
    keys: list[str]
    scales: np.ndarray  # (N,) mean binned count of each study
    totals: np.ndarray  # (N,) total counts of each study (both views)
    bin_factor: int = 1  # native pixels per model pixel along each axis

    def __len__(self) -> int:
        return len(self.study_ids)

    @cached_property
    def window(self) -> AcquisitionWindow:
        """Acquisition window of the training studies (one pass over the images, then cached)."""
        return AcquisitionWindow.fit(self.images, self.bin_factor)

    @cached_property
    def view_ratios(self) -> np.ndarray:
        """Posterior-over-anterior count ratio of each study (one pass over the images, then cached)."""
        return view_ratios(self.images)


def training_records(dataset: Dataset, sources: tuple[str, ...]) -> list[Record]:
    """The studies a generator learns from: the given sources, never synthetic ones."""
    if "synthetic" in sources:
        raise DatasetError(
            "a generator must not be trained on synthetic studies; remove 'synthetic' from sources"
        )
    records = dataset.filter(source=sources)
    if not records:
        raise DatasetError(f"{dataset.root} holds no studies with source in {list(sources)} to train on")
    return records


def prepare_images(
    dataset: Dataset, records: list[Record], bin_factor: int, cache: Path, *, progress: bool = True
) -> TrainingImages:
    """Convert ``records`` into ``cache/images.npy`` (reused when it matches), one study at a time."""
    cache.mkdir(parents=True, exist_ok=True)
    ids = [r.study_id for r in records]
    key = dataset.fingerprint(records, bin_factor)
    index_path = cache / INDEX
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if index.get("key") == key:
            return _load(cache, index)
        log.info("training-image cache in %s is for other studies; rebuilding it", cache)
    rows, cols = dataset.info.matrix
    if rows % bin_factor or cols % bin_factor:
        raise DatasetError(f"matrix {rows}x{cols} is not a multiple of the bin factor {bin_factor}")
    shape = (len(records), 2, rows // bin_factor, cols // bin_factor)
    scales = np.empty(len(records))
    totals = np.empty(len(records))
    keys = []
    studies = dataset.iter_studies(records)
    with atomic_memmap(cache / IMAGES, np.float16, shape) as images:
        for i, study in enumerate(
            tqdm(studies, total=len(records), desc="model images", disable=not progress)
        ):
            x, scale = to_model(study.counts[None], bin_factor)
            images[i] = x[0].numpy().astype(np.float16)
            scales[i] = float(scale[0])
            totals[i] = float(study.counts.sum(dtype=np.int64))
            keys.append(condition_key(study.record.label, study.record.perugini_grade))
    index = {
        "key": key,
        "study_ids": ids,
        "keys": keys,
        "scales": scales.tolist(),
        "totals": totals.tolist(),
        "bin_factor": bin_factor,
        "dataset": str(dataset.root),
    }
    atomic_write_text(index_path, json.dumps(index))
    return _load(cache, index)


def shared_images(
    state: PartialState,
    dataset: Dataset,
    records: list[Record],
    bin_factor: int,
    cache: Path,
    *,
    progress: bool = True,
) -> TrainingImages:
    """:func:`prepare_images` on the main process first (it writes the cache), then every process reads the
    cache: all processes, and a resumed run, train on the same stored values."""
    if state.is_main_process:
        prepare_images(dataset, records, bin_factor, cache, progress=progress)
    state.wait_for_everyone()
    return prepare_images(dataset, records, bin_factor, cache, progress=False)


def _load(cache: Path, index: dict) -> TrainingImages:
    return TrainingImages(
        key=index["key"],
        images=np.load(cache / IMAGES, mmap_mode="r"),
        study_ids=index["study_ids"],
        keys=index["keys"],
        scales=np.asarray(index["scales"]),
        totals=np.asarray(index["totals"]),
        bin_factor=int(index["bin_factor"]),
    )


def random_crops(
    images: np.ndarray, index: np.ndarray, rows: int, rng: np.random.Generator, edge_prob: float = 0.0
) -> np.ndarray:
    """Row windows of ``rows`` model pixels at random heights (whole studies if ``rows`` is 0 or too big).

    With probability ``edge_prob`` a window is flush with the top or the bottom of the image (half
    each): uniform windows reach the border in 2 of ``height - rows + 1`` cases, so without these an
    autoencoder never learns what lies at the image border and draws counts there.
    """
    height = images.shape[2]
    if not rows or rows >= height:
        return np.stack([images[i] for i in index]).astype(np.float32)
    starts = rng.integers(0, height - rows + 1, len(index))
    if edge_prob > 0:
        edge = rng.random(len(index)) < edge_prob
        starts = np.where(edge, np.where(rng.random(len(index)) < 0.5, 0, height - rows), starts)
    return np.stack([images[i, :, s : s + rows] for i, s in zip(index, starts, strict=True)]).astype(
        np.float32
    )
