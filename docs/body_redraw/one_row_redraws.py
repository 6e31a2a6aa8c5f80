"""The redrawn studies of quality sets drawn again by a model whose redraws run one row per network call.

    python docs/body_redraw/one_row_redraws.py MODEL SET [SET ...]

The sets' redraws ran on chunks of ``eval_chunk`` rows, padded, as the pipeline first did; CPU kernels
round differently by shape, so the same seeds may give studies that differ by rounding. Prints, per
redrawn study, its redraws then and now, the share of pixels with equal counts and the correlation of
the counts.
"""

import sys
from pathlib import Path

import numpy as np

from synthscan.dataset import Dataset
from synthscan.generator.sampling import SampleRequest, generate_studies
from synthscan.generator.storage import load_pipeline

pipeline = load_pipeline(sys.argv[1])
for folder in sys.argv[2:]:
    dataset = Dataset.open(Path(folder) / "synthetic")
    for record in dataset:
        if int(record.get("redraws")) == 0:
            continue
        grade = record.perugini_grade if record.label == "amyloidosis" else None
        request = SampleRequest(record.study_id, record.label, grade, int(record.seed))
        ((counts, meta),) = generate_studies(pipeline, [request])
        before = dataset.read(record).counts
        same = float(np.mean(counts == before))
        r = float(np.corrcoef(counts.ravel().astype(float), before.ravel().astype(float))[0, 1])
        print(
            f"{record.study_id}: redraws {record.get('redraws')} → {meta['redraws']}, "
            f"equal pixels {same:.4f}, r {r:.5f}"
        )
