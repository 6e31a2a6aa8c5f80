"""``benchmarks/generator_quality.py`` on a model sampled with another guidance rule (2026-12-03).

    python docs/autoguidance/guide_variants.py VARIANT [--guide FOLDER] [--weight W] GENERATOR_QUALITY_ARGS

VARIANT changes only ``SynthScanPipeline._guided_output`` (the UNet output of each solver step); the
model's scales, seeds and everything else stay as in ``model_index.json``. ``g`` is a study's own
guidance scale, ``D(c)`` the model's output for condition ``c``, ``G(c)`` the guide's:

- ``autoguide-null``: ``G(null) + g (D(c) - G(null))`` — classifier-free guidance whose null branch
  comes from the weaker guide model (two network calls, as shipped);
- ``autoguide-cond``: ``D(null) + g (D(c) - D(null)) + W (D(c) - G(c))`` — classifier-free guidance
  plus autoguidance (Karras et al. 2024, "Guiding a Diffusion Model with a Bad Version of Itself"),
  three calls (two where ``g`` is 1);
- ``negative-metastasis``: normal studies only, ``D(m) + W (D(c) - D(m))`` with ``m`` = metastasis,
  the study's tracer and the burden's null class (a negative condition in place of the null one).
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import generator_quality

from synthscan.generator.storage import load_pipeline

VARIANTS = ("autoguide-null", "autoguide-cond", "negative-metastasis")


def guided_variant(variant: str, guide_folder: str | None, weight: float):
    """A ``load_pipeline`` whose pipelines guide by ``variant``."""

    def load(path):
        pipe = load_pipeline(path)
        guide = load_pipeline(guide_folder) if variant.startswith("autoguide") else None
        normal_id, metastasis_id = (list(pipe.config.conditions).index(k) for k in ("normal", "metastasis"))
        shipped = pipe._guided_output

        def guided(self, x, t, labels, nulls, g=None):
            # the pipeline's output without scales is its conditional UNet output for ``ids``; a step
            # outside the guidance interval gives none: every study at scale 1
            model = lambda ids: shipped(x, t, ids, ids)  # noqa: E731
            weak = lambda ids: guide._guided_output(x, t, ids, ids)  # noqa: E731
            g = torch.ones(len(x)) if g is None else g
            w = g.to(x.dtype)[:, None, None, None]
            if variant == "autoguide-null":
                weak_null = weak(nulls)
                return weak_null + w * (model(labels) - weak_null)
            if variant == "autoguide-cond":
                strong = model(labels)
                null = strong if bool((g == 1).all()) else model(nulls)
                return null + w * (strong - null) + weight * (strong - weak(labels))
            out = shipped(x, t, labels, nulls, g)
            normal = labels[:, 0] == normal_id
            if bool(normal.any()):
                negative = labels[normal].clone()
                negative[:, 0], negative[:, 2] = metastasis_id, nulls[normal][:, 2]
                away = shipped(x[normal], t, negative, negative)
                out[normal] = away + weight * (shipped(x[normal], t, labels[normal], labels[normal]) - away)
            return out

        pipe._guided_output = types.MethodType(guided, pipe)
        return pipe

    return load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--guide", help="the weaker model of the autoguide variants (a model folder)")
    parser.add_argument("--weight", type=float, default=1.0, help="W of the variant [default: 1.0]")
    args, rest = parser.parse_known_args()
    if args.variant.startswith("autoguide") and not args.guide:
        parser.error(f"{args.variant} needs --guide")
    generator_quality.load_pipeline = guided_variant(args.variant, args.guide, args.weight)
    sys.argv = [sys.argv[0], *rest]
    generator_quality.main()


if __name__ == "__main__":
    main()
