"""Sample a generator with an ancestral (stochastic) sampler instead of its ODE solver.

    python docs/normal_hot_spots/sample_stochastic.py MODEL OUT [--scheduler ddpm] [--steps 100] \
        [--condition normal] [-n 40] [--seed 0]

The probe of ``where_ribs_go.py`` finds a model keeping ribs it is given in a noisy latent but its
samples drawing none: the deterministic solver never creates them from the noise. An ancestral sampler
adds fresh noise at every step (Karras et al. 2022: stochasticity corrects a model's errors at the
cost of more steps); the dataset it writes records the scheduler in its provenance.
"""

from __future__ import annotations

import argparse

from diffusers import DDPMScheduler, EulerAncestralDiscreteScheduler

from synthscan.generator.sampling import load_pipeline, sample_to_dataset

SCHEDULERS = {"ddpm": DDPMScheduler, "euler_ancestral": EulerAncestralDiscreteScheduler}

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("model")
parser.add_argument("out")
parser.add_argument("--scheduler", choices=sorted(SCHEDULERS), default="ddpm")
parser.add_argument("--steps", type=int, default=100)
parser.add_argument("--condition", default="normal")
parser.add_argument("-n", type=int, default=40)
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

pipeline = load_pipeline(args.model)
schedule = {k: v for k, v in pipeline.scheduler.config.items() if k != "use_karras_sigmas"}  # the ODE's
pipeline.scheduler = SCHEDULERS[args.scheduler].from_config(schedule)
sample_to_dataset(
    pipeline, args.out, condition=args.condition, n=args.n, seed=args.seed, steps=args.steps, progress=False
)
print(f"{args.n} {args.condition} studies by {args.scheduler}, {args.steps} steps, in {args.out}")
