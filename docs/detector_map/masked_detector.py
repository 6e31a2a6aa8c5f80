"""The image detector's AUC with parts of every study blanked, to weigh where its tell lies.

Blanking a region (zero counts, in real and synthetic studies alike) leaves the detector nothing to
learn there; the drop of its AUC from the unmasked run is what that region contributed.

    python docs/detector_map/masked_detector.py HELD_OUT SAMPLES --columns 0 32 --columns 224 256
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.detector import DetectorConfig, detector_auc


def load(root: str) -> tuple[np.ndarray, list[str]]:
    dataset = Dataset.open(root)
    counts = np.stack([s.counts for s in dataset.iter_studies(dataset.records)])
    return counts, [r.patient_id for r in dataset.records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("real")
    parser.add_argument("synthetic")
    parser.add_argument(
        "--columns", type=int, nargs=2, action="append", default=[], help="columns [a, b) blanked"
    )
    parser.add_argument("--rows", type=int, nargs=2, action="append", default=[], help="rows [a, b) blanked")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    (real, real_groups), (synthetic, synthetic_groups) = load(args.real), load(args.synthetic)
    for counts in (real, synthetic):
        for a, b in args.columns:
            counts[..., a:b] = 0
        for a, b in args.rows:
            counts[..., a:b, :] = 0
    config = DetectorConfig(seed=args.seed, repeats=args.repeats)
    result = detector_auc(real, synthetic, real_groups, synthetic_groups, config)
    result.pop("where")
    print(json.dumps({"columns": args.columns, "rows": args.rows, **result}))


if __name__ == "__main__":
    main()
