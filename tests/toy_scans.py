"""Tiny labelled Poisson scans with learnable conditions, shared by the classifier and augmentation tests."""

import numpy as np
from scipy.ndimage import gaussian_filter

from synthscan.dataset import Dataset, DatasetWriter

MATRIX = (64, 16)


def add_toy_study(
    writer: DatasetWriter,
    rng: np.random.Generator,
    label: str,
    grade: int,
    *,
    study_id: str,
    patient_id: str,
    matrix: tuple[int, int] = MATRIX,
    source: str = "real",
    site: str = "a",
    seed: int | None = None,
) -> None:
    """Poisson 'body'; metastasis: a 3x3 hot spot on both views (mirrored on the posterior, as acquired
    from behind); amyloidosis: a cardiac blob on the anterior view, brighter with the Perugini grade."""
    rows, cols = matrix
    body = np.zeros(matrix)
    body[4 : rows - 4, 3 : cols - 3] = 1
    mean = np.stack([gaussian_filter(body, 1.5) * 20] * 2) * rng.uniform(0.7, 1.3)
    if label == "metastasis":
        r, c = rng.integers(8, rows - 10), rng.integers(3, cols - 6)
        mean[0, r : r + 3, c : c + 3] += 150
        mean[1, r : r + 3, cols - c - 3 : cols - c] += 150
    if label == "amyloidosis":
        mean[0, rows // 4 : rows // 4 + 5, cols // 2 : cols // 2 + 4] += 40 * grade
    writer.add(
        rng.poisson(mean),
        study_id=study_id,
        patient_id=patient_id,
        label=label,
        perugini_grade=grade,
        source=source,
        site=site,
        seed=seed,
    )


def toy_dataset(
    root,
    n: int,
    *,
    cycle: list[tuple[str, int]],
    seed: int = 0,
    matrix: tuple[int, int] = MATRIX,
    source: str = "real",
    prefix: str = "s",
    site: str = "a",
) -> Dataset:
    """``n`` studies cycling through ``cycle``'s (label, grade); synthetic ones record a seed."""
    rng = np.random.default_rng(seed)
    dataset = Dataset.create(root, matrix=matrix)
    with dataset.writer() as writer:
        for i in range(n):
            label, grade = cycle[i % len(cycle)]
            add_toy_study(
                writer,
                rng,
                label,
                grade,
                study_id=f"{prefix}{i:04d}",
                patient_id=f"{prefix}p{i:04d}",
                matrix=matrix,
                source=source,
                site=site,
                seed=seed * 10_000 + i if source == "synthetic" else None,
            )
    return dataset
