"""Sampling throughput and where its time goes, against a plain 1000-step DDPM loop on the same UNet.

    python benchmarks/sample_speed.py [--model DIR [DIR ...]] [-n 1000] [--batch-size 16]
        [--device cuda] [--precision fp32 bf16] [--compile] [--baseline-steps 40] [--json OUT.json]

For each model and precision, runs ``synthscan sample``'s library path (the model's solver, steps
and guidance, decoding, the count transform and Poisson sampling, written to a temporary dataset)
and prints studies/s, the split of the wall time (UNet, decoder, count transform, Poisson sampling,
writing study files, the rest: solver updates, batching, manifest), peak resident memory and, on a
GPU, peak GPU memory. The baseline is diffusers' ancestral ``DDPMScheduler`` with all 1000 steps on
each model's own UNet with guidance (two rows a step, a distilled student's network too: the
teacher's loop; models given together may differ in architecture): ``--baseline-steps`` of its steps
are run on one batch right after the model's timed run and extrapolated per study (1000 steps, plus one
decode per study). On a shared 2-core VM the baseline itself moves by 10-20 % between measurements, the
same run included: compare ratios over several runs. Give a teacher first and its distilled student
second to compare both in one run. One warm-up batch (and, with ``--compile``, the compilation)
precedes each timed run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from diffusers import DDPMScheduler

import synthscan.dataset
import synthscan.generator.pipeline
from synthscan.generator.sampling import SampleRequest, generate_studies, sample_to_dataset
from synthscan.generator.storage import load_pipeline


class Clock:
    """Accumulated seconds per part; waits for the GPU so that asynchronous kernels are counted."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def part(self, name: str) -> Iterator[None]:
        self.sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self.sync()
            self.seconds[name] += time.perf_counter() - start

    def wrap(self, name: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            with self.part(name):
                return fn(*args, **kwargs)

        return timed

    def hook(self, name: str, module: torch.nn.Module) -> None:
        """Time every call of ``module`` (forward pre- and post-hooks)."""
        starts: list[float] = []

        def before(*_):
            self.sync()
            starts.append(time.perf_counter())

        def after(*_):
            self.sync()
            self.seconds[name] += time.perf_counter() - starts.pop()

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)


@contextlib.contextmanager
def timed_parts(pipeline, clock: Clock) -> Iterator[None]:
    """Route the pipeline's parts through ``clock`` for the duration of the block."""
    patched = [
        (synthscan.generator.pipeline, "decoded_rate", "count transform"),
        (synthscan.generator.pipeline, "expected_from_rate", "count transform"),
        (synthscan.generator.pipeline, "poisson_counts", "Poisson sampling"),
        (synthscan.dataset, "write_study_file", "writing study files"),
    ]
    originals = [getattr(module, name) for module, name, _ in patched]
    for (module, name, part), original in zip(patched, originals, strict=True):
        setattr(module, name, clock.wrap(part, original))
    try:
        yield
    finally:
        for (module, name, _), original in zip(patched, originals, strict=True):
            setattr(module, name, original)


def ddpm_seconds_per_study(pipeline, batch: int, steps_run: int, clock: Clock) -> float:
    """Per-study time of a full 1000-step DDPM ancestral loop (with guidance), extrapolated."""
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    scheduler.set_timesteps(scheduler.config.num_train_timesteps)
    device = pipeline.unet.device
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn((batch, *pipeline.latent_shape), generator=generator).to(device)
    labels = torch.full((batch,), pipeline.config.conditions.index("metastasis"), device=device)
    null = torch.full_like(labels, len(pipeline.config.conditions))
    if pipeline.condition_encoder is not None:  # factor models: the cost does not depend on the ids
        labels = null = pipeline.condition_encoder.null_ids(batch, device)
    guidance = pipeline.guidance_for("metastasis")
    with torch.no_grad():
        clock.sync()
        start = time.perf_counter()
        for t in scheduler.timesteps[:steps_run]:
            ids = pipeline._class_input(torch.cat([labels, null]))
            both = pipeline.unet(torch.cat([latents, latents]), t, class_labels=ids).sample
            conditional, unconditional = both.chunk(2)
            output = unconditional + guidance * (conditional - unconditional)
            latents = scheduler.step(output, t, latents, generator=generator).prev_sample
        clock.sync()
        per_step = (time.perf_counter() - start) / steps_run
        start = time.perf_counter()
        pipeline.decode_latents(latents)
        clock.sync()
        decode = time.perf_counter() - start
    return (per_step * scheduler.config.num_train_timesteps + decode) / batch


def measure(pipeline, n: int, batch_size: int, clock: Clock) -> dict:
    """Sample ``n`` studies into a temporary dataset; seconds, studies/s, the split of the time and how
    many studies were drawn again (a misplaced body: each redraw costs a study's sampling)."""
    warm = [SampleRequest(f"w{i}", "metastasis", None, 10**9 + i) for i in range(batch_size)]
    generate_studies(pipeline, warm)  # warm-up (and compilation)
    clock.seconds.clear()
    if pipeline.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(pipeline.device)
    with tempfile.TemporaryDirectory() as tmp, timed_parts(pipeline, clock), clock.part("total"):
        dataset = sample_to_dataset(
            pipeline, Path(tmp) / "s", condition="metastasis", n=n, batch_size=batch_size, progress=True
        )
        redraws = sum(int(r.get("redraws") or 0) for r in dataset)
    total = clock.seconds.pop("total")
    split = {part: seconds / total for part, seconds in clock.seconds.items()}
    split["rest (solver, batching, manifest)"] = 1 - sum(split.values())
    result = {"seconds": total, "studies_per_s": n / total, "split": split, "redraws": redraws}
    if pipeline.device.type == "cuda":
        result["gpu_peak_gib"] = torch.cuda.max_memory_allocated(pipeline.device) / 2**30
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", nargs="+", default=[None], help="generator folders or shipped names [default: default]"
    )
    parser.add_argument("-n", type=int, default=1000, help="studies to sample per precision")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default=None, help="torch device [default: the GPU if any, else CPU]")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet and the decoder")
    parser.add_argument("--baseline-steps", type=int, default=40, help="DDPM steps actually run")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args()

    report: dict = {"models": {}}
    first_rate = None
    for model in args.model:
        pipeline = load_pipeline(model, device=args.device)
        device = pipeline.device
        clock = Clock(device)
        clock.hook("UNet", pipeline.unet)
        clock.hook("decoder", pipeline.vae.decoder)
        eager = pipeline.unet, pipeline.vae.decoder
        if args.compile:
            pipeline.unet = torch.compile(pipeline.unet)
            pipeline.vae.decoder = torch.compile(pipeline.vae.decoder)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
        print(f"model: {pipeline.path}\ndevice: {device} ({name}), {torch.get_num_threads()} CPU threads")
        report.update(device=str(device), device_name=name, threads=torch.get_num_threads())
        steps, guidance = pipeline.config.default_steps, pipeline.guidance_for("metastasis")
        distilled = " (distilled: one UNet row per step)" if pipeline.config.get("guidance_distilled") else ""
        print(f"solver: {steps} steps of {pipeline.sampler}, guidance {guidance}{distilled}")
        runs = report["models"][str(pipeline.path)] = {
            "steps": steps,
            "sampler": pipeline.sampler,
            "runs": {},
        }
        for precision in args.precision:
            pipeline.precision = precision
            result = measure(pipeline, args.n, args.batch_size, clock)
            runs["runs"][precision] = result
            gpu = f", peak GPU memory {result['gpu_peak_gib']:.2f} GiB" if "gpu_peak_gib" in result else ""
            label = f"{precision}{' compiled' if args.compile else ''}"
            print(
                f"{label}: {args.n} studies in {result['seconds']:.1f} s "
                f"= {result['studies_per_s']:.2f} studies/s{gpu}; {result['redraws']} redraws of a "
                "misplaced body"
            )
            for part, share in sorted(result["split"].items(), key=lambda kv: -kv[1]):
                print(f"    {part:<36} {100 * share:5.1f} %")
        pipeline.precision = "fp32"
        pipeline.unet, pipeline.vae.decoder = eager  # the baseline runs uncompiled
        baseline = ddpm_seconds_per_study(pipeline, args.batch_size, args.baseline_steps, clock)
        runs["ddpm_studies_per_s"] = 1 / baseline
        print(
            f"baseline DDPM on this model's UNet, 1000 guided ancestral steps (extrapolated from "
            f"{args.baseline_steps}): {1 / baseline:.4f} studies/s = {baseline * args.n / 3600:.1f} h "
            f"for {args.n}"
        )
        fp32 = runs["runs"].get("fp32", next(iter(runs["runs"].values())))
        first_rate = first_rate or fp32["studies_per_s"]
        runs["speedup_vs_ddpm"] = fp32["studies_per_s"] * baseline
        runs["speedup_vs_first_model"] = fp32["studies_per_s"] / first_rate
        print(
            f"speed-up over the DDPM loop: {runs['speedup_vs_ddpm']:.1f}x; "
            f"over the first model: {runs['speedup_vs_first_model']:.2f}x"
        )
        del pipeline, eager  # the next model's memory peak is its own
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    report["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB
    print(f"peak resident memory of the process: {report['peak_rss_gib']:.2f} GiB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
