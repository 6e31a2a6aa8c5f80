"""Optimizer steps per second of a generator UNet at a batch size, on this machine's accelerator.

The device scripts size their training from this rate, since the whole call has a fixed time limit.
Usage: python docs/gpu_continuation/step_rate.py BATCH [CONFIG.yaml [KEY=VALUE ...]]
Without a config: the shipped default's UNet; with one: a fresh UNet of that generator config (and its
``--set``-style overrides) on the latents of a 1024x256 study.
"""

import sys
import time

import torch

from synthscan.cli.options import parse_overrides
from synthscan.config import load_config
from synthscan.generator.config import GeneratorConfig
from synthscan.generator.models import ConditionedUNet, build_unet
from synthscan.generator.storage import load_pipeline

batch = int(sys.argv[1])
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
if len(sys.argv) > 2:
    config = load_config(GeneratorConfig, sys.argv[2], parse_overrides(tuple(sys.argv[3:])))
    patch = config.unet.latent_patch
    shape = (
        config.autoencoder.latent_channels * patch**2,
        1024 // config.downsampling // patch,
        256 // config.downsampling // patch,
    )
    network = build_unet(config.unet, shape, num_conditions=3).to(device).train()
    labels = torch.full((batch,), 3, device=device)  # the null class
else:
    pipeline = load_pipeline("default")
    network = ConditionedUNet(pipeline.unet, pipeline.condition_encoder).to(device).train()
    shape = pipeline.latent_shape
    labels = pipeline.condition_encoder.null_ids(batch, device)
optimizer = torch.optim.AdamW(network.parameters(), lr=1e-6)
x = torch.randn((batch, *shape), device=device)
t = torch.randint(0, 1000, (batch,), device=device)


def step() -> None:
    loss = network(x, t, class_labels=labels).sample.square().mean()
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


for _ in range(3):
    step()
timed = 10 if device.type == "cpu" else 30
if device.type == "cuda":
    torch.cuda.synchronize()
clock = time.perf_counter()
for _ in range(timed):
    step()
if device.type == "cuda":
    torch.cuda.synchronize()
print(f"{timed / (time.perf_counter() - clock):.3f}")
