"""What the feature two-sample test's score follows: simple study statistics, and where normal bodies end.

    python docs/condition_mix/score_drivers.py HELD_OUT CLASSIFIER SYNTHETIC [--train TRAIN]

Scores real half A (``patient_halves``, seed 0) against SYNTHETIC as ``evaluate fidelity`` does
(``two_sample_scores``, same folds) and prints each statistic's Spearman correlation with the
out-of-fold score over both sets; then, for up to 120 normal studies of each set (and TRAIN), the
median rows of the body's first and last row (row sums above 5 % of their maximum), the head's and
the bladder's anterior peaks and the rows holding 50 / 90 / 99 % of the counts.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.stats import spearmanr

from synthscan.dataset import Dataset, Record
from synthscan.evaluation.fidelity import classifier_model, patient_halves, two_sample_scores
from synthscan.labels import PATIENT_SOURCES

STATISTICS = ("total counts", "posterior / anterior", "first body row", "body rows", "non-zero pixels")
LANDMARKS = ("first", "head", "bladder", "50 %", "90 %", "99 %", "last")


def statistics(dataset: Dataset, records: list[Record]) -> np.ndarray:
    rows = []
    for study in dataset.iter_studies(records):
        counts = study.counts.astype(np.float64)
        marks = study_landmarks(counts)
        first, last = marks[0], marks[-1]
        rows.append(
            [counts.sum(), counts[1].sum() / counts[0].sum(), first, last - first, (counts[0] > 0).mean()]
        )
    return np.asarray(rows)


def study_landmarks(counts: np.ndarray) -> list[float]:
    """One study's body rows, head and bladder peaks and count quantile rows (``LANDMARKS``)."""
    counts = counts.astype(np.float64)
    profile = counts.sum(axis=(0, 2))
    body = np.flatnonzero(profile > 0.05 * profile.max())
    anterior = gaussian_filter1d(counts[0].sum(axis=1), 3)
    share = np.cumsum(profile) / profile.sum()
    return (
        [body[0], np.argmax(anterior[:150]), 300 + np.argmax(anterior[300:600])]
        + [int(np.searchsorted(share, q)) for q in (0.5, 0.9, 0.99)]
        + [body[-1]]
    )


def landmarks(dataset: Dataset, records: list[Record]) -> np.ndarray:
    """Median :func:`study_landmarks` of the first 120 normal studies of ``records``."""
    normal = [r for r in records if r.label == "normal"][:120]
    return np.median([study_landmarks(s.counts) for s in dataset.iter_studies(normal)], axis=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("held_out")
    parser.add_argument("classifier")
    parser.add_argument("synthetic")
    parser.add_argument("--train", default=None)
    args = parser.parse_args()
    model = classifier_model(args.classifier)
    real, synthetic = Dataset.open(args.held_out), Dataset.open(args.synthetic)
    half_a, _ = patient_halves(real.filter(source=PATIENT_SOURCES), seed=0)
    fake = synthetic.filter(source="synthetic")
    scores = two_sample_scores(model.embed(real, half_a), model.embed(synthetic, fake))
    stats = np.concatenate([statistics(real, half_a), statistics(synthetic, fake)])
    print("statistic | Spearman with the two-sample score (real half A and synthetic)")
    for name, column in zip(STATISTICS, stats.T, strict=True):
        print(f"{name} | {spearmanr(column, scores).statistic:.3f}")
    print("normal studies, median row of | " + " | ".join(LANDMARKS))
    sets = [(args.held_out, real, real.filter(source=PATIENT_SOURCES)), (args.synthetic, synthetic, fake)]
    if args.train:
        train = Dataset.open(args.train)
        sets.append((args.train, train, train.filter(source=PATIENT_SOURCES)))
    for name, dataset, records in sets:
        print(f"{name} | " + " | ".join(f"{v:g}" for v in landmarks(dataset, records)))


if __name__ == "__main__":
    main()
