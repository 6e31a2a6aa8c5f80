"""Seconds per UNet training step (forward and backward, batch 16) for latent grids and UNet depths.

Why folding: a UNet on the 2x autoencoder's own 2x256x64 grid against the shipped UNet on 8x128x32
(the shipped 4x latents, or the 2x latents folded 2x2 into channels). Median of a few steps after a
warm-up, in one process, so the ratios hold on a busy machine even where the seconds do not.

    python docs/folded_latents/unet_cost.py > unet_cost.txt
"""

from __future__ import annotations

import statistics
import time

import torch

from synthscan.generator.config import UNetConfig
from synthscan.generator.models import build_unet

SHIPPED = UNetConfig(block_out_channels=(16, 32, 64, 128), attention_levels=(False, False, False, True))
DESIGNS = {
    "shipped UNet on 8x128x32 (4x latents, or 2x latents folded 2x2)": (SHIPPED, (8, 128, 32)),
    "shipped UNet on 2x256x64 (2x latents unfolded)": (SHIPPED, (2, 256, 64)),
    "5 levels [8,16,32,64,128] on 2x256x64": (
        UNetConfig(block_out_channels=(8, 16, 32, 64, 128), attention_levels=(False,) * 4 + (True,)),
        (2, 256, 64),
    ),
    "5 levels [16,16,32,64,128] on 2x256x64": (
        UNetConfig(block_out_channels=(16, 16, 32, 64, 128), attention_levels=(False,) * 4 + (True,)),
        (2, 256, 64),
    ),
}


def step_seconds(config: UNetConfig, shape: tuple[int, int, int], batch: int = 16, steps: int = 4) -> float:
    """Median wall time of one forward and backward pass after one warm-up step."""
    torch.manual_seed(0)
    unet = build_unet(config, shape, num_conditions=5)
    x = torch.randn(batch, *shape)
    t = torch.randint(0, 1000, (batch,))
    labels = torch.randint(0, 6, (batch,))
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        unet(x, t, class_labels=labels).sample.square().mean().backward()
        times.append(time.perf_counter() - start)
        unet.zero_grad(set_to_none=True)
    return statistics.median(times[1:])


def main() -> None:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch 16, forward + backward")
    baseline = None
    for name, (config, shape) in DESIGNS.items():
        seconds = step_seconds(config, shape)
        baseline = baseline or seconds
        print(f"{name}: {seconds:.2f} s/step ({seconds / baseline:.1f}x the first)")


if __name__ == "__main__":
    main()
