"""Is the within-condition feature test lenient because its regression learns from pooled sets?

    python docs/condition_mix/training_variants.py HELD_OUT CLASSIFIER SYNTHETIC [SYNTHETIC ...] [--repeats 8]

The shipped test (``two_sample_auc`` with conditions) fits its logistic regression to real half A and
the synthetic set pooled, so part of what it learns is the condition mix, which cancels within
conditions. Two variants that cannot spend themselves on the mix: the condition's one-hot code added
to the features ("one-hot"), and sample weights giving real and synthetic equal weight within every
condition ("balanced"). Each is scored within conditions on the same folds, for A against half B, A
against each SYNTHETIC set, and A against B subsampled to the first set's condition mix (mean and
range over ``--repeats`` draws).
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import classifier_model, patient_halves
from synthscan.evaluation.stats import stratified_auc
from synthscan.generator.conditions import condition_keys
from synthscan.labels import PATIENT_SOURCES

VARIANTS = ("pooled (shipped)", "one-hot", "balanced")


def within_auc(
    real: np.ndarray, real_keys, fake: np.ndarray, fake_keys, variant: str, seed: int = 0
) -> float:
    x = np.concatenate([real, fake])
    y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
    keys = np.r_[np.asarray(real_keys), np.asarray(fake_keys)]
    if variant == "one-hot":
        x = np.c_[x, (keys[:, None] == np.unique(keys)[None]).astype(float)]
    weight = np.ones(len(y))
    if variant == "balanced":
        for key in np.unique(keys):
            for side in (0, 1):
                rows = (keys == key) & (y == side)
                paired = ((keys == key) & (y == 1 - side)).any()
                weight[rows] = 1.0 / rows.sum() if paired else 0.0
        weight *= len(y) / weight.sum()
    scores = np.zeros(len(y))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
        model.fit(x[train], y[train], logisticregression__sample_weight=weight[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return stratified_auc(y, scores, keys).auc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("held_out")
    parser.add_argument("classifier")
    parser.add_argument("synthetic", nargs="+")
    parser.add_argument("--repeats", type=int, default=8)
    args = parser.parse_args()
    model = classifier_model(args.classifier)
    real = Dataset.open(args.held_out)
    half_a, half_b = patient_halves(real.filter(source=PATIENT_SOURCES), seed=0)
    xa, xb = model.embed(real, half_a), model.embed(real, half_b)
    ka, kb = np.asarray(condition_keys(half_a)), np.asarray(condition_keys(half_b))
    sets = []
    for root in args.synthetic:
        dataset = Dataset.open(root)
        records = dataset.filter(source="synthetic")
        sets.append((model.embed(dataset, records), condition_keys(records)))
    mix = Counter(sets[0][1])
    scale = min(np.sum(kb == key) / n for key, n in mix.items())
    print("variant | real half B | " + " | ".join(args.synthetic) + " | real half B at the first set's mix")
    for variant in VARIANTS:
        row = [within_auc(xa, ka, xb, kb, variant)] + [within_auc(xa, ka, x, k, variant) for x, k in sets]
        baseline = []
        for repeat in range(args.repeats):
            rng = np.random.default_rng(repeat)
            picked = np.concatenate(
                [
                    rng.choice(np.flatnonzero(kb == key), int(n * scale), replace=False)
                    for key, n in mix.items()
                ]
            )
            baseline.append(within_auc(xa, ka, xb[picked], kb[picked], variant, seed=repeat))
        cells = " | ".join(f"{v:.3f}" for v in row)
        print(f"{variant} | {cells} | {np.mean(baseline):.3f} ({min(baseline):.3f}-{max(baseline):.3f})")


if __name__ == "__main__":
    main()
