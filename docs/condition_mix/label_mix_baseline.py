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

from collections import Counter

import numpy as np
from feature_sets import arguments, feature_sets

from synthscan.evaluation.fidelity import two_sample_auc


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    f = feature_sets(args.held_out, args.classifier, args.synthetic)
    mix = Counter(f.synthetic[0][2].tolist())
    for name, keys in (("A", f.keys_a), ("B", f.keys_b)):
        print(f"real half {name}: {len(keys)} studies {dict(Counter(keys.tolist()))}")
    print(f"synthetic mix {dict(mix)}: B subsampled to {len(f.b_at_mix(mix, 0))} studies")
    print("repeat | A vs B at the synthetic mix: pooled | within conditions")
    rows = []
    for repeat in range(args.repeats):
        picked = f.b_at_mix(mix, repeat)
        pooled = two_sample_auc(f.real_a, f.real_b[picked], seed=repeat)
        within = two_sample_auc(
            f.real_a, f.real_b[picked], conditions=(f.keys_a, f.keys_b[picked]), seed=repeat
        )
        rows.append((pooled, within))
        print(f"{repeat} | {pooled:.3f} | {within:.3f}")
    mean = np.mean(rows, axis=0)
    print(f"mean | {mean[0]:.3f} | {mean[1]:.3f}")
    print("set | pooled | within conditions")
    for root, x, keys in [("real half B (the real mix)", f.real_b, f.keys_b), *f.synthetic]:
        pooled = two_sample_auc(f.real_a, x)
        print(f"{root} | {pooled:.3f} | {two_sample_auc(f.real_a, x, conditions=(f.keys_a, keys)):.3f}")


if __name__ == "__main__":
    main()
