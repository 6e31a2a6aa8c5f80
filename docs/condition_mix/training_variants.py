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

from collections import Counter

import numpy as np
from feature_sets import arguments, feature_sets
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from synthscan.evaluation.stats import stratified_auc

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
    args = arguments(__doc__.splitlines()[0])
    f = feature_sets(args.held_out, args.classifier, args.synthetic)
    mix = Counter(f.synthetic[0][2].tolist())
    print("variant | real half B | " + " | ".join(args.synthetic) + " | real half B at the first set's mix")
    for variant in VARIANTS:
        row = [within_auc(f.real_a, f.keys_a, f.real_b, f.keys_b, variant)]
        row += [within_auc(f.real_a, f.keys_a, x, keys, variant) for _, x, keys in f.synthetic]
        baseline = []
        for repeat in range(args.repeats):
            picked = f.b_at_mix(mix, repeat)
            baseline.append(
                within_auc(f.real_a, f.keys_a, f.real_b[picked], f.keys_b[picked], variant, repeat)
            )
        cells = " | ".join(f"{v:.3f}" for v in row)
        print(f"{variant} | {cells} | {np.mean(baseline):.3f} ({min(baseline):.3f}-{max(baseline):.3f})")


if __name__ == "__main__":
    main()
