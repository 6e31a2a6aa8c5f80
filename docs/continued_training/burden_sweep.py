"""Lesions detected in metastasis samples asked for one burden, per guidance scale.

    python docs/continued_training/burden_sweep.py MODEL DET BURDEN N G [G ...]

MODEL: a generator folder or ``default``; DET: a lesion detector (``synthscan evaluate lesion-detector``);
BURDEN: a burden class, or ``drawn`` for burdens drawn in the training proportions (then the share
found in each class is printed); G: a guidance scale, or ``model`` for the model's own (the only
choice for a guidance-distilled one).
"""

import sys

import numpy as np

from synthscan.evaluation.lesions import LesionDetector, score_studies
from synthscan.generator.sampling import SampleRequest, generate_studies
from synthscan.generator.storage import load_pipeline

model, detector, burden, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pipeline = load_pipeline(None if model == "default" else model, device="cpu")
det = LesionDetector.load(detector)
classes = {"0": (0, 0), "1-3": (1, 3), "4-10": (4, 10), ">10": (11, 10**6)}
lo, hi = {**classes, "superscan": (0, 10**6), "drawn": (0, 0)}[burden]
for g in (None if g == "model" else float(g) for g in sys.argv[5:]):
    found = []
    for start in range(0, n, 8):
        seeds = range(700000 + start, 700000 + min(n, start + 8))
        reqs = [
            SampleRequest(f"h{s}", "metastasis", None, s, None, None if burden == "drawn" else burden)
            for s in seeds
        ]
        counts = np.stack([c for c, _ in generate_studies(pipeline, reqs, guidance=g)])
        found += [
            r["detected"]
            for r in score_studies(det, counts, [None] * len(counts), pipeline.config.pixel_spacing_mm)
        ]
    found = np.array(found)
    share = f"{np.mean((found >= lo) & (found <= hi)):.2f}"
    if burden == "drawn":
        share = " ".join(f"{k}: {np.mean((found >= a) & (found <= b)):.2f}" for k, (a, b) in classes.items())
    scale = "model" if g is None else g
    print(
        f"{burden} g={scale}: median {np.median(found):.1f}, mean {found.mean():.2f}, in class {share}, n={n}"
    )
