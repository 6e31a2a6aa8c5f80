"""Classifier's amyloidosis probability of samples asked for one Perugini grade, per guidance scale.

    python docs/grade_guidance/grade_sweep.py MODEL CLASSIFIER GRADE N G [G ...]

MODEL: a generator folder or ``default``; CLASSIFIER: ``synthscan classifier train`` run on real (here
simulated) studies. Seeds 300000…; the label probabilities of ``synthscan.classifier.features``, and
the share of samples whose body starts below row 80 (no head, or drawn down the image; the limit of
``generator_quality``'s body placement on the centre_a held-out studies).
"""

import sys

import numpy as np
import torch

from synthscan.classifier.features import label_probabilities
from synthscan.classifier.predict import Classifier
from synthscan.evaluation.fidelity import BODY_FRACTION
from synthscan.generator.storage import load_pipeline
from synthscan.generator.transform import body_rows
from synthscan.labels import LABELS

torch.set_grad_enabled(False)
pipeline = load_pipeline(None if sys.argv[1] == "default" else sys.argv[1], device="cpu")
classifier = Classifier.load(sys.argv[2], device="cpu")
grade, n = int(sys.argv[3]), int(sys.argv[4])
amyloidosis = list(LABELS).index("amyloidosis")
LIMIT = 80  # generator_quality's body placement on centre_a: held-out bodies start by row 30, + half a head
for g in map(float, sys.argv[5:]):
    counts = []
    for start in range(0, n, 8):
        seeds = range(300000 + start, 300000 + min(n, start + 8))
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        output = pipeline(
            ["amyloidosis"] * len(seeds), [grade] * len(seeds), generator=generators, guidance_scale=g
        )
        counts.append(output.counts)
    counts = np.concatenate(counts)
    p = label_probabilities(classifier.probabilities_binned(classifier.bin(counts)))
    share = (p.argmax(axis=1) == amyloidosis).mean()
    low = np.mean([body_rows(c, BODY_FRACTION)[0] > LIMIT for c in counts])
    print(
        f"grade {grade} g={g}: mean p(amyloidosis) {p[:, amyloidosis].mean():.2f}, most likely amyloidosis "
        f"{share:.2f}, body below row {LIMIT} {low:.2f}, n={n}"
    )
