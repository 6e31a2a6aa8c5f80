"""Save a copy of a generator with tracer strengths set (same weights, new hash): the candidate.

python docs/tracer_strength/with_strength.py MODEL OUT DPD=0.6 HDP=0.8
"""

import inspect
import sys

from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.storage import load_pipeline, read_card, save_model

if "tracer_strength" not in inspect.signature(SynthScanPipeline).parameters:
    sys.exit("the tracer_strength setting was removed after this experiment: run this at commit de2c89d")

model, out, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
pipeline = load_pipeline(model)
strengths = {name: float(value) for name, value in (pair.split("=") for pair in pairs)}
pipeline.register_to_config(tracer_strength=strengths)
save_model(pipeline, out, card=read_card(pipeline.path))
print(f"{out}: tracer_strength {strengths}")
