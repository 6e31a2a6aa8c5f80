"""Imaging physics: place the phantom in the field, project it, attenuate, blur and add scatter.

Each primitive is rasterised once, inside its bounding window, as its projected thickness (line
integral along the camera axis) times its activity concentration, and used for both views. Each
pixel of it is attenuated by ``exp(-mu * path)`` with the path to the body surface facing the
camera (anterior or posterior), and the primitive is shared between the two distance bins around
its distance to that camera (pixel by pixel for primitives that span depths, such as ribs); every
bin is blurred once with the collimator's Gaussian at that bin's distance (FWHM grows linearly
with distance, DOMAIN.md). The camera head follows the body contour row by row, so the distance
is counted from the row's most prominent surface. Soft tissue is a uniform, self-attenuating slab
inside the body outline. Poisson noise is added by :mod:`synthscan.simulator.study`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from scipy import ndimage

from synthscan.simulator.anatomy import BodyPart, Capsule, Ellipsoid, Phantom, Plate, Primitive, Tube
from synthscan.simulator.sites import ScannerConfig

DISTANCE_CENTRES_MM: tuple[float, ...] = (30.0, 90.0, 160.0, 260.0)
"""Collimator-distance bins (mm, # assumption): a source between two centres is shared between
their bins linearly, and each bin is blurred once with the collimator FWHM at its centre."""
DEPTH_SPREAD_MM = 30.0
"""A primitive whose depth varies more than this (ribs, clavicles) is binned pixel by pixel."""


@dataclass(frozen=True)
class Grid:
    """The pixel grid of one view: ``rows`` × ``cols`` pixels of ``spacing`` mm, x = 0 at the centre."""

    rows: int
    cols: int
    spacing: float

    def col_range(self, lo_mm: float, hi_mm: float) -> tuple[int, int]:
        lo = max(0, math.floor(lo_mm / self.spacing + self.cols / 2 - 0.5))
        hi = min(self.cols, math.ceil(hi_mm / self.spacing + self.cols / 2 - 0.5) + 1)
        return lo, hi

    def row_range(self, lo_mm: float, hi_mm: float) -> tuple[int, int]:
        lo = max(0, math.floor(lo_mm / self.spacing - 0.5))
        hi = min(self.rows, math.ceil(hi_mm / self.spacing - 0.5) + 1)
        return lo, hi

    def xs(self, lo: int, hi: int) -> np.ndarray:
        return ((np.arange(lo, hi, dtype=np.float32) + 0.5 - self.cols / 2) * self.spacing)[None, :]

    def ys(self, lo: int, hi: int) -> np.ndarray:
        return ((np.arange(lo, hi, dtype=np.float32) + 0.5) * self.spacing)[:, None]

    def to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """(row, column) of a field point, fractional."""
        return y / self.spacing - 0.5, x / self.spacing + self.cols / 2 - 0.5


@dataclass(frozen=True)
class Placement:
    """Rigid placement of the patient in the field: axial rotation, in-plane tilt, offsets."""

    axial_rotation_deg: float
    tilt_deg: float
    pivot_y: float
    dx: float
    dy: float

    def point(self, p: tuple[float, ...]) -> tuple[float, float, float]:
        x, y = p[0], p[1]
        z = p[2] if len(p) > 2 else 0.0
        psi = math.radians(self.axial_rotation_deg)
        x, z = x * math.cos(psi) + z * math.sin(psi), z * math.cos(psi) - x * math.sin(psi)
        phi = math.radians(self.tilt_deg)
        yr = y - self.pivot_y
        x, y = x * math.cos(phi) - yr * math.sin(phi), x * math.sin(phi) + yr * math.cos(phi) + self.pivot_y
        return x + self.dx, y + self.dy, z

    def primitive(self, prim: Primitive) -> Primitive:
        if isinstance(prim, Capsule):
            return Capsule(
                prim.bone,
                self.point(prim.p0),
                self.point(prim.p1),
                prim.r0,
                prim.r1,
                prim.density,
                prim.compartment,
            )
        if isinstance(prim, Ellipsoid):
            return Ellipsoid(
                prim.bone,
                self.point(prim.centre),
                prim.axes,
                prim.angle + math.radians(self.tilt_deg),
                prim.shell,
                prim.density,
                prim.compartment,
                prim.cylinder,
            )
        if isinstance(prim, Tube):
            return Tube(
                prim.bone,
                tuple(self.point(q) for q in prim.points),
                prim.radii,
                prim.density,
                prim.compartment,
            )
        points = tuple(self.point((x, y, prim.z))[:2] for x, y in prim.points)
        z = self.point((sum(x for x, _ in prim.points) / 3, prim.points[0][1], prim.z))[2]
        return Plate(prim.bone, points, z, prim.thickness, prim.density, prim.compartment)

    def body_part(self, part: BodyPart) -> BodyPart:
        p0, p1 = self.point(part.p0)[:2], self.point(part.p1)[:2]
        return BodyPart(part.name, p0, p1, part.r0, part.r1, part.ratio0, part.ratio1, part.z)

    def phantom(self, phantom: Phantom) -> Phantom:
        return Phantom(
            [self.primitive(p) for p in phantom.primitives], [self.body_part(b) for b in phantom.body]
        )


@dataclass
class Footprint:
    """A rasterised primitive: its pixel window, projected thickness × density, and per-pixel depth."""

    rows: slice
    cols: slice
    activity: np.ndarray
    z: np.ndarray | float


def _segment_param(xx, yy, x0, y0, x1, y1):
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    if length2 < 1e-9:
        t = np.zeros(np.broadcast_shapes(xx.shape, yy.shape), dtype=np.float32)
    else:
        t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / length2, 0.0, 1.0)
    d2 = (xx - x0 - t * dx) ** 2 + (yy - y0 - t * dy) ** 2
    return t, d2


def _thickness(prim: Primitive, xx: np.ndarray, yy: np.ndarray, floor: float):
    """Projected thickness (mm along z), depth z and density gain of ``prim`` at field points."""
    if isinstance(prim, Capsule):
        (x0, y0, z0), (x1, y1, z1) = prim.p0, prim.p1
        r0, r1 = max(prim.r0, floor), max(prim.r1, floor)
        gain = prim.density * (0.5 * (prim.r0 + prim.r1) / (0.5 * (r0 + r1))) ** 2
        t, d2 = _segment_param(xx, yy, x0, y0, x1, y1)
        r = r0 + (r1 - r0) * t
        thick = 2.0 * np.sqrt(np.maximum(r * r - d2, 0.0))
        return thick, (z0 + (z1 - z0) * t).astype(np.float32), gain
    if isinstance(prim, Tube):
        return _tube_thickness(prim, xx, yy, floor)
    if isinstance(prim, Ellipsoid):
        cx, cy, z = prim.centre
        a, b, c = prim.axes
        ae, be = max(a, floor), max(b, floor)
        dx, dy = xx - cx, yy - cy
        cos, sin = math.cos(prim.angle), math.sin(prim.angle)
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        if prim.cylinder:
            thick = np.where(np.abs(v) <= be, 2.0 * c * np.sqrt(np.maximum(1.0 - (u / ae) ** 2, 0.0)), 0.0)
            return thick, z, prim.density * (a * b) / (ae * be)
        rho2 = (u / ae) ** 2 + (v / be) ** 2
        thick = 2.0 * c * np.sqrt(np.maximum(1.0 - rho2, 0.0))
        if prim.shell > 0:
            k = 1.0 - prim.shell
            thick = thick - 2.0 * c * k * np.sqrt(np.maximum(1.0 - rho2 / (k * k), 0.0))
        return thick, z, prim.density * (a * b) / (ae * be)
    (x0, y0), (x1, y1), (x2, y2) = prim.points
    det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
    if abs(det) < 1e-9:
        return np.zeros(np.broadcast_shapes(xx.shape, yy.shape), np.float32), prim.z, 0.0
    l0 = ((y1 - y2) * (xx - x2) + (x2 - x1) * (yy - y2)) / det
    l1 = ((y2 - y0) * (xx - x2) + (x0 - x2) * (yy - y2)) / det
    inside = (l0 >= 0) & (l1 >= 0) & (l0 + l1 <= 1)
    return np.where(inside, np.float32(prim.thickness), np.float32(0.0)), prim.z, prim.density


def _tube_thickness(tube: Tube, xx: np.ndarray, yy: np.ndarray, floor: float):
    """Thickness of the chain (see :class:`Tube`): per pixel, the thickest of its segments.

    Each segment is evaluated only inside its own bounding box, so a long rib costs little more
    than its area.
    """
    x_axis, y_axis = xx[0], yy[:, 0]
    thick = np.zeros((y_axis.size, x_axis.size), dtype=np.float32)
    depth = np.zeros_like(thick)
    for (p0, p1), (r0, r1) in zip(pairwise(tube.points), pairwise(tube.radii), strict=True):
        ra, rb = max(r0, floor), max(r1, floor)
        reach = max(ra, rb)
        c0, c1 = np.searchsorted(x_axis, (min(p0[0], p1[0]) - reach, max(p0[0], p1[0]) + reach))
        q0, q1 = np.searchsorted(y_axis, (min(p0[1], p1[1]) - reach, max(p0[1], p1[1]) + reach))
        if c0 >= c1 or q0 >= q1:
            continue
        t, d2 = _segment_param(xx[:, c0:c1], yy[q0:q1], p0[0], p0[1], p1[0], p1[1])
        r = ra + (rb - ra) * t
        segment = 2.0 * np.sqrt(np.maximum(r * r - d2, 0.0))
        window = (slice(q0, q1), slice(c0, c1))
        thicker = segment > thick[window]
        thick[window] = np.where(thicker, segment, thick[window])
        depth[window] = np.where(thicker, p0[2] + (p1[2] - p0[2]) * t, depth[window])
    mean_r = float(np.mean(tube.radii))
    gain = tube.density * (mean_r / max(mean_r, floor)) ** 2
    return thick, depth, gain


def extent(prim: Primitive) -> tuple[float, float, float, float]:
    """Bounding box (x0, x1, y0, y1) of a primitive's projection, in mm."""
    if isinstance(prim, Capsule):
        (x0, y0, _), (x1, y1, _) = prim.p0, prim.p1
        r = max(prim.r0, prim.r1)
        return min(x0, x1) - r, max(x0, x1) + r, min(y0, y1) - r, max(y0, y1) + r
    if isinstance(prim, Tube):
        r = max(prim.radii)
        xs = [q[0] for q in prim.points]
        ys = [q[1] for q in prim.points]
        return min(xs) - r, max(xs) + r, min(ys) - r, max(ys) + r
    if isinstance(prim, Ellipsoid):
        cx, cy, _ = prim.centre
        a, b, _ = prim.axes
        cos, sin = abs(math.cos(prim.angle)), abs(math.sin(prim.angle))
        if prim.cylinder:
            hx, hy = a * cos + b * sin, a * sin + b * cos
        else:
            hx, hy = math.hypot(a * cos, b * sin), math.hypot(a * sin, b * cos)
        return cx - hx, cx + hx, cy - hy, cy + hy
    xs = [x for x, _ in prim.points]
    ys = [y for _, y in prim.points]
    return min(xs), max(xs), min(ys), max(ys)


def thickness_at(prim: Primitive, x: float, y: float) -> float:
    """Projected thickness of ``prim`` through the field point (x, y), in mm (for sizing lesions)."""
    thick, _, _ = _thickness(prim, np.array([[x]]), np.array([[y]]), 0.0)
    return float(np.asarray(thick).ravel()[0])


def rasterise(prim: Primitive, grid: Grid) -> Footprint | None:
    """Projected activity of one primitive (activity per pixel, before attenuation and blur).

    Only the primitive's bounding window is computed. Structures thinner than a pixel are widened
    to 0.75 pixel with their integral kept, so small bones neither vanish between pixel centres
    nor flicker with sub-pixel position.
    """
    floor = 0.75 * grid.spacing
    x0, x1, y0, y1 = extent(prim)
    pad = floor
    rows = grid.row_range(y0 - pad, y1 + pad)
    cols = grid.col_range(x0 - pad, x1 + pad)
    if rows[0] >= rows[1] or cols[0] >= cols[1]:
        return None
    thick, z, gain = _thickness(prim, grid.xs(*cols), grid.ys(*rows), floor)
    activity = (thick * (gain * grid.spacing * grid.spacing)).astype(np.float32)
    return Footprint(slice(*rows), slice(*cols), activity, z)


def body_surfaces(parts: list[BodyPart], grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Anterior and posterior body surface heights (mm from z = 0) per pixel; 0 outside the body."""
    front = np.zeros((grid.rows, grid.cols), dtype=np.float32)
    back = np.zeros_like(front)
    for part in parts:
        (x0, y0), (x1, y1) = part.p0, part.p1
        rmax = max(part.r0, part.r1)
        rows = grid.row_range(min(y0, y1) - rmax, max(y0, y1) + rmax)
        cols = grid.col_range(min(x0, x1) - rmax, max(x0, x1) + rmax)
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            continue
        t, d2 = _segment_param(grid.xs(*cols), grid.ys(*rows), x0, y0, x1, y1)
        r = part.r0 + (part.r1 - part.r0) * t
        ratio = part.ratio0 + (part.ratio1 - part.ratio0) * t
        half = ratio * np.sqrt(np.maximum(r * r - d2, 0.0))
        inside = half > 0
        window = (slice(*rows), slice(*cols))
        front[window] = np.where(inside, np.maximum(front[window], part.z + half), front[window])
        back[window] = np.where(inside, np.maximum(back[window], half - part.z), back[window])
    return front, back


def fwhm_mm(distance_mm: float | np.ndarray, fwhm0: float, slope: float) -> float | np.ndarray:
    """Collimator + intrinsic resolution at a source-to-collimator distance (linear model, DOMAIN.md)."""
    return fwhm0 + slope * distance_mm


def bin_weights(distance_mm: float) -> tuple[int, float]:
    """Lower distance bin and the share (0..1) that goes to the next one (linear interpolation)."""
    centres = DISTANCE_CENTRES_MM
    if distance_mm <= centres[0]:
        return 0, 0.0
    if distance_mm >= centres[-1]:
        return len(centres) - 2, 1.0
    lower = bisect.bisect_right(centres, distance_mm) - 1
    return lower, (distance_mm - centres[lower]) / (centres[lower + 1] - centres[lower])


def _add_per_pixel(
    bins: np.ndarray, window: tuple[slice, slice], activity: np.ndarray, distance: np.ndarray
) -> None:
    """Share each pixel of a primitive spanning depths (a rib round the chest) by its own distance."""
    position = np.interp(distance, DISTANCE_CENTRES_MM, np.arange(len(DISTANCE_CENTRES_MM))).astype(
        np.float32
    )
    lower = np.minimum(position.astype(np.int64), len(DISTANCE_CENTRES_MM) - 2)
    share = position - lower
    for k in range(len(DISTANCE_CENTRES_MM) - 1):
        here = lower == k
        if here.any():
            bins[k][window] += np.where(here, activity * (1.0 - share), 0.0)
            bins[k + 1][window] += np.where(here, activity * share, 0.0)


def blur_bins(bins: np.ndarray, grid: Grid, fwhm0: float, slope: float) -> np.ndarray:
    """Sum of the distance bins, each blurred once with its collimator Gaussian.

    Only the rows and columns a bin occupies (plus the kernel reach) are filtered.
    """
    out = np.zeros(bins.shape[1:], dtype=np.float32)
    for k, layer in enumerate(bins):
        rows = np.flatnonzero(layer.any(axis=1))
        if rows.size == 0:
            continue
        cols = np.flatnonzero(layer.any(axis=0))
        sigma = fwhm_mm(DISTANCE_CENTRES_MM[k], fwhm0, slope) / 2.3548 / grid.spacing
        reach = math.ceil(3.0 * sigma) + 1
        r0, r1 = max(rows[0] - reach, 0), min(rows[-1] + reach + 1, layer.shape[0])
        c0, c1 = max(cols[0] - reach, 0), min(cols[-1] + reach + 1, layer.shape[1])
        window = (slice(r0, r1), slice(c0, c1))
        out[window] += ndimage.gaussian_filter(layer[window], sigma, mode="constant", truncate=3.0)
    return out


def project(
    placed: Phantom,
    concentration: Mapping[str, float],
    soft_tissue: float,
    grid: Grid,
    scanner: ScannerConfig,
) -> np.ndarray:
    """Noise-free anterior and posterior images (2, rows, cols), posterior as acquired.

    ``concentration`` is the activity per mm³ of each compartment (times each primitive's
    ``density``); ``soft_tissue`` the concentration in the body outline. Both heads follow the
    body contour row by row at ``scanner.gap_mm``. Every primitive is rasterised once and used by
    both views, attenuated pixel by pixel by the tissue between it and each head.
    """
    mu = scanner.attenuation_per_mm
    front, back = body_surfaces(placed.body, grid)
    head_front = front.max(axis=1) + scanner.gap_mm
    head_back = back.max(axis=1) + scanner.gap_mm
    bins = np.zeros((2, len(DISTANCE_CENTRES_MM), grid.rows, grid.cols), dtype=np.float32)
    for prim in placed.primitives:
        level = concentration.get(prim.compartment, 0.0)
        if level == 0.0:
            continue
        footprint = rasterise(prim, grid)
        if footprint is None:
            continue
        window = (footprint.rows, footprint.cols)
        activity = footprint.activity
        activity *= np.float32(level)
        z = footprint.z
        rows = footprint.rows
        spread = False
        if isinstance(z, np.ndarray):
            z_mid = float((z * activity).sum() / max(float(activity.sum()), 1e-12))
            occupied = z[activity > 0]
            spread = occupied.size > 0 and float(occupied.max() - occupied.min()) > DEPTH_SPREAD_MM
        else:
            z_mid = float(z)
        row = (rows.start + rows.stop) // 2
        for view, depth, head, sign in (
            (0, front[window] - z, head_front, -1.0),
            (1, back[window] + z, head_back, 1.0),
        ):
            np.maximum(depth, 0.0, out=depth)
            depth *= -mu
            attenuated = np.exp(depth, out=depth)
            attenuated *= activity
            if spread:
                _add_per_pixel(bins[view], window, attenuated, head[rows, None] + sign * z)
                continue
            lower, share = bin_weights(head[row] + sign * z_mid)
            near = attenuated * np.float32(1.0 - share)
            bins[view, lower][window] += near
            attenuated -= near
            bins[view, lower + 1][window] += attenuated
    if soft_tissue > 0:
        path = front + back
        slab = soft_tissue * grid.spacing**2 * (1.0 - np.exp(-mu * path)) / max(mu, 1e-9)
        inside = path[path > 0]
        lower, share = bin_weights(scanner.gap_mm + (0.5 * float(np.median(inside)) if inside.size else 0.0))
        for view in (0, 1):
            bins[view, lower] += (1.0 - share) * slab
            bins[view, lower + 1] += share * slab
    views = np.empty((2, grid.rows, grid.cols), dtype=np.float32)
    for view in (0, 1):
        image = blur_bins(bins[view], grid, scanner.fwhm_at_collimator_mm, scanner.fwhm_per_mm)
        views[view] = add_scatter(image, grid, scanner.scatter_fraction, scanner.scatter_fwhm_mm)
    views[1] = views[1][:, ::-1]
    np.maximum(views, 0.0, out=views)
    return views


def add_scatter(image: np.ndarray, grid: Grid, fraction: float, fwhm: float) -> np.ndarray:
    """Move ``fraction`` of the counts into a broad halo (Compton scatter inside the energy window).

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
