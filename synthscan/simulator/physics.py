"""Imaging physics: place the phantom in the field, project it, attenuate, blur, add scatter and noise.

Each primitive is rasterised once onto the pixel grid as its projected thickness (line integral
along the camera axis) times its activity concentration. Each pixel of it is attenuated by
``exp(-mu * path)`` with the path to the body surface facing the camera (anterior or posterior),
and the primitive is sorted into a distance bin per view; every bin is blurred once with the
collimator's Gaussian at that bin's distance (FWHM grows linearly with distance, DOMAIN.md).
The camera head follows the body contour row by row, so the distance is counted from the row's
most prominent surface. Poisson noise turns the expected image into counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthscan.simulator.anatomy import BodyPart, Capsule, Ellipsoid, Phantom, Plate, Primitive

DISTANCE_EDGES_MM: tuple[float, ...] = (0.0, 35.0, 75.0, 120.0, 170.0, 230.0, 1e9)
"""Collimator-distance bins (mm, # assumption): each bin is blurred with the FWHM at its centre."""
DISTANCE_CENTRES_MM: tuple[float, ...] = (15.0, 55.0, 97.0, 145.0, 200.0, 270.0)


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


def rasterise(prim: Primitive, grid: Grid) -> Footprint | None:
    """Projected activity of one primitive (activity per pixel, before attenuation and blur).

    Structures thinner than a pixel are widened to 0.75 pixel with their integral kept, so small
    bones neither vanish between pixel centres nor flicker with sub-pixel position.
    """
    floor = 0.75 * grid.spacing
    if isinstance(prim, Capsule):
        (x0, y0, z0), (x1, y1, z1) = prim.p0, prim.p1
        r0, r1 = max(prim.r0, floor), max(prim.r1, floor)
        gain = prim.density * (0.5 * (prim.r0 + prim.r1) / (0.5 * (r0 + r1))) ** 2
        rmax = max(r0, r1)
        rows = grid.row_range(min(y0, y1) - rmax, max(y0, y1) + rmax)
        cols = grid.col_range(min(x0, x1) - rmax, max(x0, x1) + rmax)
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            return None
        t, d2 = _segment_param(grid.xs(*cols), grid.ys(*rows), x0, y0, x1, y1)
        r = r0 + (r1 - r0) * t
        thick = 2.0 * np.sqrt(np.maximum(r * r - d2, 0.0))
        z = z0 + (z1 - z0) * t
    elif isinstance(prim, Ellipsoid):
        cx, cy, z = prim.centre
        a, b, c = prim.axes
        ae, be = max(a, floor), max(b, floor)
        gain = prim.density * (a * b) / (ae * be)
        reach = max(ae, be)
        rows = grid.row_range(cy - reach, cy + reach)
        cols = grid.col_range(cx - reach, cx + reach)
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            return None
        dx, dy = grid.xs(*cols) - cx, grid.ys(*rows) - cy
        cos, sin = math.cos(prim.angle), math.sin(prim.angle)
        u, v = dx * cos + dy * sin, -dx * sin + dy * cos
        rho2 = (u / ae) ** 2 + (v / be) ** 2
        thick = 2.0 * c * np.sqrt(np.maximum(1.0 - rho2, 0.0))
        if prim.shell > 0:
            k = 1.0 - prim.shell
            thick = thick - 2.0 * c * k * np.sqrt(np.maximum(1.0 - rho2 / (k * k), 0.0))
    else:
        pts = np.asarray(prim.points, dtype=np.float64)
        rows = grid.row_range(pts[:, 1].min(), pts[:, 1].max())
        cols = grid.col_range(pts[:, 0].min(), pts[:, 0].max())
        if rows[0] >= rows[1] or cols[0] >= cols[1]:
            return None
        xx, yy = grid.xs(*cols), grid.ys(*rows)
        (x0, y0), (x1, y1), (x2, y2) = pts
        det = (y1 - y2) * (x0 - x2) + (x2 - x1) * (y0 - y2)
        if abs(det) < 1e-9:
            return None
        l0 = ((y1 - y2) * (xx - x2) + (x2 - x1) * (yy - y2)) / det
        l1 = ((y2 - y0) * (xx - x2) + (x0 - x2) * (yy - y2)) / det
        inside = (l0 >= 0) & (l1 >= 0) & (l0 + l1 <= 1)
        thick = np.where(inside, np.float32(prim.thickness), np.float32(0.0))
        z = prim.z
        gain = prim.density
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


def distance_bin(distance_mm: float) -> int:
    return int(np.searchsorted(DISTANCE_EDGES_MM, distance_mm, side="right") - 1)


def blur_bins(bins: np.ndarray, grid: Grid, fwhm0: float, slope: float) -> np.ndarray:
    """Sum of the distance bins, each blurred with its collimator Gaussian."""
    out = np.zeros(bins.shape[1:], dtype=np.float32)
    for k, layer in enumerate(bins):
        if not layer.any():
            continue
        sigma = fwhm_mm(DISTANCE_CENTRES_MM[k], fwhm0, slope) / 2.3548 / grid.spacing
        out += ndimage.gaussian_filter(layer, sigma, mode="constant", truncate=3.0)
    return out


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
