"""Lesion-detector marks per normal study: held-out normals and sample sets (false hot spots).

    python docs/lesion_conspicuity/normal_marks.py HELD_OUT DETECTOR SET [SET ...]

One line per dataset: its normal studies, their marks per study (mean, median) and the share with
none; the guard for a change that makes the metastases' lesions stronger, since a sampler or a network
that draws foci more readily can draw them where there are none.
"""

from __future__ import annotations

import argparse

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import LesionDetector, count_lesions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("held_out")
    parser.add_argument("detector")
    parser.add_argument("sets", nargs="+")
    args = parser.parse_args()
    detector = LesionDetector.load(args.detector)
    for root in [args.held_out, *args.sets]:
        dataset = Dataset.open(root)
        normals = [r for r in dataset.records if r.label == "normal"]
        found = np.array([row["detected"] for row in count_lesions(detector, dataset, normals)])
        print(
            f"{root}: {len(normals)} normals, marks per study mean {found.mean():.2f}, median "
            f"{np.median(found):g}, none {np.mean(found == 0):.2f}"
        )


if __name__ == "__main__":
    main()
