"""Seconds per UNet training step (forward and backward, batch 16) for latent grids and UNet depths.

Why folding: a UNet on the 2x autoencoder's own 2x256x64 grid against the shipped UNet on 8x128x32
(the shipped 4x latents, or the 2x latents folded 2x2 into channels), in one process (``main``).
Run it on an otherwise idle machine: with other jobs on the cores the ratios moved too.

    python docs/folded_latents/unet_cost.py > unet_cost.txt
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from synthscan.config import builtin_config, load_config
from synthscan.generator.config import GeneratorConfig, UNetConfig
from synthscan.generator.models import build_unet

SHIPPED = load_config(GeneratorConfig, builtin_config("generator", "cpu_default")).unet
FIVE_LEVELS = {"attention_levels": (False,) * 4 + (True,)}
DESIGNS = {
    "shipped UNet on 8x128x32 (4x latents, or 2x latents folded 2x2)": (SHIPPED, (8, 128, 32)),
    "shipped UNet on 2x256x64 (2x latents unfolded)": (SHIPPED, (2, 256, 64)),
    "5 levels [8,16,32,64,128] on 2x256x64": (
        dataclasses.replace(SHIPPED, block_out_channels=(8, 16, 32, 64, 128), **FIVE_LEVELS),
        (2, 256, 64),
    ),
    "5 levels [16,16,32,64,128] on 2x256x64": (
        dataclasses.replace(SHIPPED, block_out_channels=(16, 16, 32, 64, 128), **FIVE_LEVELS),
        (2, 256, 64),
    ),
}


class Step:
    """One forward and backward pass of a UNet on a fixed batch of 16 latents."""

    def __init__(self, config: UNetConfig, shape: tuple[int, int, int], batch: int = 16):
        torch.manual_seed(0)
        self.unet = build_unet(config, shape, num_conditions=5)
        self.x = torch.randn(batch, *shape)
        self.t = torch.randint(0, 1000, (batch,))
        self.labels = torch.randint(0, 6, (batch,))

    def __call__(self) -> float:
        start = time.perf_counter()
        self.unet(self.x, self.t, class_labels=self.labels).sample.square().mean().backward()
        self.unet.zero_grad(set_to_none=True)
        return time.perf_counter() - start


def main(rounds: int = 3, block: int = 5) -> None:
    """Per design, the median step time over ``rounds`` blocks of ``block`` consecutive steps (the
    first of each block a warm-up), the designs taking turns block by block: consecutive steps as in
    training (interleaving single steps evicts the caches and made the large grid 6.5x, not 4x), and
    a slow spell of the machine falls on every design alike."""
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 16, forward + backward")
    steps = {name: Step(config, shape) for name, (config, shape) in DESIGNS.items()}
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name] += [step() for _ in range(block)][1:]
    baseline = statistics.median(times[next(iter(times))])
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name}: {median:.2f} s/step ({median / baseline:.1f}x the first)")


if __name__ == "__main__":
    main()
