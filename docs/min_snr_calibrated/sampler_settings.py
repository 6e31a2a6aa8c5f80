"""Save a copy of a generator with the shipped default's sampler settings (guidance interval, default,
label, burden and grade guidance): a comparison of weights, not of samplers.

    python docs/min_snr_calibrated/sampler_settings.py MODEL OUT

The weights and the rate calibration are MODEL's; the copy gets new checksums and hash.
"""

import sys

from synthscan.generator.storage import load_pipeline, read_card, save_model

SETTINGS = ("guidance_interval", "default_guidance", "label_guidance", "burden_guidance", "grade_guidance")

model, out = sys.argv[1], sys.argv[2]
shipped, pipeline = load_pipeline("default"), load_pipeline(model)
pipeline.register_to_config(**{key: shipped.config[key] for key in SETTINGS})
save_model(pipeline, out, card=read_card(pipeline.path))
print(f"{out}: " + ", ".join(f"{key} {shipped.config[key]}" for key in SETTINGS))
