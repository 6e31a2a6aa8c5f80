"""DPD normals at tracer strength 1 and a calibrated strength, the same seeds as MDP, above held-out normals.

    python docs/tracer_strength/picture.py HELD_OUT OUT.png [--strength 0.4] [-n 4]

Rows: DPD samples as learnt (strength 1); the same seeds at ``--strength``; the same seeds as MDP;
held-out DPD normals; held-out MDP normals (drawn at random, seed 0). The samples' rows differ only
in the tracer's embedding, so what changes between them is the tracer's effect as drawn.
"""

from __future__ import annotations

import argparse
import inspect
import sys

import numpy as np
import torch

from synthscan.dataset import Dataset
from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.storage import load_pipeline
from synthscan.labels import PATIENT_SOURCES
from synthscan.render import render_grid

if "tracer_strength" not in inspect.signature(SynthScanPipeline).parameters:
    sys.exit("the tracer_strength setting was removed after this experiment: run this at commit de2c89d")

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("held_out")
parser.add_argument("out")
parser.add_argument("--strength", type=float, default=0.4)
parser.add_argument("-n", type=int, default=4)
parser.add_argument("--seed", type=int, default=9000000)
args = parser.parse_args()

pipeline = load_pipeline(None)
seeds = range(args.seed, args.seed + args.n)
items = []
for tracer, strength in (("DPD", 1.0), ("DPD", args.strength), ("MDP", 1.0)):
    pipeline.register_to_config(tracer_strength={"DPD": strength})
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    out = pipeline(["normal"] * args.n, generator=generators, tracers=[tracer] * args.n)
    label = f"{tracer} strength {strength:g}" if tracer == "DPD" else tracer
    items += [(counts, f"sample {s}, {label}") for s, counts in zip(seeds, out.counts, strict=True)]
held = Dataset.open(args.held_out)
for tracer in ("DPD", "MDP"):
    records = [r for r in held.filter(source=PATIENT_SOURCES) if r.label == "normal" and r.tracer == tracer]
    pick = np.random.default_rng(0).choice(len(records), args.n, replace=False)
    items += [(held.read(records[i]).counts, f"held-out {records[i].study_id}, {tracer}") for i in pick]
grid = render_grid(items, args.n)
grid.resize((grid.width // 2, grid.height // 2)).save(args.out)  # half size: a repository picture
