"""Sampling throughput of a generator, against a plain 1000-step DDPM loop on the same UNet, in one run.

    python benchmarks/sample_speed.py [--model DIR] [-n 1000] [--batch-size 16] [--baseline-steps 20]

Prints studies/s and peak resident memory of ``synthscan sample`` (the model's solver, steps and
guidance, decoding and Poisson sampling included, written to a temporary dataset), the time for
``n`` studies, and the same for diffusers' ancestral ``DDPMScheduler`` with all 1000 steps: the
baseline runs ``--baseline-steps`` of its steps on one batch and is extrapolated per study (1000
steps, plus one decode per study).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from diffusers import DDPMScheduler

from synthscan.generator.sampling import sample_to_dataset
from synthscan.generator.storage import load_pipeline


def ddpm_seconds_per_study(pipeline, batch: int, steps_run: int) -> float:
    """Per-study time of a full 1000-step DDPM ancestral loop (with guidance), extrapolated."""
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    scheduler.set_timesteps(scheduler.config.num_train_timesteps)
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((batch, *pipeline.latent_shape), generator=generator)
    labels = torch.full((batch,), pipeline.config.conditions.index("metastasis"))
    null = torch.full_like(labels, len(pipeline.config.conditions))
    guidance = pipeline.guidance_for("metastasis")
    with torch.no_grad():
        start = time.perf_counter()
        for t in scheduler.timesteps[:steps_run]:
            both = pipeline.unet(
                torch.cat([latents, latents]), t, class_labels=torch.cat([labels, null])
            ).sample
            conditional, unconditional = both.chunk(2)
            output = unconditional + guidance * (conditional - unconditional)
            latents = scheduler.step(output, t, latents, generator=generator).prev_sample
        per_step = (time.perf_counter() - start) / steps_run
        start = time.perf_counter()
        pipeline.vae.decode(latents / pipeline.vae.config.scaling_factor)
        decode = time.perf_counter() - start
    return (per_step * scheduler.config.num_train_timesteps + decode) / batch


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="generator folder [default: the shipped model]")
    parser.add_argument("-n", type=int, default=1000, help="studies to sample")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--baseline-steps", type=int, default=20, help="DDPM steps actually run")
    args = parser.parse_args()

    pipeline = load_pipeline(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        sample_to_dataset(
            pipeline,
            Path(tmp) / "s",
            condition="metastasis",
            n=args.n,
            batch_size=args.batch_size,
            progress=True,
        )
        seconds = time.perf_counter() - start
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB
    ours = seconds / args.n
    baseline = ddpm_seconds_per_study(pipeline, args.batch_size, args.baseline_steps)
    steps, guidance = pipeline.config.default_steps, pipeline.guidance_for("metastasis")
    print(f"model: {pipeline.path}  threads: {torch.get_num_threads()}")
    print(
        f"synthscan sample ({steps} steps of {pipeline.sampler}, guidance {guidance}): {args.n} studies in "
        f"{seconds:.1f} s = {1 / ours:.2f} studies/s, peak memory {peak_gib:.2f} GiB"
    )
    print(
        f"baseline DDPM, 1000 ancestral steps (extrapolated from {args.baseline_steps}): "
        f"{1 / baseline:.4f} studies/s = {baseline * args.n / 3600:.1f} h for {args.n}"
    )
    print(f"speed-up: {baseline / ours:.1f}x")


if __name__ == "__main__":
    main()
