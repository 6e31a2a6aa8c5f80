"""Classifier's amyloidosis probability of samples asked for one Perugini grade, per guidance scale.

    python docs/grade_guidance/grade_sweep.py MODEL CLASSIFIER GRADE N G [G ...] --held-out HELD_OUT

MODEL: a generator folder or ``default``; CLASSIFIER: ``synthscan classifier train`` run on real (here
simulated) studies. Seeds 300000…; the label probabilities of ``synthscan.classifier.features``, and
the share of samples whose body starts half a head below every HELD_OUT study's (no head, or drawn
down the image: ``generator_quality``'s body placement).
"""

import argparse

import numpy as np
import torch

from synthscan.classifier.features import label_probabilities
from synthscan.classifier.predict import Classifier
from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import body_first_row, misplaced_bodies
from synthscan.generator.storage import load_pipeline
from synthscan.labels import LABELS

parser = argparse.ArgumentParser()
parser.add_argument("model")
parser.add_argument("classifier")
parser.add_argument("grade", type=int)
parser.add_argument("n", type=int)
parser.add_argument("scales", type=float, nargs="+")
parser.add_argument(
    "--held-out", required=True, help="studies of the training site the placement is judged on"
)
args = parser.parse_args()
torch.set_grad_enabled(False)
pipeline = load_pipeline(None if args.model == "default" else args.model, device="cpu")
classifier = Classifier.load(args.classifier, device="cpu")
held_out = Dataset.open(args.held_out)
real_first = [body_first_row(s.counts) for s in held_out.iter_studies(held_out.records)]
amyloidosis = list(LABELS).index("amyloidosis")
for g in args.scales:
    counts = []
    for start in range(0, args.n, 8):
        seeds = range(300000 + start, 300000 + min(args.n, start + 8))
        generators = [torch.Generator().manual_seed(s) for s in seeds]
        output = pipeline(
            ["amyloidosis"] * len(seeds), [args.grade] * len(seeds), generator=generators, guidance_scale=g
        )
        counts.append(output.counts)
    counts = np.concatenate(counts)
    p = label_probabilities(classifier.probabilities_binned(classifier.bin(counts)))
    share = (p.argmax(axis=1) == amyloidosis).mean()
    placement = misplaced_bodies(
        real_first,
        [body_first_row(c) for c in counts],
        [f"amyloidosis-g{args.grade}"] * len(counts),
        held_out.info.pixel_spacing_mm,
    )
    print(
        f"grade {args.grade} g={g}: mean p(amyloidosis) {p[:, amyloidosis].mean():.2f}, most likely "
        f"amyloidosis {share:.2f}, body below row {placement['limit_row']} {placement['share']:.2f}, "
        f"n={args.n}"
    )
