"""The shipped default's tracer effect at several tracer strengths (rule: README.md).

    python docs/tracer_strength/calibrate.py --real centre_a --out ts_calib.json
    python docs/tracer_strength/calibrate.py --real centre_a_holdout --seed 8000000 \
        --strength HDP=0.8 DPD=0.6 --out ts_check.json

For each tracer: 40 normal, 40 metastasis and 13 amyloidosis studies per Perugini grade (``--n``
scales them), seeds ``--seed``… (the same for every tracer and strength), at the model's own guidance.
MDP is sampled once; every other tracer at each strength of ``--grid`` (one strength for all of them)
or at the strengths of ``--strength``. Prints the tracer-effect table of each, against REAL's studies.
"""

import argparse
import inspect
import json
import sys

import numpy as np
import torch

from synthscan.dataset import Dataset
from synthscan.evaluation.tracer import soft_tissue_measures, tracer_effect, tracer_effect_text
from synthscan.generator.conditions import condition_key, condition_keys
from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.storage import load_pipeline
from synthscan.labels import PATIENT_SOURCES

if "tracer_strength" not in inspect.signature(SynthScanPipeline).parameters:
    sys.exit("the tracer_strength setting was removed after this experiment: run this at commit de2c89d")

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--real", required=True, help="studies the tracer effect is learnt and measured on")
parser.add_argument("--out", required=True, help="JSON file of every set's tracer effect")
parser.add_argument("--model", default=None, help="generator [default: the shipped default]")
parser.add_argument("--seed", type=int, default=7000000, help="first seed [default: 7000000]")
parser.add_argument("--n", type=int, default=40, help="normal, metastasis studies per tracer [default: 40]")
parser.add_argument("--grid", type=float, nargs="*", default=[1.0, 0.75, 0.5, 0.25, 0.0])
parser.add_argument("--strength", nargs="*", default=None, help="TRACER=S pairs: one set at these")
args = parser.parse_args()

real = Dataset.open(args.real)
records = [r for r in real.filter(source=PATIENT_SOURCES) if r.tracer]
real_x = np.array([soft_tissue_measures(s.counts) for s in real.iter_studies(records)])
pipeline = load_pipeline(args.model)
reference = pipeline.config.tracer
others = [t for t in pipeline.factors["tracer"] if t != reference]
plan = [("normal", None, args.n), ("metastasis", None, args.n)]
plan += [("amyloidosis", grade, round(args.n / 3)) for grade in (1, 2, 3)]


def sample(tracer: str) -> tuple[list, list]:
    """Measures and condition keys of one tracer's studies."""
    values, keys = [], []
    for offset, (label, grade, n) in enumerate(plan):
        for start in range(0, n, 16):
            first = args.seed + 100_000 * offset
            seeds = range(first + start, first + min(start + 16, n))
            out = pipeline(
                [label] * len(seeds),
                [grade] * len(seeds),
                generator=[torch.Generator().manual_seed(s) for s in seeds],
                tracers=[tracer] * len(seeds),
            )
            values += [soft_tissue_measures(c) for c in out.counts]
            keys += [condition_key(label, grade)] * len(seeds)
    return values, keys


settings = (
    [{t: s for t in others} for s in args.grid]
    if args.strength is None
    else [{k: float(v) for k, v in (pair.split("=") for pair in args.strength)}]
)
mdp_values, mdp_keys = sample(reference)
results = []
for strengths in settings:
    pipeline.register_to_config(tracer_strength=strengths)
    values, keys, asked = list(mdp_values), list(mdp_keys), [reference] * len(mdp_values)
    for tracer in others:
        v, k = sample(tracer)
        values, keys, asked = values + v, keys + k, asked + [tracer] * len(v)
    effect = tracer_effect(
        real_x,
        [r.tracer for r in records],
        [r.patient_id for r in records],
        condition_keys(records),
        np.array(values),
        asked,
        keys,
    )
    results.append({"tracer_strength": strengths, "effect": effect})
    print(f"## tracer strength {strengths}\n")
    print("\n".join(tracer_effect_text(effect)) + "\n", flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1, default=float)
