"""Anterior chests of amyloidosis studies of one Perugini grade: held-out above, samples below.

    python docs/normal_guidance/chests.py HELD_OUT SAMPLES GRADE OUT.png

The first six studies of the grade in each dataset; 300 rows from 60 rows below the body's top, each
crop scaled to its own 99.5th percentile, inverted grey.
"""

import sys

import numpy as np
from PIL import Image

from synthscan.dataset import Dataset


def chests(dataset: Dataset, grade: int, n: int = 6) -> np.ndarray:
    records = [r for r in dataset.records if r.label == "amyloidosis" and r.perugini_grade == grade][:n]
    tiles = []
    for study in dataset.iter_studies(records):
        anterior = np.asarray(study.counts[0], float)
        profile = anterior.sum(1)
        top = int(np.nonzero(profile > 0.05 * profile.max())[0][0])
        crop = anterior[top + 60 : top + 360]
        tiles.append(255 - np.clip(crop / max(np.percentile(crop, 99.5), 1) * 255, 0, 255))
    return np.concatenate(tiles, 1)


held_out, samples, grade, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
top, bottom = chests(Dataset.open(held_out), grade), chests(Dataset.open(samples), grade)
image = np.concatenate([top, np.full((6, top.shape[1]), 128), bottom]).astype(np.uint8)
Image.fromarray(image).save(out)
