"""How far few-step sampling lands from the converged sample, against its cost, in one run.

    python benchmarks/solver_accuracy.py [--model DIR] [-n 16] [--reference-steps 60] \
        [--steps 9 10 11 12 14]

The model's solver (UniPC, Karras sigmas) integrates the guided probability-flow ODE; with few
steps it lands near, not on, the exact solution. For ``n`` seeds per condition this runs the
model's solver with ``--reference-steps`` as the converged reference, then each step count in
``--steps`` (same seeds, same guidance) with the model's solver and with DPM-Solver++(2M), and
prints the relative L2 error of the noise-free expected counts (before Poisson sampling) and the
sampling time per study (decoding included), so solver and step count are chosen by measurement.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler

from synthscan.generator.storage import load_pipeline


def noise_free_counts(
    pipeline, conditions: list[str], steps: int, batch: int = 16
) -> tuple[np.ndarray, float]:
    """Noise-free expected counts of one study per condition (seed = index), and seconds per study."""
    out = []
    start = time.perf_counter()
    for s in range(0, len(conditions), batch):
        output = pipeline(
            conditions[s : s + batch],
            generator=[torch.Generator().manual_seed(i) for i in range(s, min(s + batch, len(conditions)))],
            num_inference_steps=steps,
            return_expected=True,
        )
        out.append(output.expected)
    return np.concatenate(out), (time.perf_counter() - start) / len(conditions)


def relative_error(x: np.ndarray, reference: np.ndarray) -> np.ndarray:
    axes = tuple(range(1, reference.ndim))
    return np.sqrt(((x - reference) ** 2).sum(axis=axes) / (reference**2).sum(axis=axes))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="generator folder or shipped name [default: default]")
    parser.add_argument("-n", type=int, default=16, help="seeds per condition")
    parser.add_argument("--reference-steps", type=int, default=60, help="steps of the converged reference")
    parser.add_argument("--steps", type=int, nargs="+", default=[9, 10, 11, 12, 14], help="step counts")
    args = parser.parse_args()

    pipeline = load_pipeline(args.model)
    conditions = [label for label in pipeline.labels for _ in range(args.n)]
    solvers = {
        pipeline.sampler: copy.deepcopy(pipeline.scheduler),
        "DPM-Solver++(2M), Karras sigmas": DPMSolverMultistepScheduler.from_config(
            pipeline.scheduler.config, algorithm_type="dpmsolver++", solver_order=2, use_karras_sigmas=True
        ),
    }
    reference, _ = noise_free_counts(pipeline, conditions, args.reference_steps)
    print(
        f"model: {pipeline.path}  default: {pipeline.config.default_steps} steps  "
        f"{len(conditions)} studies  reference: {pipeline.sampler}, {args.reference_steps} steps"
    )
    print("| solver | steps | median relative error | mean | 90th percentile | s/study |")
    print("|---|---|---|---|---|---|")
    for name, scheduler in solvers.items():
        pipeline.scheduler = scheduler
        for steps in args.steps:
            counts, seconds = noise_free_counts(pipeline, conditions, steps)
            error = relative_error(counts, reference)
            print(
                f"| {name} | {steps} | {np.median(error):.4f} | {error.mean():.4f} | "
                f"{np.quantile(error, 0.9):.4f} | {seconds:.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
