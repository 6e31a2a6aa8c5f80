"""Training steps per second of a generator config's two networks, and what faster arithmetic would save.

    python benchmarks/train_speed.py [--config cpu_default] [--set KEY=VALUE ...] [--steps 12] [--repeats 2]

Issue 14 asks for the default to be trained by one command within 2.5 h on 2 CPU cores. This times one
optimizer step (forward, backward, clipping, AdamW, the EMA) of each stage as ``synthscan train`` runs
it: the autoencoder objective (Poisson deviance on binomially split crops of ``autoencoder.crop_rows``
rows, batch ``autoencoder.batch_size``) and the UNet with its condition encoder (v-prediction loss on
latents of the config's shape, batch ``diffusion.batch_size``), on random inputs of the right shapes.
Each is timed in fp32 (what ``train`` runs), under bf16 autocast and in the NHWC memory format, in
interleaved rounds (the best round shown, as rates on a shared VM move by 10-20 %), with the ratio to
fp32 and the config's stages projected at each rate (autoencoder steps; UNet steps of the main stage and
its continuations). Crops, latent draws, caches, checkpoints and logging are not timed.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from synthscan.cli.options import config_path, parse_overrides
from synthscan.config import load_config
from synthscan.generator.config import GeneratorConfig
from synthscan.generator.models import (
    ConditionedUNet,
    ConditionEncoder,
    build_autoencoder,
    build_noise_scheduler,
    build_unet,
)
from synthscan.generator.train import AutoencoderObjective, hardware

VARIANTS = {  # name: (memory format, autocast to bf16)
    "fp32": (torch.contiguous_format, False),
    "bf16 autocast": (torch.contiguous_format, True),
    "channels_last": (torch.channels_last, False),
}
NATIVE = (1024, 256)  # rows, columns of a whole-body view


def autoencoder_step(
    config: GeneratorConfig,
) -> tuple[torch.nn.Module, Callable[[torch.memory_format], torch.Tensor]]:
    """Stage 1's objective and a loss on a fixed batch of Poisson crops (split anew at each call)."""
    ae = config.autoencoder
    split = tuple(ae.split_range) if ae.split_range else None
    model = AutoencoderObjective(
        build_autoencoder(ae), ae.kl_weight, ae.mse_weight, split, latent_noise=ae.latent_noise
    )
    rows, cols = (n // config.transform.bin_factor for n in NATIVE)
    rows = min(ae.crop_rows or rows, rows)  # 0: whole studies
    scale = torch.full((ae.batch_size,), 20.0)  # model images are sqrt(counts / scale), as train's
    counts = torch.poisson(torch.full((ae.batch_size, 2, rows, cols), 20.0))
    generator = torch.Generator().manual_seed(0)

    def loss(memory_format: torch.memory_format) -> torch.Tensor:
        x = (counts / scale[:, None, None, None]).sqrt().contiguous(memory_format=memory_format)
        return model(x, scale, generator)[0]

    return model, loss


def unet_step(
    config: GeneratorConfig,
) -> tuple[torch.nn.Module, Callable[[torch.memory_format], torch.Tensor]]:
    """The UNet with its condition encoder and a v-prediction loss on a fixed batch of latents."""
    down = 2 ** (len(config.autoencoder.block_out_channels) - 1) * config.transform.bin_factor
    patch = config.unet.latent_patch
    shape = (
        config.autoencoder.latent_channels * patch**2,
        NATIVE[0] // down // patch,
        NATIVE[1] // down // patch,
    )
    network = build_unet(config.unet, shape, None)
    sizes = [("condition", 5), ("tracer", 3), ("burden", 5)]  # the shipped default's tables
    model = ConditionedUNet(network, ConditionEncoder(sizes, network.time_embedding.linear_1.out_features))
    scheduler = build_noise_scheduler(config.diffusion)
    batch = config.diffusion.batch_size
    generator = torch.Generator().manual_seed(0)
    z0 = torch.randn(batch, *shape, generator=generator)
    noise = torch.randn(batch, *shape, generator=generator)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (batch,), generator=generator)
    labels = torch.stack([torch.randint(0, n + 1, (batch,), generator=generator) for _, n in sizes], dim=1)
    target = scheduler.get_velocity(z0, noise, t)

    def loss(memory_format: torch.memory_format) -> torch.Tensor:
        zt = scheduler.add_noise(z0, noise, t).contiguous(memory_format=memory_format)
        return F.mse_loss(model(zt, t, class_labels=labels).sample.float(), target)

    return model, loss


def steps_per_second(
    model: torch.nn.Module, loss: Callable, ema_decay: float | None, variant: str, steps: int
) -> float:
    """Optimizer steps per second as ``run_stage`` takes them: AdamW, clipping, the EMA if any."""
    memory_format, bf16 = VARIANTS[variant]
    model.to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)
    ema = EMAModel(model.parameters(), decay=ema_decay) if ema_decay is not None else None
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step() -> None:
        with autocast:
            value = loss(memory_format)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(model.parameters())

    for _ in range(3):  # warm-up: oneDNN picks its kernels
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="cpu_default", help="generator config name or YAML")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--steps", type=int, default=12, help="timed optimizer steps per round")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best is shown")
    args = parser.parse_args()
    overrides = parse_overrides(tuple(args.set))
    config = load_config(GeneratorConfig, config_path("generator", args.config), overrides)
    torch.manual_seed(0)
    stages = {
        "autoencoder": (
            *autoencoder_step(config),
            config.autoencoder.ema_decay,
            config.autoencoder.steps,
        ),
        "UNet": (
            *unet_step(config),
            config.diffusion.ema_decay,
            config.diffusion.steps  # then one continuation per restart of a model soup
            + config.continuation.steps * (1 + len(config.continuation.soup_snr_gammas)),
        ),
    }
    best = {(s, v): 0.0 for s in stages for v in VARIANTS}
    for _ in range(args.repeats):
        for stage, (model, loss, ema_decay, _) in stages.items():
            for variant in VARIANTS:
                rate = steps_per_second(model, loss, ema_decay, variant, args.steps)
                best[stage, variant] = max(best[stage, variant], rate)
    print(f"config {args.config}; {hardware(torch.device('cpu'))}, {torch.get_num_threads()} threads")
    hours = {v: 0.0 for v in VARIANTS}
    for stage, (*_, budget) in stages.items():
        for variant in VARIANTS:
            rate = best[stage, variant]
            hours[variant] += budget / rate / 3600
            print(
                f"{stage:12s} {variant:14s} {rate:6.2f} steps/s  {rate / best[stage, 'fp32']:.2f}x fp32  "
                f"{budget} steps in {budget / rate / 60:5.1f} min"
            )
    for variant, total in hours.items():
        print(f"both stages, {variant}: {total:.2f} h of optimizer steps")


if __name__ == "__main__":
    main()
