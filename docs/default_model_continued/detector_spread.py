"""Where the image detector's spread comes from: each training's pooled AUC beside its folds' own AUCs.

    python docs/default_model_continued/detector_spread.py HELD_OUT SAMPLES [--seeds 0 1000 2000]

One cross-validation per seed (``synthscan.evaluation.detector``, the settings of
``generator_quality --detector-repeats``). If the spread came from the folds' detectors scoring on
different scales, the AUC within each fold would stay steady while the pooled one moved; if the
folds' own AUCs move as much, the trainings themselves differ in what they learn.
"""

import argparse

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from synthscan.dataset import Dataset
from synthscan.evaluation.detector import DetectorConfig, _out_of_fold_scores, detector_inputs

parser = argparse.ArgumentParser()
parser.add_argument("real")
parser.add_argument("samples")
parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1000, 2000])
args = parser.parse_args()
real, samples = Dataset.open(args.real), Dataset.open(args.samples)
config = DetectorConfig()
counts = np.stack([s.counts for d in (real, samples) for s in d.iter_studies(d.records)])
x = detector_inputs(counts, config.bin_factor)
y = np.r_[np.zeros(len(real), int), np.ones(len(samples), int)]
groups = np.asarray(
    [f"real:{r.patient_id}" for r in real.records] + [f"synthetic:{r.patient_id}" for r in samples.records]
)
for seed in args.seeds:
    scores = _out_of_fold_scores(x, y, groups, config.folds, config, seed)
    splitter = StratifiedGroupKFold(n_splits=config.folds, shuffle=True, random_state=seed)
    per_fold = [roc_auc_score(y[test], scores[test]) for _, test in splitter.split(x, y, groups)]
    folds = ", ".join(f"{a:.3f}" for a in per_fold)
    pooled = roc_auc_score(y, scores)
    print(f"seed {seed}: pooled AUC {pooled:.3f}; folds {folds} (mean {np.mean(per_fold):.3f})")
