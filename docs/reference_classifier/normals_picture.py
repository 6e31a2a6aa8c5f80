"""The normal samples the reference classifier reads as most metastatic, above held-out normal studies.

    python docs/reference_classifier/normals_picture.py CLASSIFIER HELD_OUT SYNTHETIC OUT.png [-n 4]

Top row: the ``n`` normal studies of SYNTHETIC with the highest P(metastasis); bottom row: ``n`` held-out
normal studies drawn at random (seed 0); captions give each study's seed or id and P(metastasis).
"""

from __future__ import annotations

import argparse

import numpy as np

from synthscan.classifier.features import FeatureExtractor
from synthscan.dataset import Dataset
from synthscan.evaluation.privacy import feature_batches
from synthscan.labels import LABELS, PATIENT_SOURCES
from synthscan.render import render_grid


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("classifier")
    parser.add_argument("held_out")
    parser.add_argument("synthetic")
    parser.add_argument("out")
    parser.add_argument("-n", type=int, default=4)
    args = parser.parse_args()
    extractor = FeatureExtractor(args.classifier)
    items = []
    for root, synthetic in ((args.synthetic, True), (args.held_out, False)):
        dataset = Dataset.open(root)
        records = dataset.filter(source="synthetic" if synthetic else PATIENT_SOURCES)
        records = [r for r in records if r.label == "normal"]
        if not synthetic:
            pick = np.random.default_rng(0).choice(len(records), args.n, replace=False)
            records = [records[i] for i in sorted(pick)]
        p = feature_batches(dataset, records, extractor.probabilities)[:, LABELS["metastasis"]]
        order = np.argsort(-p)[: args.n] if synthetic else range(len(records))
        for i in order:
            study = dataset.read(records[i])
            name = f"sample seed {records[i].get('seed')}" if synthetic else f"held-out {records[i].study_id}"
            items.append((study.counts, f"{name}, P(met) {p[i]:.2f}"))
    render_grid(items, args.n).save(args.out)


if __name__ == "__main__":
    main()
