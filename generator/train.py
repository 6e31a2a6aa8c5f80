"""Training of the generator: the autoencoder, then the latent diffusion UNet, then the saved pipeline.

A run folder holds::

    config.yaml, run.json, log.txt, metrics.jsonl      (synthscan.runs.RunDir)
    data/images.npy, data/index.json, data/latents.npz (caches, reused on resume and by the continuation)
    autoencoder/checkpoint/, autoencoder/final/        (training state; the trained autoencoder)
    diffusion/checkpoint/                              (training state incl. EMA weights)
    samples/<stage>-<step>.png                         (sample grids rendered like `synthscan view`)
    model/                                             (the SynthScanPipeline: load it with `--model`)
    base-model/, model-run/                            (with a continuation: the main stage's model, and
                                                        the finetune run that continues it into model/)
    restart-<i>/, restart-<i>-run/                     (with a soup: each restart; model/ their average)

Everything runs through 🤗 Accelerate, so the same command works on a CPU, a GPU or under
``accelerate launch`` with several processes (each process draws its own batches; the global batch
is ``batch_size`` x processes). Checkpoints are written to a temporary folder and swapped in, and
every random draw of step ``s`` is seeded by (seed, stage, s, process), so an interrupted run
resumes where it stopped and continues exactly as if it had not been interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator, PartialState
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel, compute_snr
from tqdm.auto import tqdm

import synthscan
from synthscan.atomic import atomic_open, atomic_write_text
from synthscan.config import ConfigError, dump_config, from_dict, load_config
from synthscan.dataset import Dataset, DatasetError, Record
from synthscan.generator.calibration import RateCalibration, check_edge_columns, fit_rate_calibration
from synthscan.generator.conditions import (
    FACTORS,
    UNKNOWN,
    condition_key,
    condition_table,
    factor_tables,
    split_key,
    study_factors,
)
from synthscan.generator.config import (
    ContinuationConfig,
    DiffusionConfig,
    DistillConfig,
    GeneratorConfig,
    TransformConfig,
)
from synthscan.generator.data import TrainingImages, random_crops, shared_images, training_records
from synthscan.generator.models import (
    ConditionedUNet,
    ConditionEncoder,
    build_autoencoder,
    build_noise_scheduler,
    build_sampler,
    build_unet,
    check_latent_patch,
    fold_latents,
)
from synthscan.generator.pipeline import SynthScanPipeline
from synthscan.generator.soup import average_models
from synthscan.generator.storage import BASE_MODEL_HEADING, demote_headings, read_card, save_model
from synthscan.generator.transform import ConditionLogNormal
from synthscan.runs import RunDir, cpu_model

log = logging.getLogger(__name__)

STAGES = ("autoencoder", "diffusion", "distillation")


def thin_counts(
    counts: torch.Tensor, share_range: tuple[float, float], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binomial thinning of (N, C, H, W) counts: the kept counts and each study's share (drawn from
    ``share_range``); kept and the rest are independent Poisson images if the counts are."""
    low, high = share_range
    share = low + (high - low) * torch.rand(len(counts), 1, 1, 1, generator=generator)
    return torch.binomial(counts, share.expand_as(counts), generator=generator), share


def split_counts(
    x: torch.Tensor, scale: torch.Tensor, share_range: tuple[float, float], generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent model images of each study's counts, by binomial thinning.

    Each count is kept in the first image with probability ``share`` (one draw per study from
    ``share_range``), the rest forms the second; both are Poisson if the counts are, independent, and
    normalised by their share, so either is an unbiased image of the same expectation as ``x``.
    """
    scale = scale.to(x)[:, None, None, None]
    counts = torch.round(x.square() * scale).cpu()
    kept, share = thin_counts(counts, share_range, generator)
    first = torch.sqrt(kept / (share * scale.cpu()))
    second = torch.sqrt((counts - kept) / ((1 - share) * scale.cpu()))
    return first.to(x), second.to(x)


class AutoencoderObjective(torch.nn.Module):
    """Poisson deviance of the decoded rate against held-out counts, plus a KL and an MSE anchor.

    With ``x = sqrt(counts / scale)`` the decoder's ``x_hat**2`` is the expected normalised count.
    Each study's counts are split by binomial thinning into two independent Poisson images
    (``split_range`` draws the input's share per study): the encoder sees one, the deviance scores the
    decoded rate against the other. Copying the input's noise then cannot lower the loss, so the
    deviance is minimised by the noise-free expectation and the code spends its capacity on anatomy
    (Noise2Noise, Lehtinen et al. 2018; binomial splitting of counts). Scored against its own input,
    an autoencoder this small trades ribs for noise. ``split_range=None`` scores against the input.
    ``latent_noise`` > 0 decodes each latent with added Gaussian noise of an SD drawn per study from
    [0, latent_noise] times the batch's latent deviation, so the decoder learns to draw a slightly wrong
    code as anatomy, not as hot spots. A small square-root-domain MSE gives well-conditioned gradients
    early in training. Only
    ``x_hat**2`` is ever used, and a whole output channel often flips sign early on, which the
    deviance cannot see; the MSE therefore compares ``|x_hat|``: against ``x_hat`` it pulled a
    flipped channel towards 0 and decoded that view a sixth too faint (issue 14).
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        kl_weight: float,
        mse_weight: float,
        split_range: tuple[float, float] | None = None,
        latent_noise: float = 0.0,
    ):
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight
        self.mse_weight = mse_weight
        self.split_range = split_range
        self.latent_noise = latent_noise

    def forward(
        self, x: torch.Tensor, scale: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """``x`` (B, 2, H, W) model images of studies with count ``scale`` (B,)."""
        target = x
        if self.split_range is not None:
            x, target = split_counts(x, scale, self.split_range, generator)
        posterior = self.vae.encode(x).latent_dist
        z = posterior.sample(generator=generator)
        if self.latent_noise:  # no draw otherwise: clean-code runs stay bit for bit what they were
            sd = self.latent_noise * torch.rand(len(z), 1, 1, 1, generator=generator).to(z)
            z = z + sd * z.detach().std() * torch.randn(z.shape, generator=generator).to(z)
        x_hat = self.vae.decode(z).sample
        observed = target.square()
        rate = x_hat.square() + 1e-4
        deviance = 2 * (torch.xlogy(observed, observed) - torch.xlogy(observed, rate) - observed + rate)
        deviance = deviance.mean()
        kl = posterior.kl().mean() / x[0].numel()
        mse = F.mse_loss(x_hat.abs(), target)
        loss = deviance + self.mse_weight * mse + self.kl_weight * kl
        parts = {"deviance": deviance.item(), "mse": mse.item(), "kl": kl.item()}
        return loss, parts


def _stage_generator(
    seed: int, stage: int, step: int, process: int
) -> tuple[np.random.Generator, torch.Generator]:
    """NumPy and torch generators of one training step of one process (resume-exact randomness)."""
    sequence = np.random.SeedSequence([seed, stage, step, process])
    torch_seed = int(sequence.generate_state(1, dtype=np.uint64)[0] >> 1)
    return np.random.default_rng(sequence), torch.Generator().manual_seed(torch_seed)


def _save_checkpoint(accelerator: Accelerator, folder: Path, step: int) -> None:
    """``accelerator.save_state`` into a temporary folder, then swap it in (never a half-written checkpoint).

    Every process saves its own random state, so all of them call this.
    """
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(tmp / "step.json", json.dumps({"step": step}))
        if folder.exists():
            folder.replace(old)
        tmp.replace(folder)
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


EMA_STATE = "custom_checkpoint_1.pkl"
"""accelerate's file of the second object registered for checkpointing: a stage's EMA (the first is
its learning-rate schedule)."""


def _resume(accelerator: Accelerator, folder: Path, ema: bool) -> int:
    """Load the latest checkpoint of a stage (or the previous one if a swap was interrupted); its step.

    A checkpoint saved with a moving average of the weights (``ema``) unlike this run is refused:
    accelerate would fail on the missing file, or silently drop the saved average.
    """
    for candidate in (folder, folder.with_name(folder.name + ".old")):
        if (candidate / "step.json").is_file():
            saved = (candidate / EMA_STATE).is_file()
            if saved != ema:
                raise ConfigError(
                    f"{candidate} was saved {'with' if saved else 'without'} a moving average of the weights "
                    "(autoencoder.ema_decay for the autoencoder stage); resume with the setting it was "
                    "started with, or give a new --out"
                )
            accelerator.load_state(str(candidate))
            step = json.loads((candidate / "step.json").read_text())["step"]
            log.info("resumed %s at step %d", candidate, step)
            return int(step)
    return 0


def run_stage(
    stage: str,
    model: torch.nn.Module,
    objective: Callable[[torch.nn.Module, np.random.Generator, torch.Generator], tuple[torch.Tensor, dict]],
    *,
    steps: int,
    learning_rate: float,
    warmup_steps: int,
    batch_size: int,
    folder: Path,
    config: GeneratorConfig | DistillConfig,
    run: RunDir | None,
    ema: EMAModel | None = None,
    on_sample: Callable[[int], None] | None = None,
    progress: bool = True,
) -> torch.nn.Module:
    """The shared optimisation loop: AdamW, cosine schedule, gradient clipping, EMA, checkpoints, metrics.

    Each stage has its own ``Accelerator``, so a stage's checkpoint holds only that stage's state.
    """
    accelerator = Accelerator()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, warmup_steps, steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(schedule)
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    checkpoint = folder / "checkpoint"
    start = _resume(accelerator, checkpoint, ema is not None)
    if ema is not None:
        ema.to(accelerator.device)  # a checkpoint's EMA weights are loaded onto the CPU
    main = accelerator.is_main_process
    stage_index = STAGES.index(stage)
    bar = tqdm(total=steps, initial=start, desc=stage, disable=not (progress and main), unit="step")
    clock, images_seen = time.perf_counter(), 0
    for step in range(start, steps):
        rng, generator = _stage_generator(config.seed, stage_index, step, accelerator.process_index)
        model.train()
        loss, parts = objective(model, rng, generator)
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(accelerator.unwrap_model(model).parameters())
        images_seen += batch_size * accelerator.num_processes
        done = step + 1
        if done % config.log_every == 0 or done == steps:
            elapsed = time.perf_counter() - clock
            rate = images_seen / max(elapsed, 1e-9)
            value = loss.item()
            bar.set_postfix(loss=f"{value:.4f}", img_s=f"{rate:.1f}")
            if run is not None:
                run.log_metrics(
                    stage=stage,
                    step=done,
                    loss=value,
                    lr=schedule.get_last_lr()[0],
                    images_per_s=rate,
                    **parts,
                )
            clock, images_seen = time.perf_counter(), 0
        if done % config.checkpoint_every == 0 or done == steps:
            _save_checkpoint(accelerator, checkpoint, done)
        if on_sample is not None and main and config.sample_every and done % config.sample_every == 0:
            on_sample(done)
        bar.update(1)
    bar.close()
    return accelerator.unwrap_model(model)


def train_autoencoder(
    images: TrainingImages,
    config: GeneratorConfig,
    out: Path,
    run: RunDir | None,
    *,
    progress: bool = True,
) -> AutoencoderKL:
    """Stage 1, or the saved result of a finished stage 1."""
    final = out / "autoencoder" / "final"
    if (final / "config.json").is_file():
        return AutoencoderKL.from_pretrained(final)
    ae = config.autoencoder
    torch.manual_seed(config.seed)
    split = tuple(ae.split_range) if ae.split_range else None
    objective_module = AutoencoderObjective(
        build_autoencoder(ae), ae.kl_weight, ae.mse_weight, split, latent_noise=ae.latent_noise
    )
    ema = EMAModel(objective_module.parameters(), decay=ae.ema_decay) if ae.ema_decay is not None else None
    scales = torch.from_numpy(np.asarray(images.scales, dtype=np.float32))
    state = PartialState()

    def objective(model, rng, generator):
        index = rng.integers(0, len(images), ae.batch_size)
        x = torch.from_numpy(random_crops(images.images, index, ae.crop_rows, rng, ae.edge_crop_prob)).to(
            state.device
        )
        return model(x, scales[index], generator)

    trained = run_stage(
        "autoencoder",
        objective_module,
        objective,
        steps=ae.steps,
        learning_rate=ae.learning_rate,
        warmup_steps=ae.warmup_steps,
        batch_size=ae.batch_size,
        folder=out / "autoencoder",
        config=config,
        run=run,
        ema=ema,
        progress=progress,
    )
    if ema is not None:
        ema.copy_to(trained.parameters())
    if state.is_main_process:
        vae = trained.vae.eval()
        mean, std = cached_latents(vae, images, out / "data", progress=progress)
        vae.register_to_config(scaling_factor=float(1.0 / np.sqrt(mean.var() + np.mean(std**2))))
        vae.save_pretrained(final)
    state.wait_for_everyone()
    return AutoencoderKL.from_pretrained(final)


def pretrained_autoencoder(config: GeneratorConfig) -> SynthScanPipeline:
    """The generator named by ``autoencoder.from_model``, whose autoencoder stage 1 then reuses.

    Raises ``ConfigError`` (before any output) if its autoencoder or binning differs from ``config``'s,
    since the latent grid, the UNet's input and the card follow the config.
    """
    from synthscan.generator.storage import ModelError, load_pipeline, model_dir, shipped_models

    name = config.autoencoder.from_model
    if not (model_dir(name) / "model_index.json").is_file():
        shipped = ", ".join(shipped_models())
        raise ConfigError(
            f"autoencoder.from_model {name} is not a synthscan generator (no model_index.json); give a "
            f"folder written by `synthscan train` (RUN/model) or a shipped model's name ({shipped})"
        )
    try:
        source = load_pipeline(name)
    except ModelError as error:  # a damaged model: the message names the file
        raise ConfigError(f"autoencoder.from_model: {error}") from None
    ae, have = config.autoencoder, source.vae.config
    fields = ("block_out_channels", "layers_per_block", "latent_channels", "norm_num_groups")
    differ = [f for f in fields if list(np.atleast_1d(getattr(ae, f))) != list(np.atleast_1d(have[f]))]
    if source.config.bin_factor != config.transform.bin_factor:
        differ.append(f"transform.bin_factor ({source.config.bin_factor})")
    if differ:
        raise ConfigError(
            f"autoencoder.from_model {source.path} has another autoencoder: {', '.join(differ)} differ; "
            f"set them as in its config ({Path(source.path) / 'vae' / 'config.json'})"
        )
    if ae.latent_scaling == "global" and have.get("latents_mean") is not None:  # not silently dropped
        raise ConfigError(
            f"autoencoder.from_model {source.path} scales its latents per channel; set "
            "autoencoder.latent_scaling=channel"
        )
    return source


def cached_latents(vae: AutoencoderKL, images: TrainingImages, folder: Path, *, progress: bool = True):
    """Posterior means and deviations of the training images (``latents.npz``, rebuilt when stale).

    The cache is keyed by the images' content and the autoencoder's weights.
    """
    digest = hashlib.sha256(images.key.encode())
    for tensor in vae.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    key = digest.hexdigest()
    path = folder / "latents.npz"
    if path.is_file():
        with np.load(path) as cached:
            if str(cached["key"]) == key:
                return cached["mean"], cached["std"]
    mean, std = encode_latents(vae, images, progress=progress)
    with atomic_open(path, "wb") as handle:
        np.savez(handle, mean=mean, std=std, key=np.array(key))
    return mean, std


def register_channel_scaling(vae: AutoencoderKL, latents: tuple[np.ndarray, np.ndarray]) -> None:
    """Per-channel mean and deviation of the training posteriors as the autoencoder's ``latents_mean``
    and ``latents_std`` (diffusers' names), with ``scaling_factor`` 1: each channel of the UNet's latents
    then has mean 0 and variance 1 (the posteriors' spread included, as the global factor has)."""
    mean, std = latents
    variance = mean.var(axis=(0, 2, 3)) + np.mean(std.astype(np.float64) ** 2, axis=(0, 2, 3))
    vae.register_to_config(
        latents_mean=mean.mean(axis=(0, 2, 3), dtype=np.float64).tolist(),
        latents_std=np.sqrt(variance).tolist(),
        scaling_factor=1.0,
    )


def fold_posterior(
    latents: tuple[np.ndarray, np.ndarray], patch: int, vae_config
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and deviations on the UNet's grid (:func:`fold_latents`; exact: the posterior
    is Gaussian per element), first shifted and scaled per channel by the autoencoder's
    ``latents_mean`` / ``latents_std`` where it has them; :func:`draw_latents` then applies
    ``scaling_factor``."""
    shift, scale = vae_config.get("latents_mean"), vae_config.get("latents_std")
    if shift is not None:
        shift, scale = (np.asarray(v, np.float32).reshape(1, -1, 1, 1) for v in (shift, scale))
        latents = (latents[0] - shift) / scale, latents[1] / scale
    mean, std = (fold_latents(torch.from_numpy(a), patch).numpy() for a in latents)
    return mean, std


def draw_latents(
    mean: torch.Tensor, std: torch.Tensor, index: np.ndarray, scaling: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A step's scaled latents of the studies ``index``, each drawn from its cached posterior, and its
    noise, both drawn on the posteriors' device.

    On the CPU from ``generator`` itself, so CPU runs stay bit for bit what they were; on an accelerator
    from a generator of that device seeded like it (the draws repeat on the same kind of device): drawn
    on the CPU and copied over, they starve a GPU (``docs/gpu_continuation``).
    """
    device = mean.device
    if device.type != "cpu":
        generator = torch.Generator(device).manual_seed(generator.initial_seed())
    index = torch.as_tensor(index, device=device)
    mu, sigma = mean[index], std[index]
    z0 = (mu + sigma * torch.randn(mu.shape, generator=generator, device=device)) * scaling
    return z0, torch.randn(z0.shape, generator=generator, device=device)


def draw_timesteps(
    diffusion: DiffusionConfig, timesteps: int, n: int, generator: torch.Generator
) -> torch.Tensor:
    """``n`` training timesteps: uniform, or with the least noisy ones drawn more often
    (``DiffusionConfig.low_noise_multiplier``; diffusers' ``timestep_bias_strategy="earlier"``)."""
    if diffusion.low_noise_multiplier == 1:
        return torch.randint(0, timesteps, (n,), generator=generator)
    weights = torch.ones(timesteps)
    weights[: max(1, round(diffusion.low_noise_portion * timesteps))] = diffusion.low_noise_multiplier
    return torch.multinomial(weights, n, replacement=True, generator=generator)


def known_condition_records(
    pipeline: SynthScanPipeline, records: list[Record], what: str, where: Path
) -> list[Record]:
    """The ``records`` whose condition ``pipeline`` was trained on; raise (before any output) if none."""
    conditions = list(pipeline.config.conditions)
    known = [r for r in records if condition_key(r.label, r.perugini_grade) in conditions]
    if not known:
        raise DatasetError(f"{where} holds no {what} of the model's conditions {conditions}")
    if len(known) < len(records):
        left_out = len(records) - len(known)
        log.warning("leaving out %d studies whose condition the model does not know", left_out)
    return known


def pretrained_conditioning(
    pipeline: SynthScanPipeline, records: list[Record]
) -> tuple[np.ndarray, np.ndarray | int, UNet2DModel | ConditionedUNet]:
    """What training a trained model further needs: its class ids of the studies, the null ids, the network.

    ``records`` hold studies of the model's conditions only (:func:`known_condition_records`). The
    class ids are (N,), or (N, factors) for factor models, where a factor value the model does not
    know gets that factor's null class; the network takes them (the UNet, or the UNet with its
    condition encoder).
    """
    conditions = list(pipeline.config.conditions)
    class_ids = np.array([conditions.index(condition_key(r.label, r.perugini_grade)) for r in records])
    if not pipeline.factors:
        return class_ids, len(conditions), pipeline.unet
    tables = pipeline.factors
    ids = [[_factor_id(tables[n], f[n]) for n in FACTORS] for f in map(study_factors, records)]
    class_ids = np.concatenate([class_ids[:, None], np.array(ids)], axis=1)
    null_ids = pipeline.condition_encoder.null_ids(1)[0].cpu().numpy()
    return class_ids, null_ids, ConditionedUNet(pipeline.unet, pipeline.condition_encoder)


@torch.no_grad()
def encode_latents(
    vae: AutoencoderKL, images: TrainingImages, *, batch: int = 16, progress: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior mean and standard deviation of every training study's latent (float32 arrays)."""
    device = next(vae.parameters()).device
    means, stds = [], []
    for start in tqdm(range(0, len(images), batch), desc="encode", disable=not progress):
        x = torch.from_numpy(np.asarray(images.images[start : start + batch], dtype=np.float32)).to(device)
        posterior = vae.encode(x).latent_dist
        means.append(posterior.mean.float().cpu().numpy())
        stds.append(posterior.std.float().cpu().numpy())
    return np.concatenate(means), np.concatenate(stds)


def train_diffusion(
    unet: UNet2DModel | ConditionedUNet,
    latents: tuple[np.ndarray, np.ndarray],
    class_ids: np.ndarray,
    null_ids: np.ndarray | int,
    scaling_factor: float,
    diffusion: DiffusionConfig,
    noise_scheduler: DDPMScheduler,
    out: Path,
    config: GeneratorConfig,
    run: RunDir | None,
    *,
    on_sample: Callable[[UNet2DModel, int], None] | None = None,
    progress: bool = True,
) -> UNet2DModel:
    """Stage 2: denoising score matching on latents drawn from the cached posteriors; returns EMA weights.

    ``class_ids`` are (N,) condition ids, or (N, factors) ids of a :class:`ConditionedUNet`;
    ``null_ids`` is what a dropped example gets (all its factors at their null class together).
    """
    device = PartialState().device
    # on the device that draws the noise: 256 KiB per study at the shipped 8x128x32 latents, per process
    mean, std = (torch.from_numpy(a).to(device) for a in latents)
    ema = EMAModel(unet.parameters(), decay=diffusion.ema_decay)
    timesteps = noise_scheduler.config.num_train_timesteps

    def objective(model, rng, generator):
        index = rng.integers(0, len(mean), diffusion.batch_size)
        z0, noise = draw_latents(mean, std, index, scaling_factor, generator)
        t = draw_timesteps(diffusion, timesteps, len(index), generator).to(device)
        labels = torch.from_numpy(class_ids[index]).to(device)
        dropped = torch.rand(len(index), generator=generator).to(device) < diffusion.cond_drop_prob
        nulls = torch.as_tensor(null_ids, device=device).expand_as(labels)
        labels = torch.where(dropped.view(-1, *[1] * (labels.ndim - 1)), nulls, labels)
        zt = noise_scheduler.add_noise(z0, noise, t)
        target = (
            noise if diffusion.prediction_type == "epsilon" else noise_scheduler.get_velocity(z0, noise, t)
        )
        prediction = model(zt, t, class_labels=labels).sample
        if diffusion.snr_gamma is None:
            return F.mse_loss(prediction, target), {}
        snr = compute_snr(noise_scheduler, t)
        velocity = diffusion.prediction_type == "v_prediction"
        weights = snr.clamp(max=diffusion.snr_gamma) / (snr + 1 if velocity else snr)
        per_example = F.mse_loss(prediction, target, reduction="none").mean(dim=(1, 2, 3))
        return (weights * per_example).mean(), {}

    def sample_with_ema(step: int) -> None:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
        on_sample(unet, step)
        ema.restore(unet.parameters())

    trained = run_stage(
        "diffusion",
        unet,
        objective,
        steps=diffusion.steps,
        learning_rate=diffusion.learning_rate,
        warmup_steps=diffusion.warmup_steps,
        batch_size=diffusion.batch_size,
        folder=out / "diffusion",
        config=config,
        run=run,
        ema=ema,
        on_sample=sample_with_ema if on_sample else None,
        progress=progress,
    )
    ema.copy_to(trained.parameters())
    return trained.eval()


def _sample_grid(pipeline: SynthScanPipeline, path: Path) -> None:
    """One study per condition key at fixed seeds, rendered like ``synthscan view``."""
    from synthscan.render import render_grid

    keys = list(pipeline.config.conditions)
    labels = [split_key(k) for k in keys]
    output = pipeline(
        [label for label, _ in labels],
        [grade if label == "amyloidosis" else None for label, grade in labels],
        generator=[torch.Generator().manual_seed(i) for i in range(len(keys))],
    )
    grid = render_grid(list(zip(output.counts, keys, strict=True)), columns=len(keys))
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def factor_weights(
    records: list[Record], tables: dict[str, list[str]]
) -> dict[str, dict[str, dict[str, float]]]:
    """Per label, each factor's value proportions in the training data (unspecified factors are drawn so)."""
    weights: dict[str, dict[str, dict[str, float]]] = {}
    for label in dict.fromkeys(r.label for r in records):
        factors = [study_factors(r) for r in records if r.label == label]
        weights[label] = {
            name: {v: sum(f[name] == v for f in factors) / len(factors) for v in table}
            for name, table in tables.items()
        }
    return weights


def count_distributions(images: TrainingImages) -> dict[str, dict[str, dict[str, float]]]:
    """What a pipeline stores of the training counts: per condition, the total counts' and the
    posterior/anterior ratio's log-normal (no individual study's value)."""
    return {
        "total_counts": ConditionLogNormal.fit(images.keys, images.totals).to_dict(),
        "view_balance": ConditionLogNormal.fit(images.keys, images.view_ratios, floor=1e-6).to_dict(),
    }


def assemble_pipeline(
    vae: AutoencoderKL,
    unet: UNet2DModel | ConditionedUNet,
    noise_scheduler: DDPMScheduler,
    images: TrainingImages,
    conditions: list[str],
    config: GeneratorConfig,
    dataset: Dataset,
    records: list[Record],
    calibration: RateCalibration | None = None,
) -> SynthScanPipeline:
    """The inference pipeline with what it learned from the training set stored in its config
    (``calibration``: its decoder's, :func:`decoder_calibration`)."""
    amyloid = Counter(k for k in images.keys if split_key(k)[0] == "amyloidosis")
    grade_weights = {k: n / sum(amyloid.values()) for k, n in sorted(amyloid.items())}
    encoder = unet.encoder.eval() if isinstance(unet, ConditionedUNet) else None
    tables = factor_tables([study_factors(r) for r in records]) if encoder is not None else None
    pipeline = SynthScanPipeline(
        vae=vae.eval(),
        unet=(unet.unet if encoder is not None else unet).eval(),
        scheduler=build_sampler(noise_scheduler),
        condition_encoder=encoder,
        conditions=conditions,
        grade_weights=grade_weights,
        **count_distributions(images),
        matrix=dataset.info.matrix,
        pixel_spacing_mm=dataset.info.pixel_spacing_mm,
        bin_factor=config.transform.bin_factor,
        default_steps=config.sampling.steps,
        default_guidance=config.sampling.guidance_scale,
        label_guidance=config.sampling.label_guidance,
        burden_guidance=config.sampling.burden_guidance,
        grade_guidance=config.sampling.grade_guidance,
        guidance_interval=config.sampling.guidance_interval,
        label_guidance_interval=config.sampling.label_guidance_interval,
        label_final_sigma=config.sampling.label_final_sigma,
        burden_final_sigma=config.sampling.burden_final_sigma,
        latent_patch=config.unet.latent_patch,
        eval_chunk=config.sampling.eval_chunk,
        tracer=Counter(r.tracer for r in records).most_common(1)[0][0],
        training_sources=sorted({r.source for r in records}),
        acquisition_window=images.window.to_dict(),
        factors=tables,
        factor_weights=factor_weights(records, tables) if tables else None,
        rate_calibration=calibration.to_dict() if calibration is not None else None,
    )
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def _check_calibration_columns(config: GeneratorConfig, dataset: Dataset) -> None:
    """Refuse, before any training, edge columns that the model images are too narrow for."""
    transform = config.transform
    if transform.calibration_studies:
        width = dataset.info.matrix[1] // transform.bin_factor
        setting, images = "transform.calibration_edge_columns", f"{dataset.root}'s"
        check_edge_columns(width, transform.calibration_edge_columns, setting, images)


def decoder_calibration(
    vae: AutoencoderKL, images: TrainingImages, config: GeneratorConfig
) -> RateCalibration | None:
    """The rate calibration of ``vae`` on ``config.transform.calibration_studies`` of the training
    images (None when that is 0); seeded, so every process fits the one the main process saves."""
    transform = config.transform
    if not transform.calibration_studies:
        return None
    return fit_rate_calibration(
        vae,
        images.images,
        studies=transform.calibration_studies,
        edge_columns=transform.calibration_edge_columns,
        seed=config.seed,
    )


def hardware(device: torch.device) -> str:
    """The device a card names: the GPU's name, or the CPU's with the instruction set its kernels use."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type != "cpu":
        return device.type
    return f"cpu ({cpu_model()['name']}, {torch.backends.cpu.get_cpu_capability()} kernels)"


def model_card(
    config: GeneratorConfig,
    dataset: Dataset,
    images: TrainingImages,
    seconds: float,
    state: PartialState,
    source: SynthScanPipeline | None = None,
) -> str:
    """The card written beside the weights: data, command, config, time and hardware; ``source``: the
    model whose autoencoder was reused."""
    counts = Counter(images.keys)
    provenance = dataset.info.provenance
    reused = [] if source is None else [
        f"- autoencoder: `{Path(source.path).name}`'s (sha256 {source.sha256[:12]}…), weights unchanged; "
        "the config's autoencoder training settings were not used"
        + ("; its latents scaled per channel again (`latent_scaling: channel`)"
           if config.autoencoder.latent_scaling == "channel" else "")
    ]  # fmt: skip
    lines = [
        "# synthscan generator",
        "",
        "Class-conditional latent diffusion model of 99mTc whole-body bone scans (anterior + posterior",
        "photon counts). Trained by `synthscan train`; load with `synthscan sample --model THIS_FOLDER`.",
        "",
        "## Training data",
        "",
        f"- dataset: `{dataset.root.name}` ({len(images)} studies; matrix {dataset.info.matrix[0]}x"
        f"{dataset.info.matrix[1]} at {dataset.info.pixel_spacing_mm} mm)",
        f"- site: {provenance.get('site', provenance.get('source', 'not recorded'))}",
        f"- studies per condition: {dict(sorted(counts.items()))}",
        "",
        "## Training",
        "",
        f"- synthscan {synthscan.__version__}, torch {torch.__version__}",
        f"- hardware: {state.num_processes} process(es) on {hardware(state.device)},"
        f" {torch.get_num_threads()} threads per process",
        f"- wall time: {seconds / 3600:.2f} h",
        *reused,
        "",
        "```yaml",
        dump_config(config).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


def train(data: str | Path, config: GeneratorConfig, out: str | Path, *, progress: bool = True) -> Path:
    """Train the autoencoder, then the diffusion UNet, on ``data`` into ``out``; returns ``out/model``.

    With ``config.continuation.steps`` the main stage's model is saved to ``out/base-model`` and
    :func:`finetune` continues its UNet into ``out/model`` (``out/model-run``), as the two commands
    would; with ``soup_snr_gammas`` once per Min-SNR-γ into ``out/restart-<i>``, and ``out/model`` is
    their weight average. Rerunning with the same ``out`` resumes from the latest checkpoint of the
    unfinished stage.
    """
    state = PartialState()
    main = state.is_main_process
    out = Path(out)
    continuation = config.continuation
    model_folder = out / ("base-model" if continuation.steps else "model")
    gammas = [continuation.snr_gamma, *continuation.soup_snr_gammas]
    if not continuation.steps:
        continued = {}
    elif len(gammas) == 1:
        continued = {out / "model": gammas[0]}
    else:  # a soup: one restart per Min-SNR-γ, averaged into out/model
        continued = {out / f"restart-{i}": gamma for i, gamma in enumerate(gammas, 1)}
    _check_continued_runs(out, continued, continuation)
    dataset = Dataset.open(data)
    records = training_records(dataset, tuple(config.sources))
    grid = tuple(n // config.downsampling for n in dataset.info.matrix)
    check_latent_patch((config.autoencoder.latent_channels, *grid), config.unet.latent_patch)
    _check_calibration_columns(config, dataset)
    source = pretrained_autoencoder(config) if config.autoencoder.from_model else None
    run = RunDir(out, config, kind="generator") if main else None
    try:
        images = shared_images(
            state, dataset, records, config.transform.bin_factor, out / "data", progress=progress
        )
        conditions = condition_table(images.keys)
        log.info("training on %d studies; conditions %s", len(images), conditions)
        if source is None:
            vae = train_autoencoder(images, config, out, run, progress=progress).to(state.device)
        else:
            vae = source.vae.to(state.device)
        latents = cached_latents(vae, images, out / "data", progress=progress) if main else None
        state.wait_for_everyone()
        latents = latents or cached_latents(vae, images, out / "data", progress=False)
        calibration = decoder_calibration(vae, images, config)
        if config.autoencoder.latent_scaling == "channel":
            register_channel_scaling(vae, latents)
        latents = fold_posterior(latents, config.unet.latent_patch, vae.config)
        torch.manual_seed(config.seed)
        tables = factor_tables([study_factors(r) for r in records])
        class_ids = np.array([conditions.index(k) for k in images.keys])
        null_ids: np.ndarray | int = len(conditions)
        if tables is None:
            unet = build_unet(config.unet, latents[0].shape[1:], len(conditions))
        else:  # tracer and burden beside the condition: a class embedding summed over factors
            sizes = [("condition", len(conditions))] + [(n, len(tables[n])) for n in FACTORS]
            network = build_unet(config.unet, latents[0].shape[1:], None)
            unet = ConditionedUNet(
                network, ConditionEncoder(sizes, network.time_embedding.linear_1.out_features)
            )
            factors = [study_factors(r) for r in records]
            ids = [[tables[n].index(f[n]) for n in FACTORS] for f in factors]
            class_ids = np.concatenate([class_ids[:, None], np.array(ids)], axis=1)
            null_ids = np.array([n for _, n in sizes])
        noise_scheduler = build_noise_scheduler(config.diffusion)

        def on_sample(model: UNet2DModel | ConditionedUNet, step: int) -> None:
            pipeline = assemble_pipeline(
                vae, model, noise_scheduler, images, conditions, config, dataset, records, calibration
            )
            _sample_grid(pipeline, out / "samples" / f"diffusion-{step:06d}.png")
            model.train()

        unet = train_diffusion(
            unet,
            latents,
            class_ids,
            null_ids,
            vae.config.scaling_factor,
            config.diffusion,
            noise_scheduler,
            out,
            config,
            run,
            on_sample=on_sample,
            progress=progress,
        )
        if main:
            pipeline = assemble_pipeline(
                vae, unet, noise_scheduler, images, conditions, config, dataset, records, calibration
            )
            if source is not None:  # its autoencoder saw what its model was trained on ("real": patients)
                sources = {*pipeline.config.training_sources, *source.config.training_sources}
                pipeline.register_to_config(training_sources=sorted(sources))
            _sample_grid(pipeline, out / "samples" / "final.png")
            seconds = run.active_seconds()
            card = model_card(config, dataset, images, seconds, state, source)
            save_model(pipeline, model_folder, card=card)
            run.log_metrics(stage="done", seconds=seconds)
        state.wait_for_everyone()
    finally:
        if run is not None:
            run.close()
    if not continuation.steps:
        return model_folder
    models = [
        finetune(
            model_folder,
            dataset,
            folder,
            steps=continuation.steps,
            seed=continuation.seed,
            learning_rate=continuation.learning_rate,
            batch_size=config.diffusion.batch_size,
            sources=tuple(sorted({r.source for r in records})),
            snr_gamma=gamma,
            calibration_studies=config.transform.calibration_studies,
            image_cache=out / "data",
            progress=progress,
        )
        for folder, gamma in continued.items()
    ]
    if len(models) == 1:
        return models[0]
    try:
        if main:
            average_models(models, out / "model")
    finally:  # an error on the main process must not leave the others waiting
        state.wait_for_everyone()
    return out / "model"


def _check_continued_runs(
    out: Path, continued: dict[Path, float | None], continuation: ContinuationConfig
) -> None:
    """Before the main stage: refuse a rerun whose continuation settings would not make the continued
    runs ``out`` holds (it would replace them, or stop after the main stage), naming the settings.
    ``continued``: the folder of each model the continuation makes, with its Min-SNR-γ."""
    runs = [out / "model-run", *sorted(out.glob("restart-*-run"))]
    stray = [r for r in runs if r.is_dir() and r.with_name(r.name.removesuffix("-run")) not in continued]
    if stray:
        hint = ""
        if stray == [out / "model-run"] and out / "restart-1" in continued:
            hint = " (to keep it as the soup's first restart, rename model and model-run to restart-1(-run))"
        raise ValueError(
            f"{out} holds a continued model ({stray[0]}) that these continuation settings would not "
            f"make{hint}; rerun it with its continuation settings, or train into a new --out"
        )
    for folder, gamma in continued.items():
        recorded = folder.with_name(folder.name + "-run") / "config.yaml"
        if not recorded.is_file():
            continue
        was = load_config(GeneratorConfig, recorded)
        now = (continuation.steps, continuation.learning_rate, continuation.seed, gamma)
        if (was.diffusion.steps, was.diffusion.learning_rate, was.seed, was.diffusion.snr_gamma) != now:
            raise ValueError(
                f"{recorded.parent} was started with steps {was.diffusion.steps}, learning rate "
                f"{was.diffusion.learning_rate:g}, seed {was.seed} and Min-SNR-γ {was.diffusion.snr_gamma}; "
                "rerun with those continuation settings, or train into a new --out"
            )


def _factor_id(table: list[str], value: str) -> int:
    """Class id of a factor value; the null class (``len(table)``) for one the model does not know."""
    if value in table:
        return table.index(value)
    return table.index(UNKNOWN) if UNKNOWN in table else len(table)


def finetune(
    model: str | Path | None,
    dataset: Dataset,
    out: str | Path,
    *,
    steps: int,
    seed: int = 0,
    learning_rate: float = 1.0e-4,
    batch_size: int = 16,
    sources: tuple[str, ...] = ("real",),
    patients: Collection[str] | None = None,
    snr_gamma: float | None = None,
    low_noise_multiplier: float = 1.0,
    low_noise_portion: float = 0.2,
    calibration_studies: int = 64,
    image_cache: Path | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune a generator's UNet on ``dataset``'s studies of ``sources`` so samples match that site.

    ``patients`` restricts it to those patients' studies: a classifier's training split, so the
    generator never sees the patients it is validated and tested on. ``snr_gamma`` weighs the loss
    by Min-SNR-γ (``DiffusionConfig.snr_gamma``; None: the plain mean squared error);
    ``low_noise_multiplier`` and ``low_noise_portion`` bias its timesteps (``DiffusionConfig``).
    ``image_cache``: the folder of the training-image cache (default ``OUT-run/data``; rebuilt if it
    holds other studies), so a training's restarts share its main stage's instead of writing one copy
    each.

    The autoencoder is kept; the total-count distribution and, where the model has one, the decoder's
    rate calibration (on ``calibration_studies`` of them, the model's edge columns) are refitted on the
    site's studies (its count and background levels; ``synthscan calibrate`` adds a calibration to a
    model without one). Studies whose condition the
    model does not know are left out (and logged). With ``sources=("simulated",)`` it continues a
    simulator-trained model's training on simulated studies, and the model still has seen no patient.
    """
    from synthscan.generator.storage import load_pipeline

    pipeline = load_pipeline(model)
    base, base_sha256 = Path(pipeline.path), pipeline.sha256
    if pipeline.config.get("guidance_distilled"):
        raise ValueError(f"{pipeline.path} is a distilled model; fine-tune its teacher instead")
    out = Path(out)
    records = training_records(dataset, tuple(sources))
    if patients is not None:
        records = [r for r in records if r.patient_id in patients]
    records = known_condition_records(pipeline, records, f"{'/'.join(sources)} studies", dataset.root)
    diffusion = {
        "steps": steps,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "warmup_steps": min(50, max(steps // 10, 1)),
        "snr_gamma": snr_gamma,
        "low_noise_multiplier": low_noise_multiplier,
        "low_noise_portion": low_noise_portion,
        "prediction_type": pipeline.scheduler.config.prediction_type,  # the base model's target
    }
    transform = {"bin_factor": pipeline.config.bin_factor, "calibration_studies": 0}
    if base_calibration := pipeline.calibration:
        edges = base_calibration.edge_columns  # refitted alike
        transform |= {"calibration_studies": calibration_studies, "calibration_edge_columns": edges}
    settings = {"seed": seed, "sample_every": 0, "transform": transform}
    # checked against the config's own bounds: a bad value fails here, naming its field
    config = from_dict(GeneratorConfig, {**settings, "diffusion": diffusion}, where="finetune")
    _check_calibration_columns(config, dataset)
    work = out.with_name(out.name + "-run")
    recorded = work / "config.yaml"
    # parsed, so a field added since the run started compares at its default
    if recorded.is_file() and load_config(GeneratorConfig, recorded) != config:
        raise ValueError(
            f"{work} was started with other settings ({recorded}); resume with the same steps, learning "
            "rate, batch size, seed, --snr-gamma and --low-noise-*, or write to a new folder"
        )
    state = PartialState()
    main = state.is_main_process
    run = RunDir(work, config, kind="generator-finetune") if main else None
    try:
        images = shared_images(
            state,
            dataset,
            records,
            config.transform.bin_factor,
            image_cache or work / "data",
            progress=progress,
        )
        class_ids, null_ids, network = pretrained_conditioning(pipeline, records)
        network.train()
        latents = encode_latents(pipeline.vae, images, progress=progress and main)
        mean, std = fold_posterior(latents, pipeline.config.get("latent_patch", 1), pipeline.vae.config)
        noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        trained = train_diffusion(
            network,
            (mean, std),
            class_ids,
            null_ids,
            pipeline.vae.config.scaling_factor,
            config.diffusion,
            noise_scheduler,
            work,
            config,
            run,
            progress=progress,
        )
        if isinstance(trained, ConditionedUNet):
            pipeline.register_modules(unet=trained.unet, condition_encoder=trained.encoder.eval())
        else:
            pipeline.register_modules(unet=trained)
        trained_on = sorted({*pipeline.config.training_sources, *sources})  # "real": it has now seen patients
        calibration = decoder_calibration(pipeline.vae, images, config)  # at the site's background
        pipeline.register_to_config(
            **count_distributions(images),
            training_sources=trained_on,
            rate_calibration=calibration.to_dict() if calibration is not None else None,
        )
        if main:
            _sample_grid(pipeline, work / "samples" / "final.png")
            seconds = run.active_seconds()
            save_model(
                pipeline,
                out,
                card=finetune_card(base, base_sha256, config.diffusion, dataset, records, seconds, state),
            )
            run.log_metrics(stage="done", seconds=seconds)
        state.wait_for_everyone()
    finally:
        if run is not None:
            run.close()
    return out


def finetune_card(
    base: Path,
    base_sha256: str,
    diffusion: DiffusionConfig,
    dataset: Dataset,
    records: list[Record],
    seconds: float,
    state: PartialState,
) -> str:
    """A fine-tuned model's card: what the fine-tune did, then its base model's card (headings demoted),
    so the model carries its whole history."""
    base_lines = read_card(base).splitlines()
    counts = Counter(r.source for r in records)
    weighting = f", Min-SNR-γ {diffusion.snr_gamma:g} loss weighting" if diffusion.snr_gamma else ""
    if diffusion.low_noise_multiplier != 1:
        weighting += (
            f", the least noisy {diffusion.low_noise_portion:g} of the timesteps drawn "
            f"{diffusion.low_noise_multiplier:g}× as often"
        )
    lines = [
        "# Fine-tuned synthscan generator",
        "",
        f"The diffusion UNet of the model below (`{base.name}`, sha256 {base_sha256}) trained "
        f"{diffusion.steps} more steps at batch {diffusion.batch_size} by `synthscan finetune`: a fresh "
        f"AdamW state, {diffusion.warmup_steps} warm-up steps and a cosine decay from "
        f"{diffusion.learning_rate:g}, EMA {diffusion.ema_decay}{weighting}; the autoencoder kept.",
        "",
        f"- data: `{dataset.root.name}`, {len(records)} studies ({dict(sorted(counts.items()))})",
        f"- synthscan {synthscan.__version__}, torch {torch.__version__}; {state.num_processes} process(es)"
        f" on {hardware(state.device)}, {torch.get_num_threads()} threads per process",
        f"- wall time: {seconds / 3600:.2f} h",
        "",
        BASE_MODEL_HEADING,
        "",
        *demote_headings(base_lines),
        "",
    ]
    return "\n".join(lines)


def calibrate(
    model: str | Path | None,
    dataset: Dataset,
    out: str | Path,
    *,
    studies: int = 64,
    edge_columns: int | None = None,
    seed: int = 0,
    sources: tuple[str, ...] = ("real",),
) -> Path:
    """Fit a saved generator's decoder rate calibration on ``studies`` of ``dataset``'s studies of
    ``sources`` (``edge_columns``: see :class:`RateCalibration`; None: the model's own, else 8) and
    save the model with it at ``out``; its weights stay as they are.

    For models trained before calibrations existed, and to move a model to a site's background level
    without training (``synthscan.generator.calibration``). The calibration is pooled pixel means, but
    fitted on real studies the model is marked as having seen patients, as by ``finetune``.
    """
    from synthscan.generator.augment import check_model_fits
    from synthscan.generator.storage import load_pipeline
    from synthscan.generator.transform import to_model

    pipeline = load_pipeline(model)
    base, base_sha256 = Path(pipeline.path), pipeline.sha256
    check_model_fits(dataset, pipeline)
    if edge_columns is None:
        own = pipeline.calibration
        edge_columns = own.edge_columns if own is not None else TransformConfig.calibration_edge_columns
    width = pipeline.matrix[1] // pipeline.config.bin_factor
    check_edge_columns(width, edge_columns, "--edge-columns", f"{base.name}'s")
    records = training_records(dataset, tuple(sources))
    records = known_condition_records(pipeline, records, f"{'/'.join(sources)} studies", dataset.root)
    rng = np.random.default_rng(seed)
    chosen = [
        records[i] for i in np.sort(rng.choice(len(records), min(studies, len(records)), replace=False))
    ]
    counts = np.stack([s.counts for s in dataset.iter_studies(chosen)])
    images = to_model(counts, pipeline.config.bin_factor)[0].numpy()
    calibration = fit_rate_calibration(
        pipeline.vae, images, studies=len(images), edge_columns=edge_columns, seed=seed
    )
    pipeline.register_to_config(
        rate_calibration=calibration.to_dict(),
        training_sources=sorted({*pipeline.config.training_sources, *sources}),
    )
    lines = [
        "# Calibrated synthscan generator",
        "",
        f"The model below (`{base.name}`, sha256 {base_sha256}) with its decoder's rate calibration "
        f"(`rate_calibration` in `model_index.json`, {len(calibration.tables)} tables: the outermost "
        f"{edge_columns} columns of each side and the rest) fitted by "
        f"`synthscan calibrate` on {len(chosen)} {'/'.join(sources)} studies of `{dataset.root.name}` "
        f"(seed {seed}); its weights unchanged.",
        "",
        BASE_MODEL_HEADING,
        "",
        *demote_headings(read_card(base).splitlines()),
        "",
    ]
    return save_model(pipeline, out, card="\n".join(lines))
