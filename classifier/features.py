"""The trained classifier as the domain feature extractor of the fidelity, privacy and reader-study tools.

``FeatureExtractor(run)(counts)`` maps raw studies ``(B, 2, H, W)`` (posterior as acquired, any matrix
with the working grid's aspect ratio) to the penultimate features ``(B, D)``: the global-average-pooled
backbone output before dropout and the task head. These are features a bone-scan network learned to
separate normal, metastatic and amyloid uptake with, so distances between them (Fréchet distance,
precision/recall, nearest neighbours) weigh what matters for diagnosis rather than raw pixels.

``probabilities(counts)`` turns the two independent sigmoid outputs ``p_m`` (metastasis) and ``p_a``
(amyloidosis, Perugini ≥ 2) into one distribution over :data:`synthscan.labels.LABELS` (normal,
metastasis, amyloidosis), treating the outputs as independent and the three labels as exclusive:
``normal ∝ (1 - p_m)(1 - p_a)``, ``metastasis ∝ p_m (1 - p_a)``, ``amyloidosis ∝ p_a (1 - p_m)``,
normalised to sum to one (the rare both-positive case is shared out in proportion). Amyloidosis
grade 1 is negative for the amyloidosis output, so grade-1 studies mostly land on ``normal``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from synthscan.classifier.config import TASKS
from synthscan.classifier.predict import Classifier
from synthscan.labels import LABELS


def label_probabilities(task_probabilities: np.ndarray) -> np.ndarray:
    """Per-task probabilities ``(B, 2)`` → exclusive label probabilities ``(B, 3)`` in LABELS order."""
    p = np.asarray(task_probabilities, dtype=np.float64)
    p_m, p_a = p[:, TASKS.index("metastasis")], p[:, TASKS.index("amyloidosis")]
    scores = {
        "normal": (1 - p_m) * (1 - p_a),
        "metastasis": p_m * (1 - p_a),
        "amyloidosis": p_a * (1 - p_m),
    }
    stacked = np.stack([scores[label] for label in LABELS], axis=1)
    return stacked / np.maximum(stacked.sum(axis=1, keepdims=True), 1e-12)


class FeatureExtractor:
    """Callable on counts ``(B, 2, H, W)`` → penultimate features ``(B, D)``; see the module docstring."""

    def __init__(self, run: str | Path, *, device: str = "auto"):
        self.classifier = Classifier.load(run, device=device)
        self.feature_size = self.classifier.net.feature_size

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        return self.classifier.features_binned(self.classifier.bin(counts))

    def task_probabilities(self, counts: np.ndarray) -> np.ndarray:
        """Sigmoid outputs ``(B, 2)`` in :data:`TASKS` order."""
        return self.classifier.probabilities_binned(self.classifier.bin(counts))

    def probabilities(self, counts: np.ndarray) -> np.ndarray:
        """Label probabilities ``(B, 3)`` over normal, metastasis, amyloidosis (each row sums to one)."""
        return label_probabilities(self.task_probabilities(counts))

    def features_and_probabilities(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Features ``(B, D)`` and label probabilities ``(B, 3)`` from one pass of the network."""
        features = self(counts)
        return features, label_probabilities(self.classifier.probabilities_of_features(features))
