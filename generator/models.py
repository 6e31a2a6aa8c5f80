"""Builders of the generator's diffusers components from :mod:`synthscan.generator.config`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, ModelMixin, UNet2DModel, UniPCMultistepScheduler
from diffusers.configuration_utils import ConfigMixin, register_to_config
from torch import nn

from synthscan.generator.config import AutoencoderConfig, DiffusionConfig, UNetConfig


class ConditionEncoder(ModelMixin, ConfigMixin):
    """The class embedding of a model with factor conditions: one table per factor, summed.

    ``tables`` pairs each factor (``condition``, ``tracer``, ``burden``) with its number of classes;
    each table has one more row, the factor's null class of classifier-free guidance. The UNet takes
    the summed vector as its class embedding (``class_embed_type="identity"``), so each factor can
    be dropped to its null class on its own in training.
    """

    @register_to_config
    def __init__(self, tables: list[tuple[str, int]], embedding_dim: int):
        super().__init__()
        # a list of (factor, classes) pairs, not a dict: the saved config sorts dict keys, and the order
        # of the tables is the order of the ids
        self.embeddings = nn.ModuleDict({name: nn.Embedding(n + 1, embedding_dim) for name, n in tables})

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, factors) class ids, in the order of ``tables``, → (B, embedding_dim)."""
        return sum(table(ids[:, i]) for i, table in enumerate(self.embeddings.values()))

    def null_ids(self, batch: int, device: torch.device | None = None) -> torch.Tensor:
        """Every factor at its null class."""
        return torch.tensor([[n for _, n in self.config.tables]] * batch, device=device)


def build_autoencoder(config: AutoencoderConfig) -> AutoencoderKL:
    """A fully convolutional ``AutoencoderKL`` (no mid-block attention, so it trains on crops)."""
    levels = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=2,
        out_channels=2,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        mid_block_add_attention=False,
    )


def fold_latents(latents: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, C, H, W) autoencoder latents → (B, C·patch², H/patch, W/patch), the UNet's input."""
    return latents if patch == 1 else F.pixel_unshuffle(latents, patch)


def unfold_latents(latents: torch.Tensor, patch: int) -> torch.Tensor:
    """The inverse of :func:`fold_latents`: the UNet's latents back on the autoencoder's grid."""
    return latents if patch == 1 else F.pixel_shuffle(latents, patch)


def _channel_statistics(vae_config, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The config's ``latents_mean`` / ``latents_std`` as (1, C, 1, 1) tensors like ``like``; None without."""
    if vae_config.get("latents_mean") is None:
        return None
    return tuple(
        torch.tensor(vae_config[k], dtype=like.dtype, device=like.device).view(1, -1, 1, 1)
        for k in ("latents_mean", "latents_std")
    )


def latents_to_unet(latents: torch.Tensor, vae_config) -> torch.Tensor:
    """Autoencoder latents (B, C, H, W) → the UNet's units, by diffusers' convention: ``latents *
    scaling_factor``, or per channel ``(latents - latents_mean) * scaling_factor / latents_std`` when the
    config has them (``autoencoder.latent_scaling: channel``)."""
    channels = _channel_statistics(vae_config, latents)
    if channels is None:
        return latents * vae_config.scaling_factor
    mean, std = channels
    return (latents - mean) * vae_config.scaling_factor / std


def latents_from_unet(latents: torch.Tensor, vae_config) -> torch.Tensor:
    """The inverse of :func:`latents_to_unet`: the decoder's input."""
    channels = _channel_statistics(vae_config, latents)
    if channels is None:
        return latents / vae_config.scaling_factor
    mean, std = channels
    return latents * std / vae_config.scaling_factor + mean


def global_scaling_factor(vae_config) -> float:
    """The autoencoder's one latent scale, for experiment code under ``docs/`` that adds noise or leaks
    in the UNet's units with it; a per-channel autoencoder (``autoencoder.latent_scaling: channel``) is
    refused, since one number does not convert its latents."""
    if vae_config.get("latents_mean") is not None:
        raise ValueError(
            "this experiment assumes one global latent scale; the model's autoencoder is scaled per "
            "channel (autoencoder.latent_scaling: channel): run it on a model trained with 'global'"
        )
    return vae_config.scaling_factor


def check_latent_patch(latent_shape: tuple[int, int, int], patch: int) -> None:
    """Refuse a ``latent_patch`` that does not divide the autoencoder's latent grid."""
    _, rows, cols = latent_shape
    if rows % patch or cols % patch:
        raise ValueError(
            f"unet.latent_patch {patch} does not divide the {rows}x{cols} latent grid; choose a divisor "
            "of both, or change autoencoder.block_out_channels"
        )


def build_unet(
    config: UNetConfig, latent_shape: tuple[int, int, int], num_conditions: int | None
) -> UNet2DModel:
    """A ``UNet2DModel`` on latents of ``latent_shape`` with one class per condition plus the null class.

    ``num_conditions=None``: the class embedding comes from a :class:`ConditionEncoder` instead.
    """
    channels, rows, cols = latent_shape
    return UNet2DModel(
        sample_size=(rows, cols),
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in config.attention_levels),
        up_block_types=tuple(
            "AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention_levels)
        ),
        norm_num_groups=config.norm_num_groups,
        dropout=config.dropout,
        num_class_embeds=None if num_conditions is None else num_conditions + 1,
        class_embed_type=None if num_conditions is not None else "identity",
    )


def build_noise_scheduler(config: DiffusionConfig) -> DDPMScheduler:
    """The training (forward-process) scheduler."""
    return DDPMScheduler(
        num_train_timesteps=config.num_train_timesteps,
        beta_schedule=config.beta_schedule,
        beta_start=config.beta_start,
        beta_end=config.beta_end,
        prediction_type=config.prediction_type,
        clip_sample=False,
    )


def build_sampler(noise_scheduler: DDPMScheduler) -> UniPCMultistepScheduler:
    """UniPC (bh2 predictor-corrector) with Karras sigmas on the same noise schedule.

    At 10 steps it lands as close to the converged sample as DPM-Solver++(2M) does at 12
    (``benchmarks/solver_accuracy.py``), so it needs a sixth fewer network evaluations.
    """
    return UniPCMultistepScheduler.from_config(noise_scheduler.config, solver_order=2, use_karras_sigmas=True)


class ConditionedUNet(nn.Module):
    """A UNet with its :class:`ConditionEncoder`, trained together (``class_labels`` are factor ids)."""

    def __init__(self, unet: UNet2DModel, encoder: ConditionEncoder):
        super().__init__()
        self.unet, self.encoder = unet, encoder

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor):
        return self.unet(sample, timestep, class_labels=self.encoder(class_labels))
