"""Each tracer's ``kept`` on several sample sets pooled, against one held-out set.

    python docs/tracer_effect/pooled_kept.py HELD_OUT SAMPLES [SAMPLES ...]

``evaluation.tracer.tracer_effect`` as ``generator_quality`` runs it per set (seed 0; the studies
``evaluation.fidelity.fidelity_records`` picks), on the held-out studies and on the samples of every
SAMPLES dataset together: one set's 40-50 DPD samples give
``kept`` a 95 % interval some 0.8 wide, so pooling sets says more about whether a tracer is
exaggerated. Each set must come from the same model and settings.
"""

import sys

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.fidelity import fidelity_records
from synthscan.evaluation.tracer import measured_tracer_effect, tracer_measures

held_out = Dataset.open(sys.argv[1])
samples = [Dataset.open(path) for path in sys.argv[2:]]
real_values, real = tracer_measures(held_out, fidelity_records(held_out, samples[0])[0])
sets = [tracer_measures(dataset, fidelity_records(held_out, dataset)[1]) for dataset in samples]
fake_values, fake = np.concatenate([values for values, _ in sets]), [r for _, rs in sets for r in rs]
effect = measured_tracer_effect(real_values, real, fake_values, fake, seed=0)
for name, row in effect["per_tracer"].items():
    interval = "n/a" if row["kept_ci95"] is None else "{:.2f}-{:.2f}".format(*row["kept_ci95"])
    kept = "n/a" if row["kept"] is None else f"{row['kept']:.2f}"
    print(
        f"{name}: {row['n_synthetic']} samples, {row['n_real']} held-out; AUC against "
        f"{effect['reference']} held-out {row['real_auc']['auc']:.3f}, samples "
        f"{row['synthetic_auc']['auc']:.3f}; kept {kept} (95 % {interval})"
    )
