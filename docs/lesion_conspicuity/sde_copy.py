"""Save a copy of a generator whose sampler is diffusers' stochastic DPM-Solver++ (``sde-dpmsolver++``,
second order, Karras sigmas) instead of its deterministic one; the weights and every other sampler
setting are unchanged, the copy gets new checksums and hash.

    python docs/lesion_conspicuity/sde_copy.py MODEL OUT

A stochastic sampler adds fresh noise at every step and lets the network correct its own errors
(Karras et al. 2022, section 4); an ODE solver carries them and tends to draw a posterior-mean-like,
smoother image. The pipeline draws each study's step noise from the study's own generator, so samples
stay reproducible per seed and independent of the batch.
"""

import sys

from diffusers import DPMSolverMultistepScheduler

from synthscan.generator.storage import load_pipeline, read_card, save_model


def main() -> None:
    model, out = sys.argv[1:]
    pipeline = load_pipeline(model)
    config = dict(pipeline.scheduler.config)
    pipeline.scheduler = DPMSolverMultistepScheduler.from_config(
        config, algorithm_type="sde-dpmsolver++", solver_order=2, use_karras_sigmas=True
    )
    note = (
        f"*A copy of `{model}` sampled with diffusers' DPM-Solver++ SDE (docs/lesion_conspicuity/"
        "sde_copy.py of the repository); the card below describes the model it was copied from.*\n\n"
    )
    save_model(pipeline, out, card=note + read_card(pipeline.path))
    print(f"{out}: {type(pipeline.scheduler).__name__} {pipeline.scheduler.config.algorithm_type}")


if __name__ == "__main__":
    main()
