"""A pixel-space refiner for generated studies: does a small diffusion model on the binned counts draw ribs?

    python docs/pixel_refiner/refiner.py train DATASET OUT [--steps 7000] [--batch 8] [--seed 0]
        [--init MODEL] [--device cpu]
    python docs/pixel_refiner/refiner.py refine OUT/model DATASET REFINED [--sigma-start 1.0] [--steps 12]

Every latent UNet so far loses the posterior ribs: a rib every 11 native pixels is 1.4 pixels of the 4×
latent grid, below its Nyquist limit, so the latent diffusion model has to draw ribs as a code across
channels and never learns to. This probe puts a second, small diffusion model where ribs are 5.5 pixels
apart: the 2×2-binned counts (512×128 per view, the posterior mirrored onto the anterior as in
``synthscan.generator.transform.to_model``), trained on 64-row windows, and used as SDXL uses its
refiner: a generated study is noised to ``--sigma-start`` and brought back, so the layout (body, organs,
lesions) comes from the generator and the fine structure from the refiner.

Counts, not rates, are what a hospital has, so the refiner learns like the autoencoder (Noise2Noise):
each study is split into two binomial halves A and B; the network sees A (scaled by the study's mean
binned count, doubled) plus Gaussian noise of SD sigma and predicts B on the same scale, i.e. the
expected counts. Its input's noise is thus sigma and A's Poisson noise (``POISSON_SD`` in these units,
about the trunk's), which EDM's preconditioning (Karras et al. 2022) gets as one effective level. A
generated study is refined from its own counts: its binomial half denoised (the expected counts it
shows), Gaussian noise of ``--sigma-start`` added, then a deterministic Euler solve of the
probability-flow ODE of the expected counts down to 0 in which the network sees, at each step, what it
saw in training: a fresh Poisson half of the current estimate plus the trajectory's Gaussian part. (A
first version solved on the effective level, Poisson part included, and fed the network the trajectory
itself; at the end it held Gaussian noise where a study's background has none, and a smoke test of two
studies on the step-500 weights drew a haze around the body.) The end is the expected counts;
upsampled like ``expected_from_rate``, kept to the study's
acquisition window (rows without counts stay empty), scaled to each view's counts and drawn as Poisson
counts from the study's seed. A diffusers ``UNet2DModel`` (no attention, so any number of rows) takes
the noisy views and the window's height in the image as a third channel, and sees the whole image as
overlapping 64-row windows blended with triangular weights, as in training.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import UNet2DModel
from scipy import ndimage
from tqdm.auto import tqdm

from synthscan.dataset import Dataset, Record
from synthscan.generator.transform import bin_counts, mirror_posterior

ROWS = 64  # window height, binned pixels
STRIDE = 32  # window step at refinement
SIGMA_DATA = 1.0  # the scaled counts have mean 1
POISSON_SD = 0.4  # SD of A's Poisson noise on the trunk, scaled units: sqrt(2 * 2 / 20) at mean count 20
SIGMA_MIN, SIGMA_MAX = 0.05, 5.0  # training noise levels, log-uniform


def binned(counts: np.ndarray) -> np.ndarray:
    """(2, 1024, 256) counts → (2, 512, 128) 2×2 sums, the posterior mirrored onto the anterior: the
    generator's model space before its intensity transform (exact: the sums are small integers)."""
    views = mirror_posterior(torch.as_tensor(counts[None].astype(np.float32)))
    return bin_counts(views, 2)[0].numpy().astype(np.int64)


def effective(sigma: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(sigma**2 + POISSON_SD**2)


def denoise(
    net: UNet2DModel,
    x: torch.Tensor,
    sigma: torch.Tensor,
    height: torch.Tensor,
    condition: torch.Tensor | None = None,
) -> torch.Tensor:
    """EDM-preconditioned estimate of the scaled expected counts from noisy views ``x`` (B, 2, R, C);
    ``condition``: more input channels before the height (``upsampler.py``'s blurred study)."""
    s = effective(sigma)[:, None, None, None]
    c_in = 1 / torch.sqrt(s**2 + SIGMA_DATA**2)
    c_skip = SIGMA_DATA**2 / (s**2 + SIGMA_DATA**2)
    c_out = s * SIGMA_DATA / torch.sqrt(s**2 + SIGMA_DATA**2)
    inputs = torch.cat([x * c_in, *([] if condition is None else [condition]), height], dim=1)
    timestep = 250 * torch.log(sigma.clamp_min(1e-3)) + 1000  # 0.05-5 (20) → 250-1400 (1750)
    return c_skip * x + c_out * net(inputs, timestep).sample


def network(condition_channels: int = 0) -> UNet2DModel:
    """The views, any condition channels and the height in; the expected counts of the views out."""
    return UNet2DModel(
        sample_size=(ROWS, 128),
        in_channels=3 + condition_channels,
        out_channels=2,
        block_out_channels=(16, 32, 64, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D",) * 4,
        up_block_types=("UpBlock2D",) * 4,
        norm_num_groups=8,
    )


def load_counts(dataset: Dataset, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """All studies binned and mirrored (uint16, memory-mapped cache) and each one's mean binned count."""
    images, scales = cache / "counts.npy", cache / "scales.npy"
    if not images.is_file():
        records = dataset.records
        out = np.lib.format.open_memmap(
            cache / "counts.tmp.npy", "w+", np.uint16, (len(records), 2, 512, 128)
        )
        means = np.empty(len(records))
        for i, study in enumerate(tqdm(dataset.iter_studies(records), total=len(records), desc="binning")):
            b = binned(study.counts)
            out[i] = b
            means[i] = b.mean()
        out.flush()
        del out
        np.save(scales, means)
        (cache / "counts.tmp.npy").rename(images)
    return np.load(images, mmap_mode="r"), np.load(scales)


def height_channel(start: int, rows: int, total: int = 512, cols: int = 128) -> torch.Tensor:
    """Each pixel's row in the whole image, -1 (top) to 1 (bottom), for a window starting at ``start``."""
    r = (torch.arange(start, start + rows, dtype=torch.float32) + 0.5) / total * 2 - 1
    return r[:, None].expand(rows, cols)[None]


def blurred(views: np.ndarray, blur: float) -> np.ndarray:
    """``upsampler.py``'s condition: (..., 2, rows, cols) scaled counts blurred within each view."""
    return ndimage.gaussian_filter(views, sigma=(0,) * (views.ndim - 2) + (blur, blur), mode="nearest")


def train(args: argparse.Namespace, blur: float | None = None, sigma_max: float = SIGMA_MAX) -> None:
    """Train (or resume) the refiner; with ``blur``, ``upsampler.py``'s network on the blurred study."""
    out = Path(args.out)
    (out / "model").mkdir(parents=True, exist_ok=True)
    counts, scales = load_counts(Dataset.open(args.data), Path(args.cache or out))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = network(0 if blur is None else 2)
    if args.init:  # warm start: another training's weights, a fresh optimizer
        net.load_state_dict(UNet2DModel.from_pretrained(args.init).state_dict())
    device = torch.device(args.device)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=0.0)
    state, step = out / "state.pt", 0
    if state.is_file():  # resume
        saved = torch.load(state, weights_only=False, map_location=device)
        net.load_state_dict(saved["net"])
        opt.load_state_dict(saved["opt"])
        step = saved["step"]
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"].cpu())
    log = (out / "log.jsonl").open("a")
    started, losses = time.time(), []
    while step < args.steps:
        index = rng.integers(0, len(counts), args.batch)
        starts = rng.integers(0, 512 - ROWS + 1, args.batch)
        c = np.stack([counts[i, :, s : s + ROWS] for i, s in zip(index, starts, strict=True)])
        condition = None
        if blur is not None:
            whole = blurred(np.stack([counts[i] / scales[i] for i in index]), blur)
            condition = torch.tensor(
                np.stack([whole[k, :, s : s + ROWS] for k, s in enumerate(starts)]), dtype=torch.float32
            ).to(device)
        a = rng.binomial(c, 0.5)
        scale = torch.tensor(scales[index] / 2, dtype=torch.float32)[:, None, None, None]  # half counts
        xa, xb = (
            (torch.tensor(a, dtype=torch.float32) / scale).to(device),
            (torch.tensor(c - a, dtype=torch.float32) / scale).to(device),
        )
        height = torch.stack([height_channel(int(s), ROWS) for s in starts]).to(device)
        sigma = torch.exp(torch.empty(args.batch).uniform_(math.log(SIGMA_MIN), math.log(sigma_max)))
        sigma = sigma.to(device)
        noisy = xa + sigma[:, None, None, None] * torch.randn(xa.shape).to(device)  # CPU draws: resumable
        s = effective(sigma)[:, None, None, None]
        weight = (s**2 + SIGMA_DATA**2) / (s * SIGMA_DATA) ** 2
        lr_scale = min(1.0, (step + 1) / 200)
        for group in opt.param_groups:
            group["lr"] = args.lr * lr_scale
        loss = (weight * (denoise(net, noisy, sigma, height, condition) - xb) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 50 == 0:
            log.write(
                json.dumps({"step": step, "loss": float(np.mean(losses)), "s": time.time() - started}) + "\n"
            )
            log.flush()
            losses = []
        if step % 500 == 0 or step == args.steps:
            tmp = out / "state.tmp.pt"
            torch.save(
                {
                    "net": net.state_dict(),
                    "opt": opt.state_dict(),
                    "step": step,
                    "rng": rng.bit_generator.state,
                    "torch_rng": torch.get_rng_state(),
                },
                tmp,
            )
            tmp.rename(state)
            net.save_pretrained(out / "model")
            print(f"step {step}: {time.time() - started:.0f} s", flush=True)


def windows(total: int = 512) -> tuple[list[int], torch.Tensor]:
    """Window starts covering ``total`` rows at ``STRIDE`` and each row's triangular blending weight."""
    starts = list(range(0, total - ROWS + 1, STRIDE))
    ramp = torch.minimum(torch.arange(ROWS) + 0.5, ROWS - torch.arange(ROWS) - 0.5)
    return starts, ramp / ramp.max()


@torch.inference_mode()
def denoise_image(
    net: UNet2DModel, x: torch.Tensor, sigma: float, condition: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`denoise` on a whole (1, 2, 512, 128) image through blended 64-row windows."""
    starts, ramp = windows(x.shape[2])
    crops = torch.cat([x[:, :, s : s + ROWS] for s in starts])
    height = torch.stack([height_channel(s, ROWS) for s in starts])
    if condition is not None:
        condition = torch.cat([condition[:, :, s : s + ROWS] for s in starts])
    estimate = denoise(net, crops, torch.full((len(starts),), sigma), height, condition)
    total = torch.zeros_like(x)
    weight = torch.zeros(1, 1, x.shape[2], 1)
    for k, s in enumerate(starts):
        total[:, :, s : s + ROWS] += estimate[k : k + 1] * ramp[:, None]
        weight[:, :, s : s + ROWS] += ramp[:, None]
    return total / weight


def karras(sigma_start: float, steps: int, rho: float = 7.0) -> list[float]:
    """``steps`` noise levels from ``sigma_start`` down to ``SIGMA_MIN`` (Karras spacing), then 0."""
    ramp = np.linspace(0, 1, steps)
    hi, lo = sigma_start ** (1 / rho), SIGMA_MIN ** (1 / rho)
    return [float(v) for v in (hi + ramp * (lo - hi)) ** rho] + [0.0]


def solve(
    net: UNet2DModel,
    x: torch.Tensor,
    estimate: torch.Tensor,
    sigmas: list[float],
    half_scale: float,
    rng: np.random.Generator,
    condition: torch.Tensor | None = None,
    churn: float = 0.0,
) -> torch.Tensor:
    """Euler steps of the expected counts' probability-flow ODE through ``sigmas`` (ending at 0), the
    network fed what it saw in training: a fresh Poisson half of the current estimate plus the
    trajectory's Gaussian part. ``churn`` > 0: Euler steps with churn, after Karras et al. 2022's
    algorithm 2 (no Heun correction, every level churned, gamma not capped at the paper's sqrt(2) - 1):
    before each step fresh Gaussian noise raises the level by a factor 1 + ``churn`` (never above the
    first level), so the network meets new noise, not only its own earlier estimates."""
    for sigma, following in zip(sigmas[:-1], sigmas[1:], strict=True):
        if churn:
            raised = min(sigma * (1 + churn), sigmas[0])
            fresh = torch.tensor(rng.standard_normal(x.shape), dtype=torch.float32)
            x, sigma = x + math.sqrt(raised**2 - sigma**2) * fresh, raised
        drawn = rng.poisson(np.clip(estimate.numpy(), 0, None) * half_scale) / half_scale
        estimate = denoise_image(
            net, x - estimate + torch.tensor(drawn, dtype=torch.float32), sigma, condition
        )
        x = estimate + following / sigma * (x - estimate)
    return x


def to_counts(rate: torch.Tensor, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A (2, 512, 128) model-space rate → Poisson counts on ``counts``' grid, rows and view totals."""
    rate = rate.clamp_min(0)
    rate[1] = rate[1].flip(-1)  # the posterior back to its own orientation
    rate = F.interpolate(rate[None], scale_factor=2, mode="bicubic", align_corners=False)[0].clamp_min(0)
    rate = rate.numpy() * (counts.sum(axis=2, keepdims=True) > 0)  # rows without counts stay empty
    totals = counts.sum(axis=(1, 2), dtype=np.int64)
    rate *= (totals / np.maximum(rate.sum(axis=(1, 2)), 1e-12))[:, None, None]
    return rng.poisson(rate).astype(np.uint16)


def refine_counts(
    net: UNet2DModel, counts: np.ndarray, sigma_start: float, steps: int, rng: np.random.Generator
) -> np.ndarray:
    """One study's (2, 1024, 256) counts → refined Poisson counts of the same per-view totals."""
    c = binned(counts)
    half_scale = c.mean() / 2
    estimate = denoise_image(
        net, torch.tensor(rng.binomial(c, 0.5) / half_scale, dtype=torch.float32)[None], SIGMA_MIN
    )
    sigmas = karras(sigma_start, steps)
    x = estimate + sigmas[0] * torch.tensor(rng.standard_normal(estimate.shape), dtype=torch.float32)
    return to_counts(solve(net, x, estimate, sigmas, half_scale, rng)[0], counts, rng)


def redraw(
    args: argparse.Namespace,
    provenance: dict,
    draw: Callable[[int, Record, np.ndarray], np.ndarray],
) -> None:
    """A new dataset ``args.out`` of ``args.data``'s studies (the first ``args.n`` of ``args.label``), each
    replaced by ``draw(position, record, counts)``, same identity, labels and seed."""
    source = Dataset.open(args.data)
    records = [r for r in source.records if not args.label or r.label == args.label]
    records = records[: args.n] if args.n else records
    target = Dataset.create(
        args.out,
        matrix=source.info.matrix,
        pixel_spacing_mm=source.info.pixel_spacing_mm,
        provenance={"redrawn_from": str(args.data), "by": str(args.model), **provenance},
    )
    with target.writer() as writer:
        for i, record in enumerate(tqdm(records, desc="redrawing")):
            writer.add(
                draw(i, record, source.read(record).counts),
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


def refine(args: argparse.Namespace) -> None:
    net = UNet2DModel.from_pretrained(args.model).eval()

    def draw(_: int, record: Record, counts: np.ndarray) -> np.ndarray:
        seed = (
            record.seed if record.seed is not None else int.from_bytes(record.study_id.encode()[-4:], "big")
        )
        rng = np.random.default_rng([seed, 7])
        return refine_counts(net, counts, args.sigma_start, args.steps, rng)

    redraw(args, {"sigma_start": args.sigma_start}, draw)


def command_line(doc: str, steps: int, redraw_command: str) -> tuple[argparse.ArgumentParser, ...]:
    """The ``train`` and redraw sub-commands' shared arguments (the parser and both sub-parsers)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("train")
    t.add_argument("data")
    t.add_argument("out")
    t.add_argument("--cache", default=None, help="folder of the binned counts [default: OUT]")
    t.add_argument("--steps", type=int, default=steps)
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--init", default=None, help="start from these weights (a saved model folder)")
    t.add_argument("--device", default="cpu", help="where to train (cuda on a GPU)")
    r = commands.add_parser(redraw_command)
    r.add_argument("model")
    r.add_argument("data")
    r.add_argument("out")
    return parser, t, r


def main() -> None:
    parser, _, r = command_line(__doc__, 7000, "refine")
    r.add_argument("--sigma-start", type=float, default=1.0)
    r.add_argument("--steps", type=int, default=12)
    r.add_argument("--label", default="", help="refine only this label's studies")
    r.add_argument("-n", type=int, default=0, help="the first n studies (0: all)")
    args = parser.parse_args()
    (train if args.command == "train" else refine)(args)


if __name__ == "__main__":
    main()
