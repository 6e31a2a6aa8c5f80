"""Is the tracers' exaggeration classifier-free guidance's? Normal samples of each tracer at guidance
1 (the conditional model alone) and at the shipped scale, the same seeds, against held-out normals.

    python docs/tracer_effect/guidance_check.py HELD_OUT [MODEL] [N] [SCALES...]

N studies per tracer and scale (seeds 900000…, the same for every tracer and scale) [default: 48].
"""

import sys
from pathlib import Path

import numpy as np

from synthscan.dataset import Dataset
from synthscan.evaluation.tracer import soft_tissue_measures, tracer_effect, tracer_effect_text
from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from large_probe import normal_samples

held = Dataset.open(sys.argv[1])
pipeline = load_pipeline(sys.argv[2] if len(sys.argv) > 2 else None)
n = int(sys.argv[3]) if len(sys.argv) > 3 else 48
scales = [float(s) for s in sys.argv[4:]] or [1.0, pipeline.guidance_for("normal")]
real = [r for r in held.records if r.tracer and r.label == "normal"]
real_x = np.array([soft_tissue_measures(s.counts) for s in held.iter_studies(real)])
tracers = sorted({r.tracer for r in real})
for scale in scales:
    values, asked = normal_samples(pipeline, tracers, n, scale)
    asked = list(asked)
    effect = tracer_effect(
        real_x,
        [r.tracer for r in real],
        [r.patient_id for r in real],
        ["normal"] * len(real),
        values,
        asked,
        ["normal"] * len(asked),
    )
    print(f"## normal samples at guidance {scale}\n")
    print("\n".join(tracer_effect_text(effect)) + "\n", flush=True)
