"""What the scripts of this folder compare: real halves and synthetic sets on a classifier's features.

The held-out set is split into patient halves A and B as ``evaluate fidelity`` splits it
(``patient_halves``, seed 0); B can be subsampled, per condition, to a synthetic set's condition mix.
"""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import classifier_model, patient_halves
from synthscan.generator.conditions import condition_keys
from synthscan.labels import PATIENT_SOURCES


@dataclass
class FeatureSets:
    real_a: np.ndarray
    keys_a: np.ndarray
    real_b: np.ndarray
    keys_b: np.ndarray
    synthetic: list[tuple[str, np.ndarray, np.ndarray]]  # (root, features, condition keys)

    def b_at_mix(self, mix: Counter, seed: int) -> np.ndarray:
        """Rows of B drawn per condition in ``mix``'s proportions, as many as B allows."""
        scale = min(np.sum(self.keys_b == key) / n for key, n in mix.items())
        rng = np.random.default_rng(seed)
        return np.concatenate(
            [
                rng.choice(np.flatnonzero(self.keys_b == k), int(n * scale), replace=False)
                for k, n in mix.items()
            ]
        )


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("held_out")
    parser.add_argument("classifier")
    parser.add_argument("synthetic", nargs="+")
    parser.add_argument("--repeats", type=int, default=8, help="draws of B at the first set's mix")
    return parser.parse_args()


def feature_sets(held_out: str, classifier: str, synthetic: list[str]) -> FeatureSets:
    model = classifier_model(classifier)
    real = Dataset.open(held_out)
    half_a, half_b = patient_halves(real.filter(source=PATIENT_SOURCES), seed=0)
    sets = []
    for root in synthetic:
        dataset = Dataset.open(root)
        records = dataset.filter(source="synthetic")
        sets.append((root, model.embed(dataset, records), np.asarray(condition_keys(records))))
    return FeatureSets(
        model.embed(real, half_a),
        np.asarray(condition_keys(half_a)),
        model.embed(real, half_b),
        np.asarray(condition_keys(half_b)),
        sets,
    )
