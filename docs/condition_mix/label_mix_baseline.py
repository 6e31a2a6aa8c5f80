"""How much of a pooled two-sample AUC is the condition mix? Real against real at a synthetic set's mix.

    python docs/condition_mix/label_mix_baseline.py HELD_OUT CLASSIFIER SYNTHETIC [...] [--repeats 8]

On the classifier's penultimate features (as ``evaluate fidelity`` and ``generator_quality``): the real
set's patient halves A and B (``patient_halves``, seed 0); B subsampled, per condition, to the first
SYNTHETIC set's condition proportions (as many studies as B allows), ``--repeats`` times with fresh
draws and folds; A against each: the pooled AUC and the within-condition one. Then A against B as a
whole and A against each SYNTHETIC set, as the fidelity report computes them. Both real sets are real:
whatever the pooled AUC finds between A and the subsample is the mix.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import classifier_model, patient_halves, two_sample_auc
from synthscan.generator.conditions import condition_keys
from synthscan.labels import PATIENT_SOURCES


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
        sets.append((root, model.embed(dataset, records), condition_keys(records)))
    mix = Counter(sets[0][2])
    scale = min(np.sum(kb == key) / n for key, n in mix.items())
    for name, keys in (("A", ka), ("B", kb)):
        print(f"real half {name}: {len(keys)} studies {dict(Counter(keys.tolist()))}")
    print(f"synthetic mix {dict(mix)}: B subsampled to {sum(int(n * scale) for n in mix.values())} studies")
    print("repeat | A vs B at the synthetic mix: pooled | within conditions")
    rows = []
    for repeat in range(args.repeats):
        rng = np.random.default_rng(repeat)
        picked = np.concatenate(
            [rng.choice(np.flatnonzero(kb == key), int(n * scale), replace=False) for key, n in mix.items()]
        )
        pooled = two_sample_auc(xa, xb[picked], seed=repeat)
        within = two_sample_auc(xa, xb[picked], conditions=(ka, kb[picked]), seed=repeat)
        rows.append((pooled, within))
        print(f"{repeat} | {pooled:.3f} | {within:.3f}")
    mean = np.mean(rows, axis=0)
    print(f"mean | {mean[0]:.3f} | {mean[1]:.3f}")
    print("set | pooled | within conditions")
    for root, x, keys in [("real half B (the real mix)", xb, kb), *sets]:
        print(f"{root} | {two_sample_auc(xa, x):.3f} | {two_sample_auc(xa, x, conditions=(ka, keys)):.3f}")


if __name__ == "__main__":
    main()
