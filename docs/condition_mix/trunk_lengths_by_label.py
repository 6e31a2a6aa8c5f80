"""The fidelity reports' trunk-length line for held-out studies against sample sets, per label.

python docs/condition_mix/trunk_lengths_by_label.py HELD_OUT SYNTHETIC [SYNTHETIC ...]
"""

import sys

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import count_statistics, trunk_length_text, trunk_lengths
from synthscan.labels import PATIENT_SOURCES

real = Dataset.open(sys.argv[1])
real_records = real.filter(source=PATIENT_SOURCES)
real_mm = count_statistics(real, real_records)["head_to_bladder_mm"]
for root in sys.argv[2:]:
    synthetic = Dataset.open(root)
    records = synthetic.filter(source="synthetic")
    fake_mm = count_statistics(synthetic, records)["head_to_bladder_mm"]
    lengths = trunk_lengths(real_mm, [r.label for r in real_records], fake_mm, [r.label for r in records])
    print(f"{root}: {trunk_length_text(lengths)}")
