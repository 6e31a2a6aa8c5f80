"""Tracer fidelity of sample sets against held-out studies, as `evaluate fidelity` measures it.

    python docs/tracer_effect/tracer_effect.py HELD_OUT SAMPLES [SAMPLES ...] > tracer_effect.md

SAMPLES are `generator_quality` runs' `synthetic/` datasets. Prints the report table of each set.
"""

import sys

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.tracer import soft_tissue_measures, tracer_effect, tracer_effect_text
from synthscan.generator.conditions import condition_keys


def measured(dataset: Dataset) -> tuple[np.ndarray, list]:
    records = [r for r in dataset.records if r.tracer]
    return np.array([soft_tissue_measures(s.counts) for s in dataset.iter_studies(records)]), records


real_x, real = measured(Dataset.open(sys.argv[1]))
for folder in sys.argv[2:]:
    fake_x, fake = measured(Dataset.open(folder))
    effect = tracer_effect(
        real_x,
        [r.tracer for r in real],
        [r.patient_id for r in real],
        condition_keys(real),
        fake_x,
        [r.tracer for r in fake],
        condition_keys(fake),
    )
    print(f"## {folder}\n")
    print("\n".join(tracer_effect_text(effect)) + "\n")
