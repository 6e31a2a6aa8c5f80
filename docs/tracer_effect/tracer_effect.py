"""Tracer fidelity of sample sets against held-out studies, as `evaluate fidelity` measures it.

    python docs/tracer_effect/tracer_effect.py HELD_OUT SAMPLES [SAMPLES ...] > tracer_effect.md

SAMPLES are `generator_quality` runs' `synthetic/` datasets. Prints the report table of each set.
"""

import sys

from synthscan.dataset import Dataset
from synthscan.evaluation.tracer import dataset_tracer_effect, tracer_effect_text
from synthscan.labels import PATIENT_SOURCES

real = Dataset.open(sys.argv[1])
for folder in sys.argv[2:]:
    synthetic = Dataset.open(folder)
    effect = dataset_tracer_effect(
        real, real.filter(source=PATIENT_SOURCES), synthetic, synthetic.filter(source="synthetic")
    )
    print(f"## {folder}\n")
    print("\n".join(tracer_effect_text(effect)) + "\n")
