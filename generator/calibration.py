"""The decoder's rate calibration: the count a decoded rate stands for, on average.

The autoencoder is trained so that its decoded rate ``x_hat**2`` matches the counts in expectation,
but a decoder this small does not get there everywhere: on the shipped default's training studies
it decodes the body about 5 % low and the flat background of the camera (0.04-0.05 counts per native
pixel) at a third of its rate, where half its outputs are negative numbers near 0 whose squares are
tiny (docs/detector_map). Renormalising to the drawn total counts cannot undo a level-dependent
error, and an image-space detector finds the samples by their too-dark background.

The calibration is an isotonic regression (scikit-learn) of the observed normalised counts on the
decoded rate over the acquired pixels of training studies run through the autoencoder: the mean count
per decoded level, monotone. It is a property of the decoder alone (the diffusion UNet's latents
decode through the same network), stored as a small table in the pipeline's config and applied to
every decoded rate before upsampling. It holds pooled means of many pixels, no study's image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderKL
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class CalibrationTable:
    """A monotone piecewise-linear map from decoded to calibrated normalised rates.

    ``decoded`` are increasing knots starting at 0, ``expected`` the calibrated rates there; above
    the last knot the last knot's ratio applies (the bladder and hot lesions, brighter than any
    pixel the table was fitted on, keep their proportion).
    """

    decoded: tuple[float, ...]
    expected: tuple[float, ...]

    def __post_init__(self) -> None:
        d, e = np.asarray(self.decoded), np.asarray(self.expected)
        if len(d) < 2 or len(d) != len(e) or d[0] != 0 or np.any(np.diff(d) <= 0):
            raise ValueError("a rate calibration table needs >= 2 increasing knots from 0, one value each")
        if np.any(np.diff(e) < 0) or e[0] < 0:
            raise ValueError("a rate calibration table must be non-negative and non-decreasing")

    def apply(self, rate: torch.Tensor) -> torch.Tensor:
        """Calibrated rates of decoded rates (any shape, >= 0), computed in float32 (knots closer than
        half precision resolves stay apart)."""
        r = rate.float()
        knots = torch.tensor(self.decoded, dtype=torch.float32, device=rate.device)
        values = torch.tensor(self.expected, dtype=torch.float32, device=rate.device)
        index = torch.searchsorted(knots, r.contiguous(), right=True).clamp(1, len(knots) - 1)
        left, right = knots[index - 1], knots[index]
        weight = ((r - left) / (right - left)).clamp(0, 1)
        inside = values[index - 1] + weight * (values[index] - values[index - 1])
        beyond = r * (values[-1] / knots[-1])
        return torch.where(r > knots[-1], beyond, inside).to(rate.dtype)


@dataclass(frozen=True)
class RateCalibration:
    """The decoder's calibration: one table per column group of the model image.

    The outermost ``edge_columns`` columns on each side have a table each, left to right, around the
    middle one that all other columns share: the decoder's error is its own at the image border (the
    shipped default's decodes the outermost columns up to 2x too bright, most at the left; diffusers'
    encoder pads its downsampling convolutions on the right and bottom only, so the sides are not
    alike), like a camera's non-uniformity that a flood-field correction removes.
    ``2 * edge_columns + 1`` tables.
    """

    tables: tuple[CalibrationTable, ...]
    edge_columns: int = 0

    def __post_init__(self) -> None:
        if self.edge_columns < 0 or len(self.tables) != 2 * self.edge_columns + 1:
            raise ValueError(
                f"a rate calibration with {self.edge_columns} edge columns needs 2 * that + 1 tables"
            )

    def apply(self, rate: torch.Tensor) -> torch.Tensor:
        """Calibrated rates of decoded rates (..., H, W), each column by its table."""
        groups = column_groups(rate.shape[-1], self.edge_columns)
        return torch.cat([t.apply(rate[..., g]) for t, g in zip(self.tables, groups, strict=True)], dim=-1)

    def to_dict(self) -> dict[str, Any]:
        tables = [{"decoded": list(t.decoded), "expected": list(t.expected)} for t in self.tables]
        return {"edge_columns": self.edge_columns, "tables": tables}

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> RateCalibration | None:
        if not values:
            return None
        tables = tuple(
            CalibrationTable(tuple(map(float, t["decoded"])), tuple(map(float, t["expected"])))
            for t in values["tables"]
        )
        return cls(tables, int(values["edge_columns"]))


def check_edge_columns(
    width: int, edge_columns: int, setting: str = "edge columns", images: str = "these"
) -> None:
    """Refuse ``edge_columns`` that model images ``width`` columns wide leave no middle column for;
    ``setting`` and ``images`` name them in the message (a config field or option, a dataset)."""
    if width <= 2 * edge_columns:
        raise ValueError(
            f"{setting} {edge_columns} needs model images over {2 * edge_columns} columns wide, "
            f"{images} are {width}: choose fewer"
        )


def column_groups(width: int, edge_columns: int) -> list[slice]:
    """The columns of each table of a :class:`RateCalibration`, in its tables' order."""
    check_edge_columns(width, edge_columns)
    e = edge_columns
    right = [slice(width - e + c, width - e + c + 1) for c in range(e)]
    return [*[slice(c, c + 1) for c in range(e)], slice(e, width - e), *right]


@torch.no_grad()
def decoded_rates(vae: AutoencoderKL, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """``x_hat**2`` of model images ``x`` (N, 2, H, W) through the autoencoder (posterior means)."""
    device, dtype = vae.device, vae.dtype
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.as_tensor(np.asarray(images[start : start + batch_size], np.float32), device=device)
        latents = vae.encode(x.to(dtype)).latent_dist.mean
        out.append(vae.decode(latents).sample.float().square().cpu().numpy())
    return np.concatenate(out)


def fit_rate_calibration(
    vae: AutoencoderKL,
    images: np.ndarray,
    *,
    studies: int = 64,
    edge_columns: int = 8,
    pixels: int = 2_000_000,
    knots: int = 64,
    seed: int = 0,
) -> RateCalibration:
    """Fit the calibration on up to ``studies`` model images ``x`` (N, 2, H, W) of training studies.

    Pixels a study did not acquire are left out: its rows and its columns without a count in either
    view (outside the camera's window, which sampling sets to 0 itself; the zero padding of a narrower
    camera's views). Of the rest, up to ``pixels`` per column group drawn with ``seed`` are fitted
    (:func:`calibration_table`); an edge column no study acquired takes the middle table.
    """
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(images), size=min(studies, len(images)), replace=False))
    x = np.asarray(images[chosen], np.float32)
    observed, decoded = np.square(x), decoded_rates(vae, x)
    rows = observed.sum(axis=(1, 3), keepdims=True) > 0
    columns = observed.sum(axis=(1, 2), keepdims=True) > 0
    acquired = np.broadcast_to(rows & columns, observed.shape)
    groups = column_groups(x.shape[-1], edge_columns)
    tables: list[CalibrationTable | None] = []
    for group in groups:
        inside = np.flatnonzero(acquired[..., group].ravel())
        if not len(inside):
            tables.append(None)
            continue
        drawn = rng.choice(inside, size=min(pixels, len(inside)), replace=False)
        tables.append(
            calibration_table(decoded[..., group].ravel()[drawn], observed[..., group].ravel()[drawn], knots)
        )
    middle = tables[edge_columns]
    if middle is None:
        raise ValueError("the studies hold no acquired pixel to fit a rate calibration on")
    return RateCalibration(tuple(t or middle for t in tables), edge_columns)


def calibration_table(decoded: np.ndarray, observed: np.ndarray, knots: int = 64) -> CalibrationTable:
    """Isotonic regression of ``observed`` normalised counts on ``decoded`` rates (pixel pairs), as a
    table at 0 and ``knots - 1`` quantiles of the decoded rates up to their 99.9th percentile, so it is
    fine where the pixels are many."""
    d, o = np.asarray(decoded, np.float64), np.asarray(observed, np.float64)
    fit = IsotonicRegression(y_min=0.0, out_of_bounds="clip").fit(d, o)
    top = np.quantile(d, 0.999)
    grid = np.unique(np.r_[0.0, np.quantile(d[d <= top], np.linspace(0, 1, knots - 1))])
    return CalibrationTable(tuple(float(v) for v in grid), tuple(float(v) for v in fit.predict(grid)))
