"""From a dataset's photon counts to network inputs: targets, binning, count-aware transforms, sampling.

Every study is first *binned*: the posterior view is mirrored left-right (it is stored as seen from
behind) so both channels show the same anatomy at the same pixel, and the counts are summed onto the
working grid. Binned values stay (approximately) Poisson counts, so the training-time binomial
thinning can simulate a lower-count acquisition exactly before the variance-stabilising transform
and per-study normalisation turn them into network inputs.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from monai.data import get_track_meta, set_track_meta
from monai.transforms import (
    Compose,
    EnsureType,
    RandAffine,
    RandGaussianSmooth,
    RandomizableTransform,
    RandScaleIntensity,
    Transform,
)
from torch.utils.data import Dataset as TorchDataset
from torch.utils.data import WeightedRandomSampler
from tqdm.auto import tqdm

from synthscan.atomic import atomic_memmap
from synthscan.classifier.config import POSITIVE_PERUGINI_GRADE, TASKS, AugmentConfig, PreprocessConfig
from synthscan.dataset import Dataset, Record
from synthscan.labels import LABELS


def targets_for(record: Record) -> np.ndarray:
    """Binary targets in :data:`TASKS` order.

    Metastasis: the study's label is ``metastasis``. Amyloidosis: label ``amyloidosis`` with Perugini
    grade ≥ 2 (an unknown grade counts as positive; grade 1 is equivocal and negative).
    """
    amyloid = record.label == "amyloidosis" and (
        record.perugini_grade is None or record.perugini_grade >= POSITIVE_PERUGINI_GRADE
    )
    return np.array([record.label == "metastasis", amyloid], dtype=np.float32)


TASK_STRATA = "label and task targets (metastasis, amyloidosis Perugini >= 2)"
"""How :func:`task_stratum` stratifies patient-level splits (recorded in ``splits.json``)."""


def task_stratum(record: Record) -> tuple[int, ...]:
    """Split stratum: the label id and both task targets, so every split holds each task's positives.

    Stratifying by label alone puts grade-1 (negative) and grade-2/3 (positive) amyloidosis in one
    stratum, which can leave a validation set without a single amyloidosis positive.
    """
    return (LABELS[record.label], *(int(t) for t in targets_for(record)))


def bin_counts(counts: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Mirror the posterior view and sum counts onto ``size`` (rows, columns); (…, 2, H, W) → float32.

    Area resampling times the area ratio keeps each study's total counts, so count statistics survive
    (exactly for integer downsampling factors, which is the usual case: 1024×256 → 256×64).
    """
    counts = np.asarray(counts)
    single = counts.ndim == 3
    batch = torch.from_numpy(counts[None] if single else counts).to(torch.float32)
    if batch.ndim != 4 or batch.shape[1] != 2:
        raise ValueError(f"counts must have shape (2, H, W) or (B, 2, H, W), got {counts.shape}")
    batch = torch.stack([batch[:, 0], batch[:, 1].flip(-1)], dim=1)
    height, width = batch.shape[-2:]
    if (height, width) != tuple(size):
        area_ratio = (height * width) / (size[0] * size[1])
        batch = F.interpolate(batch, size=tuple(size), mode="area") * area_ratio
    out = batch.numpy()
    return out[0] if single else out


def evaluable_tasks(records: Sequence[Record]) -> list[str]:
    """Tasks for which ``records`` hold both positives and negatives (an AUC needs both)."""
    if not records:
        return []
    targets = np.stack([targets_for(r) for r in records])
    return [task for k, task in enumerate(TASKS) if 0 < targets[:, k].sum() < len(targets)]


@dataclass
class StudyArrays:
    """Binned studies with their labels, held in memory (or memory-mapped) for training and prediction."""

    binned: np.ndarray  # (N, 2, rows, columns) float32 counts on the working grid, posterior mirrored
    targets: np.ndarray  # (N, len(TASKS)) float32
    labels: list[str]
    study_ids: list[str]
    patient_ids: list[str]
    sources: list[str]  # real, simulated or synthetic

    def __len__(self) -> int:
        return len(self.study_ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> StudyArrays:
        index = np.asarray(index, dtype=np.int64)
        return StudyArrays(
            binned=np.asarray(self.binned[index]),
            targets=self.targets[index],
            labels=[self.labels[i] for i in index],
            study_ids=[self.study_ids[i] for i in index],
            patient_ids=[self.patient_ids[i] for i in index],
            sources=[self.sources[i] for i in index],
        )

    @staticmethod
    def concat(parts: Sequence[StudyArrays]) -> StudyArrays:
        return StudyArrays(
            binned=np.concatenate([np.asarray(p.binned) for p in parts]),
            targets=np.concatenate([p.targets for p in parts]),
            labels=[label for p in parts for label in p.labels],
            study_ids=[s for p in parts for s in p.study_ids],
            patient_ids=[s for p in parts for s in p.patient_ids],
            sources=[s for p in parts for s in p.sources],
        )


def check_grid(matrix: Sequence[int], size: Sequence[int], where: str) -> None:
    """Refuse a matrix that cannot be binned onto the working grid without distorting the body.

    Any matrix with the grid's aspect ratio (within 2 %) and at least its size works, so cohorts from
    scanners with another matrix (e.g. 2048×512) are binned onto the same grid as the training data.
    """
    rows, columns = (int(v) for v in matrix)
    grid_rows, grid_columns = (int(v) for v in size)
    distortion = abs(rows * grid_columns / (columns * grid_rows) - 1)
    if rows < grid_rows or columns < grid_columns or distortion > 0.02:
        raise ValueError(
            f"{where} has a {rows}x{columns} matrix, which cannot be binned onto the classifier's "
            f"{grid_rows}x{grid_columns} working grid (same aspect ratio and at least that size needed); "
            "resample the dataset or set preprocess.input_size to fit it"
        )


def load_arrays(
    dataset: Dataset,
    records: Sequence[Record],
    size: tuple[int, int],
    *,
    cache_dir: Path | None = None,
    progress: bool = True,
    description: str = "binning",
) -> StudyArrays:
    """Read and bin ``records``; with ``cache_dir`` the binned array is a memory-mapped ``.npy`` file.

    The cache file is named by a hash of the dataset folder, the study files' sizes and times, and the
    working grid, so an edited dataset is binned again rather than read stale, and a cohort shared by
    many training runs is read from its study files once. With a cache the studies stream into the
    memory-mapped file, so memory stays flat in the number of studies.
    """
    records = list(records)
    check_grid(dataset.info.matrix, size, str(dataset.root))
    shape = (len(records), 2, *size)
    if cache_dir is None:
        binned = np.empty(shape, dtype=np.float32)
        _bin_into(binned, dataset, records, size, progress, description)
        return _arrays(binned, records)
    key = dataset.fingerprint(records, dataset.root.resolve(), list(size))[:16]
    path = Path(cache_dir) / f"binned-{key}.npy"
    if path.is_file():
        binned = np.load(path, mmap_mode="r")
        if binned.shape == shape:
            return _arrays(binned, records)
    with atomic_memmap(path, np.float32, shape) as binned:
        _bin_into(binned, dataset, records, size, progress, description)
    return _arrays(np.load(path, mmap_mode="r"), records)


def _bin_into(
    out: np.ndarray,
    dataset: Dataset,
    records: Sequence[Record],
    size: tuple[int, int],
    progress: bool,
    description: str,
) -> None:
    studies = dataset.iter_studies(records)
    with torch_threads(1):
        for i, study in enumerate(tqdm(studies, total=len(records), desc=description, disable=not progress)):
            out[i] = bin_counts(study.counts, size)


def _arrays(binned: np.ndarray, records: Sequence[Record]) -> StudyArrays:
    return StudyArrays(
        binned=binned,
        targets=np.stack([targets_for(r) for r in records])
        if records
        else np.zeros((0, len(TASKS)), np.float32),
        labels=[r.label for r in records],
        study_ids=[r.study_id for r in records],
        patient_ids=[r.patient_id for r in records],
        sources=[r.source for r in records],
    )


class BinomialThinning(RandomizableTransform):
    """Keep each count with probability ``f`` ~ U(min_fraction, 1): an exact lower-count acquisition.

    Binomial thinning of a Poisson image with mean λ gives a Poisson image with mean fλ, so this
    reproduces the noise texture of a shorter scan, a lower activity or a less sensitive camera.
    """

    def __init__(self, prob: float, min_fraction: float):
        super().__init__(prob)
        if not 0 < min_fraction <= 1:
            raise ValueError(f"thinning_min_fraction must be in (0, 1], got {min_fraction}")
        self.min_fraction = min_fraction
        self.fraction = 1.0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self.fraction = float(self.R.uniform(self.min_fraction, 1.0))

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        self.randomize()
        if not self._do_transform:
            return counts
        whole = np.rint(np.asarray(counts, dtype=np.float64)).astype(np.int64)
        return self.R.binomial(whole, self.fraction).astype(np.float32)


class StabiliseNormalise(Transform):
    """Variance-stabilise counts and scale each study so its ``percentile`` maps to 1 (zero counts → 0).

    The per-study scale removes the total-count level, which differs between sites and says nothing
    about disease; the Anscombe transform makes the Poisson noise roughly constant across intensities.
    """

    def __init__(self, method: str, percentile: float):
        self.method = method
        self.percentile = percentile

    def __call__(self, counts: np.ndarray | torch.Tensor) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.float32)
        if self.method == "anscombe":
            values = 2.0 * np.sqrt(np.maximum(counts, 0.0) + 0.375) - 2.0 * np.sqrt(0.375)
        elif self.method == "sqrt":
            values = np.sqrt(np.maximum(counts, 0.0))
        else:
            values = counts
        axes = tuple(range(values.ndim - 3, values.ndim))
        scale = np.percentile(values, self.percentile, axis=axes, keepdims=True)
        return (values / np.maximum(scale, 1e-6)).astype(np.float32)


def build_transforms(preprocess: PreprocessConfig, augment: AugmentConfig) -> Compose:
    """Training path: binned counts (2, rows, columns) → augmented float tensor.

    Inference skips the random stages and uses :func:`normalise_batch` on whole batches instead.
    """
    stages: list[object] = []
    if augment.enabled:
        stages.append(BinomialThinning(augment.thinning_prob, augment.thinning_min_fraction))
    stages.append(StabiliseNormalise(preprocess.stabilise, preprocess.normalise_percentile))
    if augment.enabled:
        stages += [
            RandAffine(
                prob=augment.affine_prob,
                rotate_range=np.deg2rad(augment.rotate_deg),
                scale_range=(augment.scale, augment.scale),
                translate_range=tuple(augment.translate_px),
                padding_mode="zeros",
                spatial_size=tuple(preprocess.input_size),
                cache_grid=True,
            ),
            RandGaussianSmooth(
                sigma_x=tuple(augment.blur_sigma), sigma_y=tuple(augment.blur_sigma), prob=augment.blur_prob
            ),
            RandScaleIntensity(factors=augment.intensity_scale, prob=augment.intensity_prob),
        ]
    stages.append(EnsureType(data_type="tensor", dtype=torch.float32, track_meta=False))
    return Compose(stages)


@contextlib.contextmanager
def plain_tensors() -> Iterator[None]:
    """Run MONAI transforms on plain tensors (no MetaTensor bookkeeping): about half the cost per study."""
    previous = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(previous)


def normalise_batch(binned: np.ndarray, preprocess: PreprocessConfig) -> torch.Tensor:
    """Inference preprocessing of a batch of binned studies (B, 2, rows, columns)."""
    values = StabiliseNormalise(preprocess.stabilise, preprocess.normalise_percentile)(binned)
    return torch.from_numpy(values)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use ``n`` torch threads inside the block (``0``: leave torch's setting), then restore.

    On a machine whose cores are shared, threads of one operation wait for each other whenever one of
    them is descheduled; one thread per process was 4-10x faster than two on 2 shared cores.
    """
    if n <= 0:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class TrainingSet(TorchDataset):
    """Augmented training examples; the transform's random state is seeded so a run is reproducible."""

    def __init__(self, arrays: StudyArrays, transform: Compose, seed: int):
        self.arrays = arrays
        self.seed = seed
        self.transform = transform.set_random_state(seed=seed)

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.transform(np.asarray(self.arrays.binned[index]))
        return image, torch.from_numpy(self.arrays.targets[index])

    @staticmethod
    def worker_init(worker_id: int) -> None:
        """``DataLoader`` hook: worker k augments from seed + k (one worker repeats the in-process stream)."""
        info = torch.utils.data.get_worker_info()
        info.dataset.transform.set_random_state(seed=info.dataset.seed + worker_id)


def balanced_sampler(
    labels: Sequence[Hashable], num_samples: int, *, seed: int, balance: str = "label"
) -> WeightedRandomSampler:
    """Draw with replacement so each label (normal / metastasis / amyloidosis) is equally likely."""
    if balance == "label":
        counts: Mapping[Hashable, int] = Counter(labels)
        weights = [1.0 / counts[label] for label in labels]
    else:
        weights = [1.0] * len(labels)
    generator = torch.Generator().manual_seed(seed)
    return WeightedRandomSampler(weights, num_samples=num_samples, replacement=True, generator=generator)
