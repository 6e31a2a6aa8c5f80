"""How much of the training latents leaks through the schedule's last timestep, by spatial scale.

    python docs/signal_leak/leak_snr.py LATENTS.npz [MODEL]

LATENTS: ``encode.py``'s scaled latents of the training studies. For blocks of k×k latent elements
(k = 1…32), the SNR at the last training timestep of the blocks' means: of the latents' mean (the mean
body) and of the studies' residuals around it, each ᾱ_T × its variance over the noise's (1 − ᾱ_T) / k².
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F

from synthscan.generator.storage import load_pipeline

z = torch.from_numpy(np.load(sys.argv[1])["z"])
abar = float(load_pipeline(sys.argv[2] if len(sys.argv) > 2 else None).scheduler.alphas_cumprod[-1])
mean = z.mean(0, keepdim=True)
print(f"alpha_bar at the last timestep: {abar:.5f}; mean |mean latent| {float(mean.abs().mean()):.3f}")
for k in (1, 2, 4, 8, 16, 32):
    noise = (1 - abar) / k**2
    residual = abar * float(F.avg_pool2d(z - mean, k).var(0).mean()) / noise
    body = abar * float(F.avg_pool2d(mean, k).square().mean()) / noise
    print(f"k={k:2d}: SNR of the mean body {body:.3f}, of a study's residual {residual:.3f}")
