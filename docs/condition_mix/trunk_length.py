"""How many samples draw the trunk too long? Normal studies' head-to-bladder rows against held-out ones.

    python docs/condition_mix/trunk_length.py HELD_OUT SYNTHETIC [SYNTHETIC ...]

Head and bladder as ``score_drivers.study_landmarks`` finds them (the anterior view's brightest rows in
the top 150 and in rows 300-600). Prints HELD_OUT's normal range and, per SYNTHETIC set, its normals'
median and the share beyond the held-out maximum (and below its minimum).
"""

from __future__ import annotations

import sys

import numpy as np
from score_drivers import study_landmarks

from synthscan.dataset import Dataset
from synthscan.labels import PATIENT_SOURCES


def trunk_rows(root: str, synthetic: bool) -> np.ndarray:
    dataset = Dataset.open(root)
    records = dataset.filter(source="synthetic") if synthetic else dataset.filter(source=PATIENT_SOURCES)
    normal = [r for r in records if r.label == "normal"]
    return np.array(
        [study_landmarks(s.counts)[2] - study_landmarks(s.counts)[1] for s in dataset.iter_studies(normal)]
    )


def main() -> None:
    real = trunk_rows(sys.argv[1], synthetic=False)
    print(f"{sys.argv[1]}: {len(real)} normals, head-to-bladder rows {real.min()}-{real.max()}", end="")
    print(f", median {np.median(real):g}")
    for root in sys.argv[2:]:
        rows = trunk_rows(root, synthetic=True)
        above, below = np.mean(rows > real.max()), np.mean(rows < real.min())
        print(f"{root}: {len(rows)} normals, median {np.median(rows):g}", end="")
        print(f", above the held-out maximum {above:.3f}, below its minimum {below:.3f}")


if __name__ == "__main__":
    main()
