"""Normal studies end on the denoised estimate of the step at timestep <= T; other labels as shipped.

    python docs/normal_hot_spots/normal_stop.py T GENERATOR_QUALITY_ARGS

Runs ``benchmarks/generator_quality.py`` with pipelines whose normal studies decode, instead of the
solver's final latent, the denoised estimate ``sqrt(ᾱ) x − sqrt(1 − ᾱ) v`` (v: the guided output) of the
first step at a timestep <= T; the schedule, noise, guidance and every other study are unchanged
(``docs/normal_hot_spots/README.md``: the normals' false spots are drawn in the last steps).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from synthscan.generator.storage import load_pipeline


def normals_stop_at(pipe, timestep: int):
    """``pipe`` with its normal studies ending on the estimate of the first step at <= ``timestep``."""
    scheduler, plain_call = pipe.scheduler, type(pipe).__call__
    state: dict = {"normal": None, "estimate": None}
    step = scheduler.step

    def stop_step(model_output, t, sample, *args, **kwargs):
        out = step(model_output, t, sample, *args, **kwargs)
        if int(t) <= timestep and state["estimate"] is None:
            abar = scheduler.alphas_cumprod[int(t)].to(sample)
            state["estimate"] = abar.sqrt() * sample - (1 - abar).sqrt() * model_output
        if int(t) == int(scheduler.timesteps[-1]):  # the last step: normal rows take the estimate
            rows = state["normal"].to(sample.device)
            out.prev_sample[rows] = state["estimate"][rows].to(out.prev_sample.dtype)
        return out

    class Stopping(type(pipe)):
        def __call__(self, conditions, *args, **kwargs):
            state.update(normal=torch.tensor([c == "normal" for c in conditions]), estimate=None)
            return plain_call(self, conditions, *args, **kwargs)

    scheduler.step = stop_step
    pipe.__class__ = Stopping
    return pipe


def main() -> None:
    timestep, *rest = sys.argv[1:]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generator_quality

    generator_quality.load_pipeline = lambda path, **kwargs: normals_stop_at(
        load_pipeline(path, **kwargs), int(timestep)
    )
    sys.argv = [sys.argv[0], *rest]
    generator_quality.main()


if __name__ == "__main__":
    main()
