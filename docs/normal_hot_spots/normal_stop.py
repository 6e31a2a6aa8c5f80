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

from synthscan.generator.storage import load_pipeline


def sigma_at(pipe, timestep: int) -> float:
    """The noise level sqrt((1 − ᾱ) / ᾱ) of a training timestep, computed as the pipeline computes a
    step's (float32), so that the step at the timestep itself is at or below it."""
    alpha_bar = pipe.scheduler.alphas_cumprod[timestep]
    return float(((1 - alpha_bar) / alpha_bar).sqrt())


def normals_stop_at(pipe, timestep: int):
    """``pipe`` with its normal studies ending on the estimate of the first step at <= ``timestep``
    (the sampler setting ``label_final_sigma``; first measured with a step wrapper, same output)."""
    pipe.register_to_config(label_final_sigma={"normal": sigma_at(pipe, timestep)})
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
