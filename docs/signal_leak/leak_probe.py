"""python docs/signal_leak/leak_probe.py HELD_OUT LATENTS.npz   (LATENTS: encode.py's output)

Normal MDP samples at guidance 1 with a signal leak in the initial latents (Everaert et al. 2024):
x_T = sqrt(abar_T) * leak + sqrt(1 - abar_T) * noise. Leaks: none, global mean, group mean,
group mean + a residual drawn from low-frequency Gaussian."""

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from synthscan.evaluation.tracer import soft_tissue_measures
from synthscan.generator.storage import load_pipeline

from synthscan.dataset import Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from probe import mdp_normals, show

held = Dataset.open(sys.argv[1])
pipe = load_pipeline(None)
d = np.load(sys.argv[2])
z = d["z"]
sel = (d["key"] == "normal") & (d["tracer"] == "MDP")
n = 48
recs = mdp_normals(held, n)

show("real MDP normals", [soft_tissue_measures(s.counts) for s in held.iter_studies(recs)])
pipe.scheduler.set_timesteps(10)
t0 = int(pipe.scheduler.timesteps[0])
a = float(pipe.scheduler.alphas_cumprod[t0])
print("first timestep", t0, "abar", a, "init_noise_sigma", pipe.scheduler.init_noise_sigma)
mu_all = torch.from_numpy(z.mean(0))
mu_g = torch.from_numpy(z[sel].mean(0))
k = 16
res = torch.from_numpy(z[sel]) - mu_g
low = F.avg_pool2d(res, k).reshape(sel.sum(), -1).numpy()
cov = np.cov(low, rowvar=False)
L = torch.from_numpy(np.linalg.cholesky(cov + 1e-6 * np.eye(len(cov))).astype(np.float32))
shape = pipe.latent_shape
real_randn = torch.randn


def run(name, leak_fn, scale=1.0):
    vals = []
    for s0 in range(0, n, 16):
        seeds = range(900000 + s0, 900000 + s0 + 16)

        def randn(*size, generator=None, **kw):
            x = real_randn(*size, generator=generator, **kw)
            if (
                tuple(size[0] if len(size) == 1 and isinstance(size[0], tuple) else size) == shape
                and leak_fn is not None
            ):
                x = (1 - a) ** 0.5 * x + a**0.5 * leak_fn(generator)
            return x

        torch.randn = randn
        try:
            out = pipe(
                ["normal"] * 16,
                generator=[torch.Generator().manual_seed(s) for s in seeds],
                guidance_scale=scale,
                tracers=["MDP"] * 16,
            )
        finally:
            torch.randn = real_randn
        vals += [soft_tissue_measures(c) for c in out.counts]
    show(name, vals)


def lowdraw(g):
    e = real_randn(L.shape[0], generator=g)
    blocks = (L @ e).reshape(1, shape[0], shape[1] // k, shape[2] // k)
    return F.interpolate(blocks, scale_factor=k, mode="nearest")[0]


run("no leak", None)
run("global mean", lambda g: mu_all)
run("group mean", lambda g: mu_g)
run("group mean + low residual", lambda g: mu_g + lowdraw(g))
