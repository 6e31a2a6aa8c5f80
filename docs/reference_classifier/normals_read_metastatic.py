"""Are the normal samples that the reference classifier reads as metastatic the ones with hot spots?

    python docs/reference_classifier/normals_read_metastatic.py CLASSIFIER LESION_DETECTOR HELD_OUT SET ...

For the normal studies of the held-out set and of each sample set: the classifier's reading (metastasis
when it is the most probable label) against the number of hot spots the lesion detector marks in the
study, grouped 0 / 1 / 2 / 3+ marks, with the Spearman correlation of P(metastasis) with the marks and
with the posterior rib modulation of the realism measure (``bone_texture``: noise-corrected contrast in
the rib band beside the spine; studies whose landmarks are not found are left out of that one).
"""

from __future__ import annotations

import sys

import numpy as np
from scipy.stats import spearmanr

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, count_lesions
from synthscan.evaluation.privacy import feature_batches
from synthscan.evaluation.realism import Study, bone_texture
from synthscan.labels import LABELS, PATIENT_SOURCES

GROUPS = ("0", "1", "2", "3+")


def rib_modulation(counts: np.ndarray) -> float:
    try:
        return bone_texture(Study(counts, counts))["rib_modulation_post"]
    except Exception:  # landmarks not found: skipped, as the realism measure skips a metric group
        return np.nan


def normals(root: str, extractor: FeatureExtractor, detector: LesionDetector) -> tuple[np.ndarray, ...]:
    """P(metastasis), whether it is the most probable label, lesion-detector marks and posterior rib
    modulation of the set's normal studies (its synthetic ones in a sample set)."""
    dataset = Dataset.open(root)
    records = dataset.filter(source="synthetic") or dataset.filter(source=PATIENT_SOURCES)
    records = [r for r in records if r.label == "normal"]
    probabilities = feature_batches(dataset, records, extractor.probabilities)
    metastatic = probabilities[:, LABELS["metastasis"]]
    read = probabilities.argmax(axis=1) == LABELS["metastasis"]
    marks = np.array([row["detected"] for row in count_lesions(detector, dataset, records)])
    ribs = np.array([rib_modulation(study.counts) for study in dataset.iter_studies(records)])
    return metastatic, read, marks, ribs


def main() -> None:
    extractor, detector = FeatureExtractor(sys.argv[1]), LesionDetector.load(sys.argv[2])
    header = " | ".join(f"{g} marks: n, read metastatic" for g in GROUPS)
    print(
        f"| normal studies of | n | read metastatic | mean marks | {header} | Spearman P(met), marks "
        "| median rib modulation | Spearman P(met), ribs |"
    )
    print("|---|---|---|---|" + "---|" * len(GROUPS) + "---|---|---|")
    for root in sys.argv[3:]:
        p, read, marks, ribs = normals(root, extractor, detector)
        group = np.minimum(marks, 3)
        cells = []
        for k in range(4):
            rows = group == k
            cells.append(f"{rows.sum()}, {read[rows].mean():.2f}" if rows.any() else "0, -")
        found = ~np.isnan(ribs)
        rho, rho_ribs = spearmanr(p, marks).statistic, spearmanr(p[found], ribs[found]).statistic
        print(
            f"| {root} | {len(marks)} | {read.mean():.2f} | {marks.mean():.2f} | "
            + " | ".join(cells)
            + f" | {rho:.2f} | {np.median(ribs[found]):.3f} (n={found.sum()}) | {rho_ribs:.2f} |"
        )


if __name__ == "__main__":
    main()
