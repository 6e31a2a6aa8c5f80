"""Lesion-detector marks per sample by condition and tracer, shipped default against the candidate.

    python docs/tracer_strength/marks_by_tracer.py DET SHIPPED/synthetic CANDIDATE/synthetic

The MDP samples of the two sets are the same studies; the others differ only in the tracer's embedding.
"""

import sys
from collections import defaultdict

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, count_lesions

detector = LesionDetector.load(sys.argv[1])
print("| set | condition | " + " | ".join(("MDP", "HDP", "DPD")) + " |\n|---|---|---|---|---|")
for folder in sys.argv[2:]:
    dataset = Dataset.open(folder)
    records = dataset.filter(source="synthetic")
    marks = defaultdict(list)
    for record, found in zip(records, count_lesions(detector, dataset, records), strict=True):
        marks[record.label, record.tracer].append(found["detected"])
    for label in ("normal", "metastasis", "amyloidosis"):
        cells = [f"{np.mean(marks[label, t]):.2f} (n={len(marks[label, t])})" for t in ("MDP", "HDP", "DPD")]
        print(f"| {folder} | {label} | " + " | ".join(cells) + " |")
