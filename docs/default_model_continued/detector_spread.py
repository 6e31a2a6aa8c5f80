"""Where the image detector's spread comes from: each training's pooled AUC beside its folds' own AUCs.

    python docs/default_model_continued/detector_spread.py HELD_OUT SAMPLES [--repeats 3]

The cross-validations of ``generator_quality --detector-repeats`` (seeds 0, 1000, 2000…). If the
spread came from the folds' detectors scoring on different scales, the AUC within each fold would
stay steady while the pooled one moved; if the folds' own AUCs move as much, the trainings
themselves differ in what they learn.
"""

import argparse
import dataclasses

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.detector import DetectorConfig, dataset_detector_auc

parser = argparse.ArgumentParser()
parser.add_argument("real")
parser.add_argument("samples")
parser.add_argument("--repeats", type=int, default=3)
args = parser.parse_args()
real, samples = Dataset.open(args.real), Dataset.open(args.samples)
config = dataclasses.replace(DetectorConfig(), repeats=args.repeats)
result = dataset_detector_auc(real, real.records, samples, samples.records, config)
spread = result.get("repeats", {"seeds": [config.seed], "auc": [result["auc"]]})
for seed, pooled, per_fold in zip(spread["seeds"], spread["auc"], result["fold_auc"], strict=True):
    folds = ", ".join(f"{a:.3f}" for a in per_fold)
    print(f"seed {seed}: pooled AUC {pooled:.3f}; folds {folds} (mean {np.mean(per_fold):.3f})")
