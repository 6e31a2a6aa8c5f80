"""Normal samples the reference classifier reads as most and as least metastatic, above held-out normals.

    python docs/reference_classifier/normals_picture.py CLASSIFIER HELD_OUT SYNTHETIC OUT.png [-n 4]

Rows: the ``n`` normal studies of SYNTHETIC with the highest P(metastasis), the ``n`` with the lowest, and
``n`` held-out normal studies drawn at random (seed 0); captions give each study's seed or id and
P(metastasis). The middle row tells whether what the top row shows is what sets them apart, or is in
every sample.
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
    rows = []
    for root, synthetic in ((args.synthetic, True), (args.held_out, False)):
        dataset = Dataset.open(root)
        records = dataset.filter(source="synthetic" if synthetic else PATIENT_SOURCES)
        records = [r for r in records if r.label == "normal"]
        if not synthetic:
            pick = np.random.default_rng(0).choice(len(records), args.n, replace=False)
            records = [records[i] for i in sorted(pick)]
        p = feature_batches(dataset, records, extractor.probabilities)[:, LABELS["metastasis"]]
        order = np.argsort(-p)
        for chosen in (order[: args.n], order[::-1][: args.n]) if synthetic else (range(len(records)),):
            rows += [(dataset, records[i], p[i], synthetic) for i in chosen]
    items = []
    for dataset, record, p, synthetic in rows:
        name = f"sample seed {record.get('seed')}" if synthetic else f"held-out {record.study_id}"
        items.append((dataset.read(record).counts, f"{name}, P(met) {p:.2f}"))
    grid = render_grid(items, args.n)
    grid.resize((grid.width // 2, grid.height // 2)).save(args.out)  # half size: a repository picture


if __name__ == "__main__":
    main()
