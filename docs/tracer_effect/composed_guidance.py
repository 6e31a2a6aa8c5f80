"""``benchmarks/generator_quality.py`` on the shipped model sampled with composed guidance (2026-12-05).

    python docs/tracer_effect/composed_guidance.py GENERATOR_QUALITY_ARGS

Only ``SynthScanPipeline._guided_output`` changes, and the model's scales, seeds and everything else stay.
Each guided study gets ``u + w (c_R - u) + (c_T - c_R)``: ``u`` is its null row and ``c_T`` its
conditions. ``c_R`` is the same conditions with the reference tracer (the model's most common training
tracer). Guidance then strengthens the label and burden as they look with that tracer, and the study's
own tracer enters at the conditional model's strength (Liu et al. 2022, composable diffusion). For
studies of the reference tracer it is the shipped guidance.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generator_quality

from synthscan.generator.conditions import FACTORS
from synthscan.generator.storage import load_pipeline

TRACER_COLUMN = 1 + list(FACTORS).index("tracer")  # class ids: the condition key's, then the factors


def composed(path, **options):
    """A pipeline of ``path`` (``load_pipeline`` options) that guides by composition."""
    pipe = load_pipeline(path, **options)
    reference = pipe.factors["tracer"].index(pipe.config.tracer)
    shipped = pipe._guided_output

    def guided(self, x, t, labels, nulls, g=None):
        out = shipped(x, t, labels, nulls, g)
        other = labels[:, TRACER_COLUMN] != reference
        if g is None or not bool(other.any()):
            return out
        at_reference = labels[other].clone()
        at_reference[:, TRACER_COLUMN] = reference
        c_t = shipped(x[other], t, labels[other], nulls[other])
        c_r = shipped(x[other], t, at_reference, nulls[other])
        u = shipped(x[other], t, nulls[other], nulls[other])
        w = g[other].to(x.dtype)[:, None, None, None]
        out[other] = u + w * (c_r - u) + (c_t - c_r)
        return out

    pipe._guided_output = types.MethodType(guided, pipe)
    return pipe


if __name__ == "__main__":
    generator_quality.load_pipeline = composed
    generator_quality.main()
