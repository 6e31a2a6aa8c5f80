"""Does a model give a quality set's studies bit for bit? Regenerates the first K studies of each label
of a sample set in one mixed batch and compares their counts with the stored ones.

    python docs/normal_hot_spots/reproduce_set.py MODEL SET_DATASET [K]

Used when the sampler changes how it runs (not what it computes): e.g. skipping the network calls of
studies that already ended on an estimate must leave every study as it was.
"""

import sys

import numpy as np

from synthscan.dataset import Dataset
from synthscan.generator.sampling import SampleRequest, generate_studies
from synthscan.generator.storage import load_pipeline
from synthscan.labels import LABELS


def main() -> None:
    model, folder, *rest = sys.argv[1:]
    k = int(rest[0]) if rest else 4
    dataset = Dataset.open(folder)
    records = [r for label in LABELS for r in [r for r in dataset.records if r.label == label][:k]]
    requests = [SampleRequest(r.study_id, r.label, r.perugini_grade or None, r.seed) for r in records]
    studies = generate_studies(load_pipeline(model), requests)
    for record, stored, (counts, _) in zip(records, dataset.iter_studies(records), studies, strict=True):
        same = np.array_equal(stored.counts, counts)
        print(f"{record.study_id}: {'identical' if same else 'DIFFERENT'}")


if __name__ == "__main__":
    main()
