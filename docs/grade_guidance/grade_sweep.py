"""Classifier's amyloidosis probability of samples asked for one Perugini grade, per guidance scale.

    python docs/grade_guidance/grade_sweep.py MODEL CLASSIFIER GRADE N G [G ...]

MODEL: a generator folder or ``default``; CLASSIFIER: ``synthscan classifier train`` run on real (here
simulated) studies. Seeds 300000…; the label probabilities of ``synthscan.classifier.features``.
"""

import sys

import numpy as np
import torch

from synthscan.classifier.features import label_probabilities
from synthscan.classifier.predict import Classifier
from synthscan.generator.storage import load_pipeline
from synthscan.labels import LABELS

torch.set_grad_enabled(False)
pipeline = load_pipeline(None if sys.argv[1] == "default" else sys.argv[1], device="cpu")
classifier = Classifier.load(sys.argv[2], device="cpu")
grade, n = int(sys.argv[3]), int(sys.argv[4])
amyloidosis = list(LABELS).index("amyloidosis")
for g in map(float, sys.argv[5:]):
    counts = []
    for start in range(0, n, 8):
        seeds = range(300000 + start, 300000 + min(n, start + 8))
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        output = pipeline(["amyloidosis"] * len(seeds), [grade] * len(seeds), generator=generators, guidance_scale=g)
        counts.append(output.counts)
    p = label_probabilities(classifier.probabilities_binned(classifier.bin(np.concatenate(counts))))
    share = (p.argmax(axis=1) == amyloidosis).mean()
    print(f"grade {grade} g={g}: mean p(amyloidosis) {p[:, amyloidosis].mean():.2f}, most likely amyloidosis {share:.2f}, n={n}")
