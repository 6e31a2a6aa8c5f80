"""Save a copy of a generator whose classifier-free guidance runs only over part of its solver steps.

    python docs/detector_map/guidance_interval.py MODEL OUT 0.2 1

The interval (``guidance_interval`` in ``model_index.json``, the fraction of the steps from the first)
is a sampling setting: the weights are unchanged; the copy gets new checksums and hash.
"""

import sys

from synthscan.generator.storage import load_pipeline, read_card, save_model

model, out, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
pipeline = load_pipeline(model)
pipeline.register_to_config(guidance_interval=[start, end])
save_model(pipeline, out, card=read_card(pipeline.path))
print(f"{out}: guidance over steps {start:g}-{end:g} of the schedule")
