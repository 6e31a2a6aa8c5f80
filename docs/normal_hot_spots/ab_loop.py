"""The same initial noise and conditions through the pipeline's DDIM loop and through the SDEdit probe's.

    python docs/normal_hot_spots/ab_loop.py DETECTOR [N]

N normal samples (seeds 5000000…) by the shipped pipeline at guidance 1 with diffusers' DDIMScheduler
(20 steps); a forward hook keeps the first step's UNet inputs (the initial latents) and class
embeddings. The same latents and embeddings then go through ``where_ribs_go.denoise`` (the probe's
own DDIM, 20 steps over [0, 999]). Both are finished as ``where_spots_arise.as_sampled`` finishes them and
scored by DETECTOR: marks per study (both decoded alike: the difference is the loops'). The loops differ
in their grids (diffusers: 999, 946, …, 53, 0, stepping to t − 50 each time; the probe: 999, 949, …, 50,
then the denoised estimate) and so in their last evaluations.
"""

import sys
from pathlib import Path

import torch
from diffusers import DDIMScheduler

from synthscan.evaluation.lesions import LesionDetector
from synthscan.generator.storage import load_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from where_ribs_go import denoise
from where_spots_arise import as_sampled, marks


class Embedded(torch.nn.Module):
    """The UNet called with class embeddings, as ``denoise`` calls a network."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x, t, class_labels):
        return self.unet(x, t, class_labels=class_labels)


def main() -> None:
    torch.set_grad_enabled(False)
    detector = LesionDetector.load(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    pipe = load_pipeline(None)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    spacing = pipe.config.pixel_spacing_mm
    chunks = -(-n // pipe.config.eval_chunk)
    first: list[tuple[torch.Tensor, torch.Tensor]] = []
    final: list[torch.Tensor] = []

    def keep(module, args, kwargs):
        if len(first) < chunks:  # the first step's chunks (guidance 1: one row per study)
            first.append((args[0].clone(), kwargs["class_labels"].clone()))

    decode = pipe.decode_latents
    pipe.decode_latents = lambda latents: (final.append(latents.clone()), decode(latents))[1]
    hook = pipe.unet.register_forward_pre_hook(keep, with_kwargs=True)
    generators = [torch.Generator().manual_seed(5000000 + i) for i in range(n)]
    out = pipe(["normal"] * n, generator=generators, guidance_scale=1.0, num_inference_steps=20)
    hook.remove()
    pipe.decode_latents = decode
    x, embeddings = (torch.cat(parts)[:n] for parts in zip(*first, strict=True))
    print("pipeline DDIM timesteps:", pipe.scheduler.timesteps.tolist())
    pipeline_marks = marks(detector, list(as_sampled(pipe, torch.cat(final)[:n], list(out.counts))), spacing)
    alphas = pipe.scheduler.alphas_cumprod
    probe = torch.cat(
        [
            denoise(Embedded(pipe.unet), x[i : i + 8], embeddings[i : i + 8], alphas, 999)
            for i in range(0, n, 8)
        ]
    )
    probe_marks = marks(detector, list(as_sampled(pipe, probe, list(out.counts))), spacing)
    print(
        f"pipeline loop: {pipeline_marks.mean():.2f} marks per study; "
        f"probe loop on the same noise: {probe_marks.mean():.2f}"
    )


if __name__ == "__main__":
    main()
