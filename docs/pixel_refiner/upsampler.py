"""A cascade's second stage on the binned counts: fine structure drawn from noise, given a blurred study.

    python docs/pixel_refiner/upsampler.py train DATASET OUT [--steps 4000] [--blur 2.5] [--init MODEL]
    python docs/pixel_refiner/upsampler.py sample OUT/model DATASET SAMPLED [--label normal] [-n 40]
        [--churn 0]

``refiner.py`` keeps ribs but cannot add them: noise that hides a long rib's absence hides the layout
too. A cascaded diffusion model (Ho et al. 2022; Imagen) avoids that: its second stage is conditioned on
a low-resolution image and draws the fine structure from pure noise, so a rib-less condition is no
evidence against ribs, it is what every training study's condition looks like. Here the condition is
the study's scaled binned counts blurred by a Gaussian of ``--blur`` binned pixels (SD; 2.5 passes 2 %
of the ribs' 5.5-pixel period and 36 % of an 11-pixel one, about what the 4× latent grid keeps), given
as two more input channels; the rest is ``refiner.py``'s Noise2Noise training, windows and sampler, the
sampler starting from pure noise of SD ``SIGMA_TOP``. A generated or held-out study is redrawn from its
own blurred counts: layout from the study, fine structure from the upsampler.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import refiner
import torch
from diffusers import UNet2DModel
from refiner import binned, blurred, command_line, karras, redraw, solve, to_counts

from synthscan.dataset import Record

SIGMA_TOP = 20.0  # training noise levels are log-uniform in SIGMA_MIN-SIGMA_TOP; sampling starts here


def train(args: argparse.Namespace) -> None:
    (Path(args.out) / "model").mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "model" / "upsampler.json").write_text(json.dumps({"blur": args.blur}))
    refiner.train(args, blur=args.blur, sigma_max=SIGMA_TOP)


def sample_counts(
    net, blur: float, counts: np.ndarray, steps: int, rng: np.random.Generator, churn: float = 0.0
) -> np.ndarray:
    """A study redrawn from its blurred counts: (2, 1024, 256) Poisson counts of the same per-view totals;
    ``churn``: :func:`refiner.solve`'s."""
    c = binned(counts)
    half_scale = c.mean() / 2
    condition = torch.tensor(blurred(c / (2 * half_scale), blur), dtype=torch.float32)[None]
    sigmas = karras(SIGMA_TOP, steps)
    x = sigmas[0] * torch.tensor(rng.standard_normal(condition.shape), dtype=torch.float32)
    # the first estimate is the condition
    rate = solve(net, x, condition, sigmas, half_scale, rng, condition, churn)
    return to_counts(rate[0], counts, rng)


def sample(args: argparse.Namespace) -> None:
    net = UNet2DModel.from_pretrained(args.model).eval()
    blur = json.loads((Path(args.model) / "upsampler.json").read_text())["blur"]

    def draw(position: int, _: Record, counts: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng([position, 11])
        return sample_counts(net, blur, counts, args.steps, rng, args.churn)

    redraw(args, {"blur": blur, "churn": args.churn}, draw)


def main() -> None:
    parser, t, s = command_line(__doc__, 4000, "sample")
    t.add_argument("--blur", type=float, default=2.5)
    s.add_argument("--steps", type=int, default=18)
    s.add_argument("--churn", type=float, default=0.0, help="Euler with churn, EDM alg. 2 (0: ODE)")
    s.add_argument("--label", default="normal")
    s.add_argument("-n", type=int, default=40)
    args = parser.parse_args()
    (train if args.command == "train" else sample)(args)


if __name__ == "__main__":
    main()
