"""Optimizer steps per second of the shipped default's UNet at a batch size, on this machine's accelerator.

The device script sizes its continuation from this rate, since the whole call has a fixed time limit.
Usage: python docs/gpu_continuation/step_rate.py BATCH
"""

import sys
import time

import torch

from synthscan.generator.models import ConditionedUNet
from synthscan.generator.storage import load_pipeline

batch = int(sys.argv[1])
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
pipeline = load_pipeline("default")
network = ConditionedUNet(pipeline.unet, pipeline.condition_encoder).to(device).train()
optimizer = torch.optim.AdamW(network.parameters(), lr=1e-6)
x = torch.randn((batch, *pipeline.latent_shape), device=device)
t = torch.randint(0, 1000, (batch,), device=device)
labels = pipeline.condition_encoder.null_ids(batch, device)


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
