"""The same initial noise and conditions through the pipeline's DDIM loop and through the SDEdit probe's.

    python docs/normal_hot_spots/ab_loop.py DETECTOR [N]

N normal samples (seeds 5000000…) by the shipped pipeline at guidance 1 with diffusers' DDIMScheduler
(20 steps); a forward hook keeps each chunk's first UNet input (the initial latents) and class
embeddings. The same latents and embeddings then go through ``where_ribs_go.denoise`` (the probe's
own DDIM, 20 steps over [0, 999]). Both are finished as ``where_spots_arise.as_sampled`` finishes them and
scored by DETECTOR: marks per study. (Both decoded alike: the difference is the loops'.)
"""

import sys
from pathlib import Path

import numpy as np
import torch
from diffusers import DDIMScheduler

from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from where_ribs_go import denoise
from where_spots_arise import as_sampled, marks

from synthscan.evaluation.lesions import LesionDetector

torch.set_grad_enabled(False)
detector = LesionDetector.load(sys.argv[1])
n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
pipe = load_pipeline(None)
pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
first: list[tuple[torch.Tensor, torch.Tensor]] = []
calls = {"n": 0}


def keep(module, args, kwargs):
    if calls["n"] < -(-n // pipe.config.eval_chunk):  # the first step's chunks: the initial latents
        first.append((args[0].clone(), kwargs["class_labels"].clone()))
    calls["n"] += 1


final: list[torch.Tensor] = []
decode = pipe.decode_latents
pipe.decode_latents = lambda latents: (final.append(latents.clone()), decode(latents))[1]


hook = pipe.unet.register_forward_pre_hook(keep, with_kwargs=True)
latents_out = []
counts_ref = []
out = pipe(["normal"] * n, generator=[torch.Generator().manual_seed(5000000 + i) for i in range(n)],
           guidance_scale=1.0, num_inference_steps=20, return_expected=False)
hook.remove()
x = torch.cat([a for a, _ in first])[:n]
emb = torch.cat([b for _, b in first])[:n]
print("pipeline DDIM timesteps:", pipe.scheduler.timesteps.tolist())
pipeline_final = torch.cat(final)[:n]
pipeline_marks = marks(detector, list(as_sampled(pipe, pipeline_final, list(out.counts))), 2.4)


class Embedded(torch.nn.Module):
    def forward(self, x, t, class_labels):
        return pipe.unet(x, t, class_labels=class_labels)


probe = torch.cat([denoise(Embedded(), x[i : i + 8], emb[i : i + 8], pipe.scheduler.alphas_cumprod, 999) for i in range(0, n, 8)])
probe_marks = marks(detector, list(as_sampled(pipe, probe, list(out.counts))), 2.4)
print(f"pipeline loop: {pipeline_marks.mean():.2f} marks per study; probe loop on the same noise: {probe_marks.mean():.2f}")
