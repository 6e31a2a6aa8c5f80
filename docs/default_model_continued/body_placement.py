"""Body placement of saved sample folders against held-out studies (``generator_quality``'s measure).

    python docs/default_model_continued/body_placement.py HELD_OUT SAMPLES [SAMPLES ...]

For quality runs made before ``generator_quality`` reported it: SAMPLES is a run's ``synthetic/``.
"""

import sys

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import body_first_row, body_placement_text, misplaced_bodies
from synthscan.generator.conditions import condition_key

real = Dataset.open(sys.argv[1])
real_first = [body_first_row(s.counts) for s in real.iter_studies(real.records)]
for folder in sys.argv[2:]:
    samples = Dataset.open(folder)
    first = [body_first_row(s.counts) for s in samples.iter_studies(samples.records)]
    keys = [condition_key(r.label, r.perugini_grade) for r in samples.records]
    placement = misplaced_bodies(real_first, first, keys, real.info.pixel_spacing_mm)
    print(folder, body_placement_text(placement))
