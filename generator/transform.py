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
upsampled to the native grid by bicubic interpolation (clamped at 0), cut to the camera's acquisition
window (:class:`AcquisitionWindow`), scaled so the study holds its total counts (drawn from the
training distribution, see :class:`ConditionLogNormal`), split between the views in a posterior/anterior
ratio drawn from the training distribution as well (models fitted with one), the posterior is
mirrored back to as-acquired, and Poisson counts are drawn with the sample's own generator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from synthscan.generator.calibration import RateCalibration
from synthscan.generator.config import body_start_limit

MARGIN_QUANTILES = 21
"""Quantiles (0, 5, ..., 100 %) of the training margins an :class:`AcquisitionWindow` stores."""


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


def expected_counts(
    x: torch.Tensor,
    total_counts: torch.Tensor,
    bin_factor: int,
    window: AcquisitionWindow | None = None,
    margin_draws: torch.Tensor | None = None,
    posterior_ratio: torch.Tensor | None = None,
    calibration: RateCalibration | None = None,
) -> torch.Tensor:
    """Decoded model images → expected native counts (B, 2, H, W), posterior as acquired.

    The rate is the square of the decoder output, exactly as in the autoencoder's training loss, mapped
    through the decoder's ``calibration`` where the model has one (the count each decoded level stands
    for, :mod:`synthscan.generator.calibration`), set to
    exactly 0 outside each study's acquisition ``window`` (margins picked by ``margin_draws``). Each
    study is scaled so both views together hold ``total_counts``, split between the views so that the
    posterior holds ``posterior_ratio`` times the anterior's counts; without it the split is the
    decoder's, which autoencoders missed by 8-15 % (``posterior_over_anterior_ratio`` in
    ``benchmarks/generator_fine_structure.py``). Upsampling is bicubic: on the simulator's noise-free
    studies a 2x2 binning round trip keeps 87 % of the power at 0.1-0.2 cycles/pixel (ribs, vertebral
    end plates) with it, 59 % with bilinear interpolation.
    """
    return expected_from_rate(
        decoded_rate(x, calibration), total_counts, bin_factor, window, margin_draws, posterior_ratio
    )


def expected_from_rate(
    rate: torch.Tensor,
    total_counts: torch.Tensor,
    bin_factor: int,
    window: AcquisitionWindow | None = None,
    margin_draws: torch.Tensor | None = None,
    posterior_ratio: torch.Tensor | None = None,
) -> torch.Tensor:
    """:func:`expected_counts` from the binned rate the decoded images stand for (:func:`decoded_rate`)."""
    mask = window.mask(rate, bin_factor, margin_draws) if window is not None else None
    if bin_factor > 1:
        rate = F.interpolate(rate, scale_factor=bin_factor, mode="bicubic", align_corners=False).clamp_min(0)
    if mask is not None:
        rate = rate * mask
    totals = total_counts.to(rate)[:, None, None, None]
    if posterior_ratio is None:
        rate = rate * (totals / rate.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12))
    else:
        ratio = posterior_ratio.to(rate)[:, None, None, None]
        shares = torch.cat([1 / (1 + ratio), ratio / (1 + ratio)], dim=1)  # anterior, posterior
        rate = rate * (totals * shares / rate.sum(dim=(2, 3), keepdim=True).clamp_min(1e-12))
    return mirror_posterior(rate)


def decoded_rate(x: torch.Tensor, calibration: RateCalibration | None = None) -> torch.Tensor:
    """The binned rate that decoded model images ``x`` stand for: ``x**2``, through the decoder's
    ``calibration`` where the model has one (the rate :func:`expected_counts` scales and windows)."""
    rate = x.square()
    return calibration.apply(rate) if calibration is not None else rate


def view_ratios(images: np.ndarray) -> np.ndarray:
    """Posterior-over-anterior count ratio of each model image ``x`` (N, 2, H, W): the scale cancels."""
    sums = [np.square(np.asarray(x, dtype=np.float64)).sum(axis=(1, 2)) for x in images]
    return np.array([post / max(ant, 1e-12) for ant, post in sums])


def poisson_counts(
    rate: torch.Tensor, generators: Sequence[torch.Generator], workers: int | None = None
) -> np.ndarray:
    """Draw Poisson counts for each study of ``rate`` (B, 2, H, W) with that study's own generator.

    torch's CPU Poisson sampler runs on one core, so studies are drawn in ``workers`` threads [default:
    torch's thread count]; each study's draws come from its own generator in its own order, so the
    counts do not depend on the threads (a generator given for several studies draws them in turn).
    """
    if len(generators) != len(rate):
        raise ValueError(f"{len(generators)} generators for {len(rate)} studies")
    shared = len({id(g) for g in generators}) < len(generators)
    workers = 1 if shared else min(workers or torch.get_num_threads(), len(rate))
    with ThreadPoolExecutor(max(workers, 1)) as pool:
        drawn = list(pool.map(lambda r, g: torch.poisson(r.float(), generator=g), rate, generators))
    counts = torch.stack(drawn).to(torch.int64).numpy()
    dtype = np.uint16 if counts.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
    return counts.astype(dtype)


@dataclass(frozen=True)
class ConditionLogNormal:
    """Log-normal distribution of a positive per-study quantity per condition key.

    Two are fitted on the training set and stored in the pipeline: a study's total counts (both views),
    so synthetic studies land in the training count range, and its posterior-over-anterior count
    ratio (:func:`view_ratios`). Only a mean and a standard deviation per condition are kept (no
    individual study's value).
    """

    log_mean: Mapping[str, float]
    log_std: Mapping[str, float]

    @classmethod
    def fit(cls, keys: Sequence[str], values: Sequence[float], floor: float = 1.0) -> ConditionLogNormal:
        """``floor`` keeps the log finite (1 count for totals)."""
        logs = np.log(np.maximum(np.asarray(values, dtype=np.float64), floor))
        keys = list(keys)
        pooled = (float(logs.mean()), float(logs.std()))
        mean, std = {}, {}
        for key in sorted(set(keys)):
            values = logs[[k == key for k in keys]]
            mean[key], std[key] = (float(values.mean()), float(values.std())) if len(values) >= 2 else pooled
        return cls(mean, std)

    def draw(self, key: str, generator: torch.Generator) -> float:
        """One value drawn with ``generator`` (the sample's own, so the draw is reproducible)."""
        z = float(torch.randn((), generator=generator))
        return math.exp(self.log_mean[key] + self.log_std[key] * z)

    def to_dict(self) -> dict[str, dict[str, float]]:
        return {"log_mean": dict(self.log_mean), "log_std": dict(self.log_std)}


def body_rows(rate: np.ndarray | torch.Tensor, fraction: float) -> tuple[int, int]:
    """First and last row of the body in one study's (2, H, W) counts or rate.

    The body is the longest run of rows whose count (both views, smoothed over 5 rows) exceeds
    ``fraction`` of the median body row, the median of the rows above 10 % of the brightest: a faint
    room background or decoder haze stays far below it however many rows it fills, and a stray
    bright row apart from the body (a streak of haze) does not stretch the run.
    """
    profile = torch.as_tensor(np.asarray(rate, dtype=np.float32)).sum(dim=(0, 2))
    smooth = F.avg_pool1d(profile[None, None], 5, stride=1, padding=2, count_include_pad=False)[0, 0]
    if not smooth.max() > 0:
        return 0, len(profile) - 1
    body = smooth[smooth > 0.1 * smooth.max()].median()
    inside = np.r_[0, (smooth > fraction * body).numpy().astype(np.int8), 0]
    starts, ends = np.flatnonzero(np.diff(inside) == 1), np.flatnonzero(np.diff(inside) == -1)
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest] - 1)


def _extent(values: np.ndarray) -> tuple[int, int] | None:
    nonzero = np.flatnonzero(values)
    return (int(nonzero[0]), int(nonzero[-1])) if len(nonzero) else None


@dataclass(frozen=True)
class AcquisitionWindow:
    """Where a whole-body scan can hold counts: the rows the camera acquired, inside the training support.

    A camera records nothing before the table starts (just above the vertex) or after the scan ends
    (below the feet): those rows hold exactly 0 counts. A decoder cannot output exact zeros (its
    square-root output has a floor of about 0.1, i.e. a haze of Poisson counts), and an autoencoder
    trained on row crops rarely sees the image border, so without this window every sample had counts
    in rows where no real scan has any (``benchmarks/generator_artefacts.py``). Fitted on the training
    set, in native rows and columns of the model orientation (posterior mirrored):

    - ``top_margin``/``bottom_margin``: the largest distance between a training study's first (last)
      acquired row and its body (:func:`body_rows` on the binned image), so no window is tighter than
      a real one;
    - ``top_quantiles``/``bottom_quantiles``: those distances' quantiles (0, 5, ..., 100 %). Each
      synthetic study draws its own margins from them: at the largest margin every sample's window was
      wider than a typical scan's (median 7 rows above the vertex against 20 on simulated centre_a),
      and the decoder's haze filled the spare rows (``top_rows_ant`` in ``measure.py``);
    - ``rows``/``cols``: the first and last row and column in which any training study has a count;
    - ``body_start``: the lowest row at which a training study's body starts. A sample whose body
      starts half a head lower (:meth:`misplaced`) has no head or is drawn down the image, what a
      reader sees first: 2-4 % of the default model's samples, which the pipeline draws again.

    The defaults (no ``rows``/``cols`` limit; margins measured on 648 simulated centre_a studies at
    1024x256) serve models saved before the window was fitted; models saved without quantiles use the
    largest margins.
    """

    top_margin: int = 20
    bottom_margin: int = 32
    body_fraction: float = 0.05
    rows: tuple[int, int] | None = None
    cols: tuple[int, int] | None = None
    top_quantiles: tuple[int, ...] | None = None
    bottom_quantiles: tuple[int, ...] | None = None
    body_start: int | None = None

    @classmethod
    def fit(cls, images: np.ndarray, bin_factor: int, body_fraction: float = 0.05) -> AcquisitionWindow:
        """The window of training model images ``x`` (N, 2, H/f, W/f), one study at a time."""
        f = bin_factor
        tops, bottoms, rows, cols, starts = [], [], [], [], []
        for x in images:
            rate = np.square(np.asarray(x, dtype=np.float32))
            acquired = _extent(rate.sum(axis=(0, 2)))
            if acquired is None:
                continue
            body_first, body_last = body_rows(rate, body_fraction)
            tops.append(max(body_first - acquired[0], 0) * f)
            starts.append(body_first * f)
            bottoms.append(max(acquired[1] - body_last, 0) * f)
            rows += [acquired[0] * f, acquired[1] * f + f - 1]
            left, right = _extent(rate.sum(axis=(0, 1)))
            cols += [left * f, right * f + f - 1]

        def quantiles(margins: list[int]) -> tuple[int, ...] | None:
            levels = np.linspace(0, 1, MARGIN_QUANTILES)
            return tuple(round(float(q)) for q in np.quantile(margins, levels)) if margins else None

        return cls(
            max(tops, default=0),
            max(bottoms, default=0),
            body_fraction,
            (min(rows), max(rows)) if rows else None,
            (min(cols), max(cols)) if cols else None,
            quantiles(tops),
            quantiles(bottoms),
            max(starts, default=None),
        )

    @classmethod
    def from_dict(cls, values: Mapping | None) -> AcquisitionWindow:
        """The window stored in a pipeline config; the defaults for models saved without one."""
        if not values:
            return cls()
        rows, cols = values.get("rows"), values.get("cols")
        top_q, bottom_q = values.get("top_quantiles"), values.get("bottom_quantiles")
        return cls(
            int(values["top_margin"]),
            int(values["bottom_margin"]),
            float(values["body_fraction"]),
            (int(rows[0]), int(rows[1])) if rows else None,
            (int(cols[0]), int(cols[1])) if cols else None,
            tuple(int(q) for q in top_q) if top_q else None,
            tuple(int(q) for q in bottom_q) if bottom_q else None,
            None if values.get("body_start") is None else int(values["body_start"]),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def margins(self, draws: torch.Tensor) -> list[tuple[int, int]]:
        """Each study's (top, bottom) margin for ``draws`` (B, 2) uniform in [0, 1): training quantiles.

        Without fitted quantiles, the largest margins.
        """
        if self.top_quantiles is None or self.bottom_quantiles is None:
            return [(self.top_margin, self.bottom_margin)] * len(draws)

        def at(quantiles: tuple[int, ...], u: float) -> int:
            return round(float(np.interp(u, np.linspace(0, 1, len(quantiles)), quantiles)))

        return [(at(self.top_quantiles, float(u)), at(self.bottom_quantiles, float(v))) for u, v in draws]

    def misplaced(self, rate: torch.Tensor, bin_factor: int, pixel_spacing_mm: float) -> torch.Tensor:
        """(B,) whether each study's binned ``rate`` starts its body half a head lower than every
        training study's (all False for windows fitted before ``body_start`` was)."""
        if self.body_start is None:
            return torch.zeros(len(rate), dtype=torch.bool)
        limit = body_start_limit(self.body_start, pixel_spacing_mm)
        return torch.tensor([body_rows(study, self.body_fraction)[0] * bin_factor > limit for study in rate])

    def mask(self, rate: torch.Tensor, bin_factor: int, draws: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 1, H·f, W·f) 0/1 native-grid mask of each study's window, from its binned ``rate``.

        ``draws`` (B, 2), uniform in [0, 1), pick each study's margins (:meth:`margins`); without
        them every study gets the largest margins (the quantile at 1).
        """
        f = bin_factor
        batch, _, height, width = rate.shape
        mask = torch.zeros(batch, 1, height * f, width * f, dtype=rate.dtype)
        low, high = self.rows or (0, height * f - 1)
        left, right = self.cols or (0, width * f - 1)
        margins = self.margins(torch.ones(batch, 2) if draws is None else draws)
        for i, (study, (top_margin, bottom_margin)) in enumerate(zip(rate, margins, strict=True)):
            first, last = body_rows(study, self.body_fraction)
            top = max(first * f - top_margin, low)
            bottom = min(last * f + f - 1 + bottom_margin, high)
            mask[i, :, top : bottom + 1, left : right + 1] = 1
        return mask
