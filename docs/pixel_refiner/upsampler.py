"""A cascade's second stage on the binned counts: fine structure drawn from noise, given a blurred study.

    python docs/pixel_refiner/upsampler.py train DATASET OUT [--steps 4000] [--blur 2.5]
    python docs/pixel_refiner/upsampler.py sample OUT/model DATASET SAMPLED [--label normal] [-n 40]

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
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from refiner import (
    ROWS,
    SIGMA_DATA,
    SIGMA_MIN,
    binned,
    effective,
    height_channel,
    karras,
    load_counts,
    windows,
)
from scipy import ndimage
from tqdm.auto import tqdm

from synthscan.dataset import Dataset

SIGMA_TOP = 20.0  # training noise levels are log-uniform in SIGMA_MIN-SIGMA_TOP; sampling starts here


def blurred(views: np.ndarray, blur: float) -> np.ndarray:
    """The condition: (..., 2, rows, cols) scaled counts blurred within each view."""
    return ndimage.gaussian_filter(views, sigma=(0,) * (views.ndim - 2) + (blur, blur), mode="nearest")


def denoise(net, x, sigma, condition, height) -> torch.Tensor:
    s = effective(sigma)[:, None, None, None]
    c_in = 1 / torch.sqrt(s**2 + SIGMA_DATA**2)
    c_skip = SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2)
    c_out = s * SIGMA_DATA / torch.sqrt(s**2 + SIGMA_DATA**2)
    inputs = torch.cat([x * c_in, condition, height], dim=1)
    timestep = 250 * torch.log(sigma.clamp_min(1e-3)) + 1000
    return c_skip * x + c_out * net(inputs, timestep).sample


def network() -> UNet2DModel:
    return UNet2DModel(
        sample_size=(ROWS, 128),
        in_channels=5,
        out_channels=2,
        block_out_channels=(16, 32, 64, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 4,
        up_block_types=("UpBlock2D",) * 4,
        norm_num_groups=8,
    )


def train(args: argparse.Namespace) -> None:
    out = Path(args.out)
    (out / "model").mkdir(parents=True, exist_ok=True)
    (out / "model" / "upsampler.json").write_text(json.dumps({"blur": args.blur}))
    counts, scales = load_counts(Dataset.open(args.data), Path(args.cache))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = network()
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    log = (out / "log.jsonl").open("a")
    started, losses = time.time(), []
    for step in range(1, args.steps + 1):
        index = rng.integers(0, len(counts), args.batch)
        starts = rng.integers(0, 512 - ROWS + 1, args.batch)
        whole = np.stack([counts[i] for i in index]).astype(np.float64)
        condition = blurred(whole / scales[index][:, None, None, None], args.blur)
        c = np.stack([whole[k, :, s : s + ROWS] for k, s in enumerate(starts)]).astype(np.int64)
        cond = torch.tensor(
            np.stack([condition[k, :, s : s + ROWS] for k, s in enumerate(starts)]), dtype=torch.float32
        )
        a = rng.binomial(c, 0.5)
        scale = torch.tensor(scales[index] / 2, dtype=torch.float32)[:, None, None, None]  # half counts
        xa = torch.tensor(a, dtype=torch.float32) / scale
        xb = torch.tensor(c - a, dtype=torch.float32) / scale
        height = torch.stack([height_channel(int(s), ROWS) for s in starts])
        sigma = torch.exp(torch.empty(args.batch).uniform_(math.log(SIGMA_MIN), math.log(SIGMA_TOP)))
        noisy = xa + sigma[:, None, None, None] * torch.randn_like(xa)
        s = effective(sigma)[:, None, None, None]
        weight = (s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, step / 200)
        loss = (weight * (denoise(net, noisy, sigma, cond, height) - xb) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 50 == 0:
            entry = {"step": step, "loss": float(np.mean(losses)), "s": time.time() - started}
            log.write(json.dumps(entry) + "\n")
            log.flush()
            losses = []
        if step % 500 == 0 or step == args.steps:
            net.save_pretrained(out / "model")
            print(f"step {step}: {time.time() - started:.0f} s", flush=True)


@torch.inference_mode()
def denoise_image(net, x: torch.Tensor, sigma: float, condition: torch.Tensor) -> torch.Tensor:
    starts, ramp = windows(x.shape[2])
    crops = torch.cat([x[:, :, s : s + ROWS] for s in starts])
    conds = torch.cat([condition[:, :, s : s + ROWS] for s in starts])
    height = torch.stack([height_channel(s, ROWS) for s in starts])
    estimate = denoise(net, crops, torch.full((len(starts),), sigma), conds, height)
    total, weight = torch.zeros_like(x), torch.zeros(1, 1, x.shape[2], 1)
    for k, s in enumerate(starts):
        total[:, :, s : s + ROWS] += estimate[k : k + 1] * ramp[:, None]
        weight[:, :, s : s + ROWS] += ramp[:, None]
    return total / weight


def sample_counts(net, blur: float, counts: np.ndarray, steps: int, rng: np.random.Generator) -> np.ndarray:
    """A study redrawn from its blurred counts: (2, 1024, 256) Poisson counts of the same per-view totals."""
    c = binned(counts)
    half_scale = c.mean() / 2
    condition = torch.tensor(blurred(c / (2 * half_scale), blur), dtype=torch.float32)[None]

    def half(rate: torch.Tensor) -> torch.Tensor:
        drawn = rng.poisson(np.clip(rate.numpy(), 0, None) * half_scale) / half_scale
        return torch.tensor(drawn, dtype=torch.float32)

    sigmas = karras(SIGMA_TOP, steps)
    estimate = condition
    x = sigmas[0] * torch.tensor(rng.standard_normal(condition.shape), dtype=torch.float32)
    for sigma, following in zip(sigmas[:-1], sigmas[1:], strict=True):
        estimate = denoise_image(net, x - estimate + half(estimate), sigma, condition)
        x = estimate + following / sigma * (x - estimate)
    rate = x.clamp_min(0)[0]
    rate[1] = rate[1].flip(-1)
    rate = F.interpolate(rate[None], scale_factor=2, mode="bicubic", align_corners=False)[0].clamp_min(0)
    rate = rate.numpy() * (counts.sum(axis=2, keepdims=True) > 0)
    totals = counts.sum(axis=(1, 2), dtype=np.int64)
    rate *= (totals / np.maximum(rate.sum(axis=(1, 2)), 1e-12))[:, None, None]
    return rng.poisson(rate).astype(np.uint16)


def sample(args: argparse.Namespace) -> None:
    net = UNet2DModel.from_pretrained(args.model).eval()
    blur = json.loads((Path(args.model) / "upsampler.json").read_text())["blur"]
    source = Dataset.open(args.data)
    records = [r for r in source.records if not args.label or r.label == args.label]
    records = records[: args.n] if args.n else records
    target = Dataset.create(
        args.out,
        matrix=source.info.matrix,
        pixel_spacing_mm=source.info.pixel_spacing_mm,
        provenance={"upsampled_from": str(args.data), "upsampler": str(args.model)},
    )
    with target.writer() as writer:
        for i, record in enumerate(tqdm(records, desc="upsampling")):
            rng = np.random.default_rng([i, 11])
            drawn = sample_counts(net, blur, source.read(record).counts, args.steps, rng)
            writer.add(
                drawn,
                study_id=record.study_id,
                patient_id=record.patient_id,
                label=record.label,
                perugini_grade=record.perugini_grade,
                source=record.source,
                site=record.site,
                tracer=record.tracer,
                seed=record.seed,
                extra={k: v for k, v in record.extra.items() if not k.startswith("file_")},
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train")
    t.add_argument("data")
    t.add_argument("out")
    t.add_argument("--cache", default=None, help="folder of refiner.py's binned counts [default: OUT]")
    t.add_argument("--steps", type=int, default=4000)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--blur", type=float, default=2.5)
    t.add_argument("--seed", type=int, default=0)
    s = commands.add_parser("sample")
    s.add_argument("model")
    s.add_argument("data")
    s.add_argument("out")
    s.add_argument("--steps", type=int, default=18)
    s.add_argument("--label", default="normal")
    s.add_argument("-n", type=int, default=40)
    args = parser.parse_args()
    if args.command == "train":
        args.cache = args.cache or args.out
        train(args)
    else:
        sample(args)


if __name__ == "__main__":
    main()
