"""Guidance rules that change only how the conditional and null outputs are combined (an experiment).

    python docs/projected_guidance/rules.py RULE PARAM GENERATOR_QUALITY_ARGS

``g`` is a study's own guidance scale (the model's ``model_index.json``), ``c`` and ``u`` the UNet's
conditional and null outputs (v-prediction) at a guided step; the shipped rule is ``u + g (c - u)``.
Both rules are diffusers' own functions, applied per study to the model output as its guiders do:

- ``cfg-rescale PHI``: the shipped output rescaled to the conditional output's standard deviation,
  mixed in at PHI (``diffusers.guiders.guider_utils.rescale_noise_cfg``; Lin et al. 2024, "Common
  Diffusion Noise Schedules and Sample Steps are Flawed", sec. 3.4, v-prediction, PHI 0.7 there);
- ``apg ETA``: adaptive projected guidance without momentum or norm threshold: the part of ``c - u``
  parallel to ``c`` is weighted by ETA (``normalized_guidance``; Sadat et al. 2025, "Eliminating
  Oversaturation and Artifacts of High Guidance Scales in Diffusion Models"; ETA 1 is the shipped rule);
- ``apg-x0 ETA``: the same on the denoised predictions ``x0 = a x - s v`` (a, s: the timestep's
  ``sqrt(alphas_cumprod)`` and ``sqrt(1 - alphas_cumprod)``), as the paper applies it, then turned back
  into v with the same a and s, so that ETA 1 is again the shipped rule.

- ``fdg2 W`` / ``fdg3 W``: frequency-decoupled guidance (Sadat et al. 2025, "Guidance in the Frequency
  Domain Enables High-Fidelity Sampling at Low CFG Scales"; diffusers' ``FrequencyDecoupledGuidance``):
  a 2- or 3-level Laplacian pyramid (kornia's) of ``c`` and ``u``, every level but the coarsest guided
  at ``g``, the coarsest at W, rebuilt by diffusers' ``build_image_from_pyramid`` (``docs/frequency_guidance/``).

Steps outside the model's guidance interval and scale-1 studies stay unguided, as shipped.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import torch
from diffusers.guiders.adaptive_projected_guidance import normalized_guidance
from diffusers.guiders.frequency_decoupled_guidance import build_image_from_pyramid
from diffusers.guiders.guider_utils import rescale_noise_cfg

from synthscan.generator.storage import load_pipeline

RULES = ("cfg-rescale", "apg", "apg-x0", "fdg2", "fdg3")


def combine(
    rule: str,
    param: float,
    conditional: torch.Tensor,
    unconditional: torch.Tensor,
    g: torch.Tensor,
    x: torch.Tensor | None = None,
    alpha_bar: float | None = None,
):
    """The guided output of ``rule`` for scales ``g`` (B,); ``apg-x0`` needs the input ``x`` and the
    timestep's ``alpha_bar``."""
    scale = g.to(conditional.dtype)[:, None, None, None]
    if rule == "apg-x0":
        a, s = alpha_bar**0.5, (1 - alpha_bar) ** 0.5
        x0 = normalized_guidance(a * x - s * conditional, a * x - s * unconditional, scale, eta=param)
        return (a * x - x0) / s
    if rule == "cfg-rescale":
        return rescale_noise_cfg(unconditional + scale * (conditional - unconditional), conditional, param)
    if rule == "apg":
        return normalized_guidance(conditional, unconditional, scale, eta=param)
    if rule in ("fdg2", "fdg3"):
        from kornia.geometry.transform import build_laplacian_pyramid  # pip install kornia: these rules only

        levels = int(rule[-1])
        c_levels = build_laplacian_pyramid(conditional, levels)
        u_levels = build_laplacian_pyramid(unconditional, levels)
        weights = [scale] * (levels - 1) + [torch.full_like(scale, param)]
        guided = [u + w * (c - u) for c, u, w in zip(c_levels, u_levels, weights, strict=True)]
        return build_image_from_pyramid(guided)
    raise ValueError(f"unknown rule {rule!r}; one of {', '.join(RULES)}")


def with_rule(pipe, rule: str, param: float):
    """``pipe`` guiding by ``rule`` (its ``_guided_output`` replaced)."""

    def guided(self, x, t, labels, nulls, g=None):
        if g is None:
            return self.unet(x, t.expand(len(x)), class_labels=self._class_input(labels)).sample
        ids = self._class_input(torch.cat([labels, nulls]))
        both = self.unet(torch.cat([x, x]), t.expand(2 * len(x)), class_labels=ids).sample
        conditional, unconditional = both.chunk(2)
        alpha_bar = float(self.scheduler.alphas_cumprod[int(t)])
        return combine(rule, param, conditional, unconditional, g, x, alpha_bar)

    pipe._guided_output = types.MethodType(guided, pipe)
    return pipe


def loader(rule: str, param: float):
    """A ``load_pipeline`` whose pipelines guide by ``rule``."""
    return lambda path, **kwargs: with_rule(load_pipeline(path, **kwargs), rule, param)


def main() -> None:
    rule, param, *rest = sys.argv[1:]
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import generator_quality

    generator_quality.load_pipeline = loader(rule, float(param))
    sys.argv = [sys.argv[0], *rest]
    generator_quality.main()


if __name__ == "__main__":
    main()
