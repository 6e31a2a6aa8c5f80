"""Imaging physics: attenuate, blur with distance and project point sources onto both heads.

Each source point (a voxel of bone or soft tissue, an organ, a hot spot) carries its activity, its
water-equivalent depth below the anterior and posterior body surface and its distance to each
camera head. A planar whole-body image counts the photons scattered inside its energy window, so
attenuation is broad-beam: ``exp(-mu * depth)`` with the effective coefficient of clinical 99mTc
imaging (DOMAIN.md), and only a faint wide halo is added for the scatter that leaves the body's
shadow. The posterior head looks through the table. The heads follow the body contour slice by
slice, so a point's distance to a head is its depth below the slice's outermost surface plus the
gap; collimator resolution worsens linearly with that distance (DOMAIN.md). Points are splatted
bilinearly into distance bins, each bin is blurred once with its Gaussian (in Fourier space) and
the bins are summed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage

from synthscan.simulator.sites import ScannerConfig

DISTANCE_CENTRES_MM: tuple[float, ...] = (20.0, 80.0, 140.0, 200.0, 260.0, 330.0, 420.0, 540.0)
"""Source-to-collimator distances at which the blur is computed; a point is shared linearly
between the two bins around its distance."""


@dataclass(frozen=True)
class Grid:
    """The field of view: ``rows`` × ``cols`` pixels of ``spacing`` mm."""

    rows: int
    cols: int
    spacing: float


@dataclass
class Sources:
    """Point sources in field coordinates (mm from the field's top-left corner, anterior view).

    Every point is shared bilinearly between the four pixels around it, so sub-pixel positions
    neither alias nor shift; ``smooth`` sources (soft tissue, blurred by 10 mm or more) go to their
    nearest distance bin, the others (bone, organs, hot spots) are shared between the two bins around
    their distance."""

    row_mm: np.ndarray
    col_mm: np.ndarray
    activity: np.ndarray
    depth_mm: np.ndarray  # (N, 2) water-equivalent depth below the anterior, posterior surface
    distance_mm: np.ndarray  # (N, 2) distance to the anterior, posterior head
    smooth: bool = False


def project(sources: list[Sources], grid: Grid, scanner: ScannerConfig) -> np.ndarray:
    """Noise-free anterior and posterior images (2, rows, cols), posterior as acquired (mirrored)."""
    shape = (len(DISTANCE_CENTRES_MM), grid.rows, grid.cols)
    groups = []
    for smooth in (False, True):
        members = [s for s in sources if s.smooth == smooth]
        if members:
            row = np.concatenate([s.row_mm for s in members]) / np.float32(grid.spacing)
            col = np.concatenate([s.col_mm for s in members]) / np.float32(grid.spacing)
            groups.append(
                (
                    smooth,
                    _corners(row, col, grid),
                    np.concatenate([s.activity for s in members]),
                    np.concatenate([s.depth_mm for s in members]),
                    np.concatenate([s.distance_mm for s in members]),
                )
            )
    views = np.empty((2, grid.rows, grid.cols), np.float32)
    for view in (0, 1):
        bins = np.zeros(shape, np.float32)
        for smooth, pixels, activity, depth, distance in groups:
            weight = np.exp(np.float32(-scanner.attenuation_per_mm) * depth[:, view]) * activity
            if view == 1:
                weight *= np.float32(scanner.table_transmission)
            bins += splat(pixels, distance[:, view], weight, shape, nearest_bin=smooth)
        image = blur_bins(bins, grid.spacing, scanner.fwhm_at_collimator_mm, scanner.fwhm_per_mm)
        views[view] = add_scatter(image, grid, scanner.scatter_fraction, scanner.scatter_fwhm_mm)
    views[1] = views[1][:, ::-1]
    np.maximum(views, 0.0, out=views)
    return views


def _corners(row: np.ndarray, col: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel index and bilinear weight of the four pixels around each point (pixel centres at
    integer positions; points within a pixel of the field's edge, where no anatomy lies, are
    dropped)."""
    r0 = np.floor(row).astype(np.int64)
    c0 = np.floor(col).astype(np.int64)
    inside = (r0 >= 0) & (r0 < grid.rows - 1) & (c0 >= 0) & (c0 < grid.cols - 1)
    fr = np.where(inside, row - r0, 0.0).astype(np.float32)
    fc = np.where(inside, col - c0, 0.0).astype(np.float32)
    base = np.where(inside, r0 * grid.cols + c0, 0)
    index = base + np.asarray([0, 1, grid.cols, grid.cols + 1])[:, None]
    gr, gc = 1.0 - fr, 1.0 - fc
    weight = np.stack([gr * gc, gr * fc, fr * gc, fr * fc]) * inside
    return index, weight


def splat(
    pixels: tuple[np.ndarray, np.ndarray],
    distance: np.ndarray,
    weight: np.ndarray,
    shape: tuple[int, int, int],
    *,
    nearest_bin: bool = False,
) -> np.ndarray:
    """Point weights accumulated in (distance bin, row, col): over the given pixels (index, share
    per corner) and the two distance bins around each point, or its nearest bin."""
    n_bins, rows, cols = shape
    index, share = pixels
    position = np.interp(distance, DISTANCE_CENTRES_MM, np.arange(n_bins, dtype=np.float64))
    if nearest_bin:
        flat = (index + np.rint(position).astype(np.int64) * (rows * cols)).ravel()
        weights = (share * weight).ravel()
    else:
        b0 = np.minimum(position.astype(np.int64), n_bins - 2)
        fb = (position - b0).astype(np.float32)
        near = index + b0 * (rows * cols)
        flat = np.concatenate([near, near + rows * cols]).ravel()
        weights = np.concatenate([share * ((1.0 - fb) * weight), share * (fb * weight)]).ravel()
    return (
        np.bincount(flat, weights=weights, minlength=n_bins * rows * cols).reshape(shape).astype(np.float32)
    )


def fwhm_mm(distance_mm: float | np.ndarray, fwhm0: float, slope: float) -> float | np.ndarray:
    """Collimator + intrinsic resolution at a source-to-collimator distance (linear model, DOMAIN.md)."""
    return fwhm0 + slope * distance_mm


def blur_bins(bins: np.ndarray, spacing: float, fwhm0: float, slope: float) -> np.ndarray:
    """Sum of the distance bins, each blurred with its collimator Gaussian (zero outside the field)."""
    _, rows, cols = bins.shape
    pad = 24  # > 3 sigma of the widest kernel in pixels: no wrap-around
    shape = (fft.next_fast_len(rows + 2 * pad, real=True), fft.next_fast_len(cols + 2 * pad, real=True))
    fy = fft.fftfreq(shape[0])[:, None]
    fx = fft.rfftfreq(shape[1])[None, :]
    radius2 = (fy * fy + fx * fx).astype(np.float32)
    total = np.zeros((shape[0], shape[1] // 2 + 1), np.complex64)
    padded = np.zeros(shape, np.float32)
    for k, layer in enumerate(bins):
        if not layer.any():
            continue
        sigma = fwhm_mm(DISTANCE_CENTRES_MM[k], fwhm0, slope) / 2.3548 / spacing
        padded[pad : pad + rows, pad : pad + cols] = layer
        total += fft.rfft2(padded) * np.exp(-2.0 * np.pi**2 * sigma**2 * radius2)
    return fft.irfft2(total, s=shape)[pad : pad + rows, pad : pad + cols].astype(np.float32)


def add_scatter(image: np.ndarray, grid: Grid, fraction: float, fwhm: float) -> np.ndarray:
    """Move ``fraction`` of the counts into a broad halo (scatter that leaves the body's shadow).

    The halo is smooth, so it is computed on a 4× coarser grid and expanded back.
    """
    if fraction <= 0:
        return image
    factor = 4 if min(image.shape) >= 64 else 1
    rows, cols = image.shape
    pr, pc = (-rows) % factor, (-cols) % factor
    padded = np.pad(image, ((0, pr), (0, pc)))
    coarse = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).mean((1, 3))
    sigma = fwhm / 2.3548 / (grid.spacing * factor)
    halo = ndimage.gaussian_filter(coarse, sigma, mode="constant", truncate=3.0)
    halo = np.repeat(np.repeat(halo, factor, 0), factor, 1)[:rows, :cols]
    return (1.0 - fraction) * image + fraction * halo
