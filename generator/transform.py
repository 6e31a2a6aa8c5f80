"""The count transform between a study's photon counts and the generator's model space.

A whole-body study is two Poisson count images. The generator does not try to reproduce counting
noise with a network; it models the *expected* counts and draws the noise exactly:

1. The posterior view is mirrored left-right, so both channels show the same anatomy at the same pixel.
2. Counts are summed over ``bin_factor`` x ``bin_factor`` blocks (sums of Poisson counts stay Poisson).
   The expected counts are smooth on this scale: the collimator blur alone has an FWHM of 3 or more
   native pixels (7-15 mm at 2.4 mm pixels, DOMAIN.md).
3. Each study is divided by its mean binned count ``scale`` (the count level differs between sites
   and acquisitions and says nothing about disease) and square-rooted: ``x = sqrt(b / scale)``.
   The square root compresses the bladder-to-soft-tissue range and roughly stabilises Poisson variance.
   Its inverse is exact: ``b = scale * x**2``.

Generation runs the other way: the decoder's ``x`` gives an expected binned image ``x**2``; it is
upsampled to the native grid with a count-preserving bilinear interpolation, scaled so the study holds
its total counts (drawn from the training distribution, see :class:`TotalCounts`), the posterior is
mirrored back to as-acquired, and Poisson counts are drawn with the sample's own generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def mirror_posterior(views: torch.Tensor) -> torch.Tensor:
    """Flip the posterior channel (index 1) left-right; its own inverse."""
    return torch.stack([views[:, 0], views[:, 1].flip(-1)], dim=1)


def bin_counts(counts: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum ``factor`` x ``factor`` blocks of (B, 2, H, W) counts; H and W must be multiples of ``factor``."""
    if factor == 1:
        return counts
    height, width = counts.shape[-2:]
    if height % factor or width % factor:
        raise ValueError(f"matrix {height}x{width} is not a multiple of the bin factor {factor}")
    return F.avg_pool2d(counts, factor) * factor * factor


def to_model(counts: np.ndarray | torch.Tensor, bin_factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Counts (B, 2, H, W) as stored → model images ``x`` (B, 2, H/f, W/f) and per-study ``scale`` (B,)."""
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float32)
    if counts.ndim != 4 or counts.shape[1] != 2:
        raise ValueError(f"counts must have shape (B, 2, H, W), got {tuple(counts.shape)}")
    binned = bin_counts(mirror_posterior(counts), bin_factor)
    scale = binned.mean(dim=(1, 2, 3)).clamp_min(1e-6)
    return torch.sqrt(binned / scale[:, None, None, None]), scale


def from_model(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Exact inverse of :func:`to_model`'s intensity transform: binned counts ``scale * x**2``."""
    return scale[:, None, None, None] * x.square()


def expected_counts(x: torch.Tensor, total_counts: torch.Tensor, bin_factor: int) -> torch.Tensor:
    """Decoded model images → expected native counts (B, 2, H, W), posterior as acquired.

    The rate is the square of the decoder output, exactly as in the autoencoder's training loss. Each
    study is scaled so both views together hold ``total_counts``; the split between the views is the
    decoder's.
    """
    rate = x.square()
    if bin_factor > 1:
        rate = F.interpolate(rate, scale_factor=bin_factor, mode="bilinear", align_corners=False)
    total = rate.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
    rate = rate * (total_counts.to(rate)[:, None, None, None] / total)
    return mirror_posterior(rate)


def poisson_counts(rate: torch.Tensor, generators: Sequence[torch.Generator]) -> np.ndarray:
    """Draw Poisson counts for each study of ``rate`` (B, 2, H, W) with that study's own generator."""
    if len(generators) != len(rate):
        raise ValueError(f"{len(generators)} generators for {len(rate)} studies")
    drawn = [torch.poisson(r.float(), generator=g) for r, g in zip(rate, generators, strict=True)]
    counts = torch.stack(drawn).to(torch.int64).numpy()
    dtype = np.uint16 if counts.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
    return counts.astype(dtype)


@dataclass(frozen=True)
class TotalCounts:
    """Log-normal distribution of a study's total counts (both views) per condition key.

    Fitted on the training set and stored in the pipeline, so synthetic studies land in the training
    count range; only a mean and a standard deviation per condition are kept (no individual totals).
    """

    log_mean: Mapping[str, float]
    log_std: Mapping[str, float]

    @classmethod
    def fit(cls, keys: Sequence[str], totals: Sequence[float]) -> TotalCounts:
        logs = np.log(np.maximum(np.asarray(totals, dtype=np.float64), 1.0))
        keys = list(keys)
        pooled = (float(logs.mean()), float(logs.std()))
        mean, std = {}, {}
        for key in sorted(set(keys)):
            values = logs[[k == key for k in keys]]
            mean[key], std[key] = (float(values.mean()), float(values.std())) if len(values) >= 2 else pooled
        return cls(mean, std)

    def draw(self, key: str, generator: torch.Generator) -> float:
        """One total drawn with ``generator`` (the sample's own, so the draw is reproducible)."""
        z = float(torch.randn((), generator=generator))
        return math.exp(self.log_mean[key] + self.log_std[key] * z)

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {"log_mean": dict(self.log_mean), "log_std": dict(self.log_std)}
