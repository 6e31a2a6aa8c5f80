"""Lesions detected in metastasis samples asked for one burden, per guidance scale.

    python docs/continued_training/burden_sweep.py MODEL DET BURDEN N G [G ...]

MODEL: a generator folder or ``default``; DET: a lesion detector (``synthscan evaluate lesion-detector``);
G: a guidance scale, or ``model`` for the model's own (the only choice for a guidance-distilled one).
"""

import sys

import numpy as np

from synthscan.evaluation.lesions import LesionDetector, score_studies
from synthscan.generator.sampling import SampleRequest, generate_studies
from synthscan.generator.storage import load_pipeline

model, detector, burden, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pipeline = load_pipeline(None if model == "default" else model, device="cpu")
det = LesionDetector.load(detector)
lo, hi = {"1-3": (1, 3), "4-10": (4, 10), ">10": (11, 10**6), "superscan": (0, 10**6)}[burden]
for g in (None if g == "model" else float(g) for g in sys.argv[5:]):
    found = []
    for start in range(0, n, 8):
        seeds = range(700000 + start, 700000 + min(n, start + 8))
        reqs = [SampleRequest(f"h{s}", "metastasis", None, s, None, burden) for s in seeds]
        counts = np.stack([c for c, _ in generate_studies(pipeline, reqs, guidance=g)])
        found += [
            r["detected"]
            for r in score_studies(det, counts, [None] * len(counts), pipeline.config.pixel_spacing_mm)
        ]
    found = np.array(found)
    share = np.mean((found >= lo) & (found <= hi))
    print(
        f"{burden} g={'model' if g is None else g}: median {np.median(found):.1f}, mean {found.mean():.2f}, in class {share:.2f}, n={n}"
    )
