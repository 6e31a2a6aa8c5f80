"""Save a copy of a generator whose UniPC solver stops at a larger smallest sigma (a sampler setting).

    python docs/sampler_sigma_min/with_sigma_min.py MODEL OUT SIGMA

The scheduler's ``sigma_min`` (the Karras schedule's smallest σ) set to SIGMA; weights unchanged, the
copy gets new checksums and hash.
"""

import sys

from diffusers import UniPCMultistepScheduler

from synthscan.generator.storage import load_pipeline, read_card, save_model


def main() -> None:
    model, out, sigma = sys.argv[1], sys.argv[2], float(sys.argv[3])
    pipeline = load_pipeline(model)
    pipeline.scheduler = UniPCMultistepScheduler.from_config(pipeline.scheduler.config, sigma_min=sigma)
    save_model(pipeline, out, card=read_card(pipeline.path))
    pipeline.scheduler.set_timesteps(pipeline.config.default_steps)
    print(f"{out}: sigma_min {sigma:g}; timesteps {pipeline.scheduler.timesteps.tolist()}")


if __name__ == "__main__":
    main()
