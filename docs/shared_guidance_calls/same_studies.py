"""A mixed batch of the shipped default's studies: its sha256 and the seconds it took.

    python docs/shared_guidance_calls/same_studies.py [MODEL]

16 studies (6 normal, 6 metastasis, 4 amyloidosis of grades 1, 2, 3 and drawn; seeds 1000-1015) in one
pipeline call after a warm-up call. Run at two commits on one machine, equal hashes mean the same
studies to the last count (CPU kernels differ between machines, so compare hashes within one).
"""

import hashlib
import sys
import time

import torch

from synthscan.generator.storage import load_pipeline

torch.set_num_threads(2)
pipeline = load_pipeline(sys.argv[1] if len(sys.argv) > 1 else None)
conditions = ["normal"] * 6 + ["metastasis"] * 6 + ["amyloidosis"] * 4
grades = [None] * 12 + [1, 2, 3, None]


def generators() -> list[torch.Generator]:
    return [torch.Generator().manual_seed(1000 + i) for i in range(len(conditions))]


pipeline(conditions, grades, generator=generators())  # warm-up
start = time.perf_counter()
counts = pipeline(conditions, grades, generator=generators()).counts
print(f"{time.perf_counter() - start:.2f} s, sha256 {hashlib.sha256(counts.tobytes()).hexdigest()}")
