"""Anatomy-aware realism metrics of whole-body bone-scan datasets, and their comparison.

Landmark-based statistics (count level, anterior/posterior ratios, soft tissue and organs against
bone, rib and vertebral texture, bone widths, joints, feet, head, noise power at a matched count
level, symmetry) of every study of a dataset, summarised per dataset as median [min..max]. A
hospital compares its own real scans with synthetic or simulated ones (``synthscan evaluate
realism OTHER --reference REAL``): for every metric, is the other dataset's median inside the real
studies' range, and does the metric alone tell the two sets apart (:func:`separation`)?
``realism_targets.json`` beside this file holds indicative ranges measured on real
whole-body studies of one clinical camera (4 studies, ranges widened by 10 %).

The instrument is the project's realism measure (``shared/realism/measure.py``, kept verbatim
below the comparison code so numbers agree with it); studies must be (2, 1024, 256) counts at
2.4 mm, anterior first, posterior as acquired.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.stats import mannwhitneyu
from statsmodels.stats.multitest import multipletests

from synthscan.dataset import DatasetError

log = logging.getLogger(__name__)

SHAPE = (2, 1024, 256)  # (view, rows head to feet, columns)
PIXEL_MM = 2.4
KNEE_LEVEL = 0.70  # knee joint as a fraction of standing height, vertex = 0
SEED = 20250601  # base seed of the binomial thinning
ANT, POST = 0, 1


def smooth(a: np.ndarray, sigma) -> np.ndarray:
    return ndimage.gaussian_filter(a, sigma)


# ----------------------------------------------------------------------------- landmarks


class LandmarkError(ValueError):
    """The landmark heuristics found no plausible body in a view."""


@dataclass
class Landmarks:
    body: np.ndarray  # bool mask: largest connected component of the smoothed body
    top: int  # vertex row: first row with at least 3 body pixels
    bottom: int  # sole row: last row with at least 3 body pixels
    neck: int  # narrowest body row 144-336 mm below the vertex
    knee: int  # row of the brightest bilateral leg peak 1008-1416 mm below the vertex
    ankle: int  # row of the brightest bilateral leg peak in the lowest 30 % below the knee
    axis: float  # body midline: median intensity centroid of the trunk rows, sub-pixel
    mid: int  # the midline column, int(axis)
    track: np.ndarray  # spine column per row: smoothed peak near the row centroid
    leg_peak: np.ndarray  # per row, the weaker of the left and right paramedian peaks

    def row(self, z: float) -> int:
        """Row of body level z (fraction of standing height, knee at KNEE_LEVEL)."""
        return int(self.top + z * (self.knee - self.top) / KNEE_LEVEL)


def body_component(a: np.ndarray) -> np.ndarray:
    """Body mask: smoothed image above a threshold, opened, largest component kept.

    The threshold is the larger of 15 % of the median of the smoothed positive pixels
    and 8 % of the 75th percentile of a central block of the busiest 300 rows (so that
    a diffuse haze around the body is not counted as body).
    """
    sm = smooth(a, 3)
    positive = sm[sm > 0.05]
    if positive.size == 0:
        raise LandmarkError("empty view")
    width = a.shape[1]
    busiest = int(np.argmax(ndimage.uniform_filter1d(sm.sum(1), 300)))
    block = sm[max(busiest - 150, 0) : busiest + 150, width // 2 - 50 : width // 2 + 50]
    threshold = max(0.15 * np.median(positive), 0.08 * np.percentile(block, 75))
    mask = ndimage.binary_opening(sm > threshold, iterations=2)
    labels, n = ndimage.label(mask)
    if n == 0:
        raise LandmarkError("no body found")
    sizes = ndimage.sum(mask, labels, range(1, n + 1))
    return labels == 1 + int(np.argmax(sizes))


def find_landmarks(a: np.ndarray) -> Landmarks:
    """Landmarks of one view (float counts, rows head to feet)."""
    n_rows, width = a.shape
    body = body_component(a)
    rows = np.flatnonzero(body.sum(1) >= 3)
    top, bottom = int(rows[0]), int(rows[-1])
    if bottom - top <= 420:
        raise LandmarkError(f"body spans {bottom - top} rows, too few for a whole body")
    height = bottom - top

    sm = smooth(a, (5, 2))
    cols = np.arange(width)
    centroid = (sm * cols).sum(1) / np.maximum(sm.sum(1), 1e-9)
    axis = float(np.median(centroid[top + int(0.2 * height) : top + int(0.45 * height)]))
    mid = int(axis)

    s4 = smooth(a, 4)
    left = s4[:, max(mid - 55, 0) : mid - 6].max(1)
    right = s4[:, mid + 6 : min(mid + 56, width)].max(1)
    leg_peak = np.minimum(left, right)

    knee_rows = np.arange(top + 420, min(top + 590, bottom))
    knee = int(knee_rows[np.argmax(leg_peak[knee_rows])])
    neck_rows = np.arange(top + 60, top + 140)
    neck = int(neck_rows[np.argmin(body.sum(1)[neck_rows])])
    ankle_rows = np.arange(knee + int(0.7 * (bottom - knee)), bottom + 1)
    ankle = int(ankle_rows[np.argmax(leg_peak[ankle_rows])])

    centre = ndimage.median_filter(centroid, 31)
    track = np.zeros(n_rows, int)
    for r in range(n_rows):
        c0 = round(centre[r])
        lo, hi = max(c0 - 15, 0), min(c0 + 16, width)
        track[r] = lo + int(np.argmax(sm[r, lo:hi]))
    track = ndimage.median_filter(track, 15)
    return Landmarks(body, top, bottom, neck, knee, ankle, axis, mid, track, leg_peak)


# ------------------------------------------------------------------------- ROI helpers


def spine_peak(sm: np.ndarray, lm: Landmarks, z0: float, z1: float) -> float:
    """Median over the rows of levels z0..z1 of the maximum within ±4 px of the spine track."""
    return float(
        np.median(
            [sm[r, max(lm.track[r] - 4, 0) : lm.track[r] + 5].max() for r in range(lm.row(z0), lm.row(z1))]
        )
    )


def spine_centre(sm: np.ndarray, lm: Landmarks, z0: float, z1: float) -> float:
    """Median over the rows of levels z0..z1 of the value on the spine track."""
    return float(np.median([sm[r, lm.track[r]] for r in range(lm.row(z0), lm.row(z1))]))


def bilateral_peak(sm: np.ndarray, lm: Landmarks, r0: int, r1: int, d0: int, d1: int) -> float:
    """Mean of the left and right maxima in rows r0..r1, columns d0..d1 px from the midline."""
    width = sm.shape[1]
    peaks = []
    for side in (-1, 1):
        lo, hi = sorted((lm.mid + side * d0, lm.mid + side * d1))
        peaks.append(sm[r0:r1, max(lo, 0) : min(hi, width)].max())
    return float(np.mean(peaks))


def abdominal_soft(sm3: np.ndarray, lm: Landmarks) -> float:
    """Soft-tissue level: 25th percentile of the view smoothed with σ = 3 px, over the body
    inside rows of levels 0.36-0.46 and ±60 px (±144 mm) of the midline, mostly abdomen."""
    roi = np.zeros_like(lm.body)
    roi[lm.row(0.36) : lm.row(0.46), max(lm.mid - 60, 0) : lm.mid + 61] = True
    return float(np.percentile(sm3[roi & lm.body], 25))


def kernel_gain(sigma_hi, sigma_lo) -> float:
    """Sum of squares of the difference-of-Gaussians kernel: the factor by which it passes
    white (Poisson) noise variance."""
    ndim = len(np.atleast_1d(sigma_hi))
    delta = np.zeros((201,) if ndim == 1 else (101, 41))
    delta[tuple(s // 2 for s in delta.shape)] = 1
    return float(((smooth(delta, sigma_hi) - smooth(delta, sigma_lo)) ** 2).sum())


def modulation(a: np.ndarray, roi: np.ndarray) -> float:
    """Noise-corrected vertical modulation in roi: RMS of the band-passed image (Gaussian
    σ 1.2 px minus σ 6 px along rows, σ 2 px across) over the local mean, after
    subtracting the Poisson variance the band-pass lets through."""
    band = smooth(a, (1.2, 2.0)) - smooth(a, (6.0, 2.0))
    local = smooth(a, (6.0, 2.0))
    signal_var = np.mean(band[roi] ** 2) - np.mean(local[roi]) * kernel_gain((1.2, 2.0), (6.0, 2.0))
    return float(np.sqrt(max(signal_var, 0.0)) / np.mean(local[roi]))


def fwhm(p: np.ndarray) -> float:
    """Full width at half maximum of a 1-D peak, in pixels, linearly interpolated."""
    c = int(np.argmax(p))
    half = p[c] / 2
    lo = c
    while lo > 0 and p[lo] > half:
        lo -= 1
    hi = c
    while hi < len(p) - 1 and p[hi] > half:
        hi += 1
    x_lo = lo + (half - p[lo]) / (p[lo + 1] - p[lo]) if p[lo + 1] != p[lo] else lo
    x_hi = hi - (half - p[hi]) / (p[hi - 1] - p[hi]) if p[hi - 1] != p[hi] else hi
    return float(x_hi - x_lo)


def shaft_profile(a: np.ndarray, r0: int, r1: int, c0: int, c1: int):
    """Mean horizontal profile (33 px) across a vertical bone shaft in rows r0..r1,
    columns c0..c1: each row of the image smoothed along the shaft (σ 4 px down, 0.8 px
    across) is centred on its intensity-weighted peak before averaging. Returns the
    profile and its background (mean of the three outermost pixels each side), or None."""
    sm = smooth(a, (4, 0.8))
    width = a.shape[1]
    profiles = []
    for r in range(r0, r1):
        seg = sm[r, c0:c1]
        if seg.size == 0 or seg.max() <= 0:
            continue
        peak = c0 + int(np.argmax(seg))
        lo, hi = max(peak - 12, 0), min(peak + 13, width)
        w = (sm[r, lo:hi] - sm[r, lo:hi].min()) ** 2
        centre = round((w * np.arange(lo, hi)).sum() / max(w.sum(), 1e-9))
        if centre - 16 < 0 or centre + 17 > width:
            continue
        profiles.append(sm[r, centre - 16 : centre + 17])
    if not profiles:
        return None
    p = np.mean(profiles, 0)
    return p, float(np.mean(np.r_[p[:3], p[-3:]]))


def power_spectrum(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Power spectrum of the mean-subtracted view over its total counts, so that pure
    Poisson noise gives 1 at every frequency, and the radial frequency of each bin in
    cycles/pixel."""
    power = np.abs(np.fft.rfft2(a - a.mean())) ** 2 / a.sum()
    radius = np.hypot(np.fft.fftfreq(a.shape[0])[:, None], np.fft.rfftfreq(a.shape[1])[None, :])
    return power, radius


def simple_body(a: np.ndarray) -> np.ndarray:
    """Plain body mask: σ = 3 px smoothed image above 15 % of the median of its positive
    pixels (no component selection, so haze around the body counts as body)."""
    sm = smooth(a, 3)
    if not (sm > 0).any():
        return sm > 0
    return sm > 0.15 * np.median(sm[sm > 0])


# ------------------------------------------------------------------------------ studies


class Study:
    """One study: its views as stored and thinned, and the landmarks of each view."""

    def __init__(self, counts: np.ndarray, thinned: np.ndarray):
        self.raw = counts.astype(float)  # (2, rows, columns), as stored
        self.matched = thinned.astype(float)  # the same, thinned to the matched count level
        try:
            self._lm = find_landmarks(self.raw[ANT]), find_landmarks(self.raw[POST])
            self._lm_error = ""
        except Exception as err:
            self._lm, self._lm_error = None, str(err) or type(err).__name__
        self._smoothed: dict[tuple, np.ndarray] = {}

    @property
    def lm(self) -> tuple[Landmarks, Landmarks]:
        if self._lm is None:
            raise LandmarkError(f"landmarks not found: {self._lm_error}")
        return self._lm

    def smooth(self, view: int, sigma: float) -> np.ndarray:
        """The view as stored, Gaussian-smoothed with sigma px (kept for other groups)."""
        if (view, sigma) not in self._smoothed:
            self._smoothed[view, sigma] = smooth(self.raw[view], sigma)
        return self._smoothed[view, sigma]


def ratio(num: float, den: float) -> float:
    """num / den, or NaN where den is not positive."""
    return float(num / den) if den > 0 else math.nan


def count_level(s: Study) -> dict[str, float]:
    """Count level of each view and their balance.

    counts_*_M: total counts of the view, in millions. pa_total: posterior over anterior
    total counts.
    """
    a, p = s.raw
    return {
        "counts_ant_M": a.sum() / 1e6,
        "counts_post_M": p.sum() / 1e6,
        "pa_total": ratio(p.sum(), a.sum()),
    }


def regional_pa(s: Study) -> dict[str, float]:
    """Posterior over anterior counts by body region (depth and attenuation).

    pa_head, pa_legs: over the rows from the vertex to the neck, and from level 0.56
    (below the pelvis) to the soles, located on the anterior view (the two views are
    acquired together, so their rows match). pa_lumbar_spine: posterior over anterior
    lumbar spine peak, the median over the rows of levels 0.34-0.44 of the maximum
    (σ = 1.5 px smoothing) within ±4 px of each view's own spine track.
    """
    a, p = s.raw
    la, lp = s.lm
    head = slice(la.top, la.neck)
    legs = slice(la.row(0.56), la.bottom + 1)
    spine_a = spine_peak(s.smooth(ANT, 1.5), la, 0.34, 0.44)
    return {
        "pa_lumbar_spine": ratio(spine_peak(s.smooth(POST, 1.5), lp, 0.34, 0.44), spine_a),
        "pa_head": ratio(p[head].sum(), a[head].sum()),
        "pa_legs": ratio(p[legs].sum(), a[legs].sum()),
    }


def body_extent(s: Study) -> dict[str, float]:
    """Body size and the count level inside it, on the plain body mask of `simple_body`.

    body_frac_ant: fraction of the image inside the mask. body_rows_ant: rows from the
    first to the last row with more than 2 % of its pixels in the mask.
    median_in_body_ant, p99_in_body_post: median and 99th percentile of the counts inside
    the mask.
    """
    ant, post = simple_body(s.raw[ANT]), simple_body(s.raw[POST])
    if not (ant.any() and post.any()):
        raise ValueError("no body in a view")
    rows = np.flatnonzero(ant.mean(1) > 0.02)
    return {
        "body_frac_ant": float(ant.mean()),
        "body_rows_ant": float(rows[-1] - rows[0] + 1) if rows.size else 0.0,
        "median_in_body_ant": float(np.median(s.raw[ANT][ant])),
        "p99_in_body_post": float(np.percentile(s.raw[POST][post], 99)),
    }


def background(s: Study) -> dict[str, float]:
    """Background of the anterior view, in counts per pixel.

    bg_outside_body_ant: mean outside the landmark body mask dilated by 8 px (19 mm).
    top_rows_ant, bottom_rows_ant: mean of the first and the last three rows of the image
    (the real camera leaves them empty; a band there is an artefact).
    """
    a = s.raw[ANT]
    outside = ~ndimage.binary_dilation(s.lm[ANT].body, iterations=8)
    return {
        "bg_outside_body_ant": float(a[outside].mean()) if outside.any() else math.nan,
        "top_rows_ant": float(a[:3].mean()),
        "bottom_rows_ant": float(a[-3:].mean()),
    }


def noise_texture(s: Study) -> dict[str, float]:
    """Noise and fine texture of the posterior view at the matched count level (thinned).

    var_over_mean_post: median, over pixels of `simple_body` whose 5×5 mean exceeds 1,
    of the 5×5 variance of the residual from the 5×5 mean over that mean (1 for Poisson
    noise). hf_power_share_post: share of the image power above 0.25 cycles/pixel.
    nps_mid_post: noise power spectrum over its Poisson level (`power_spectrum`) in the band
    0.10-0.20 cycles/pixel: 1 is noise only, more is anatomy at 12-24 mm scale.
    signal_mid_over_low_post: signal power (NPS minus 1) in 0.10-0.20 over that in
    0.02-0.05 cycles/pixel, i.e. fine anatomy relative to coarse.
    """
    a = s.matched[POST]
    local = ndimage.uniform_filter(a, 5)
    resid_var = ndimage.uniform_filter((a - local) ** 2, 5) * 25 / 24
    sel = simple_body(a) & (local > 1)
    power, radius = power_spectrum(a)
    nps_low = power[(radius >= 0.02) & (radius < 0.05)].mean()
    nps_mid = power[(radius >= 0.10) & (radius < 0.20)].mean()
    return {
        "var_over_mean_post": float(np.median(resid_var[sel] / local[sel])) if sel.any() else math.nan,
        "hf_power_share_post": ratio(power[radius > 0.25].sum(), power.sum()),
        "nps_mid_post": float(nps_mid),
        "signal_mid_over_low_post": ratio(nps_mid - 1, nps_low - 1),
    }


def bone_soft_contrast(s: Study) -> dict[str, float]:
    """Bone and organs against soft tissue.

    Soft tissue is the abdominal level of `abdominal_soft`. lumbar_spine_over_soft_post:
    lumbar spine peak (as in `regional_pa`) over soft tissue. sternum_spine_over_soft_ant:
    the same for the thoracic midline, levels 0.19-0.33, where the anterior view adds
    sternum and spine. kidney_over_spine_post: mean of the left and right maxima
    (σ = 4 px) 14-45 px (34-108 mm) from the midline at levels 0.28-0.40, over the
    median spine-track value (σ = 4 px) at those levels. bladder_over_lumbar_spine_ant:
    maximum (σ = 3 px) within ±30 px of the midline at levels 0.42-0.56 over the lumbar
    spine peak measured with σ = 3 px.
    """
    la, lp = s.lm
    a3, p4 = s.smooth(ANT, 3), s.smooth(POST, 4)
    lumbar = spine_peak(s.smooth(POST, 1.5), lp, 0.34, 0.44)
    thoracic = spine_peak(s.smooth(ANT, 1.5), la, 0.19, 0.33)
    kidney = bilateral_peak(p4, lp, lp.row(0.28), lp.row(0.40), 14, 45)
    bladder = a3[la.row(0.42) : la.row(0.56), max(la.mid - 30, 0) : la.mid + 31].max()
    return {
        "lumbar_spine_over_soft_post": ratio(lumbar, abdominal_soft(s.smooth(POST, 3), lp)),
        "sternum_spine_over_soft_ant": ratio(thoracic, abdominal_soft(a3, la)),
        "kidney_over_spine_post": ratio(kidney, spine_centre(p4, lp, 0.28, 0.40)),
        "bladder_over_lumbar_spine_ant": ratio(bladder, spine_peak(a3, la, 0.34, 0.44)),
    }


def femur_rows(lm: Landmarks) -> slice:
    """Femoral shaft rows: 35-75 % of the way from level 0.50 (hips) to the knee."""
    hip = lm.row(0.50)
    return slice(int(hip + 0.35 * (lm.knee - hip)), int(hip + 0.75 * (lm.knee - hip)))


def long_bones(s: Study) -> dict[str, float]:
    """Femur and tibia shafts and the knee.

    Femur ROI: `femur_rows`; tibia ROI: rows 25-65 % of the way from the knee to the
    ankle; each leg is searched within 70 px of the midline. On the aligned shaft profile
    of `shaft_profile`, per leg and then averaged over the legs: *_fwhm_mm_ant is the full
    width at half maximum above the profile's background, and thigh_soft_over_femur_ant,
    shin_soft_over_tibia_ant the background (soft tissue 34-38 mm from the shaft axis)
    over the profile peak. knee_over_femur_*: weaker-leg peak (σ = 4 px) at the knee row
    over its median in the femur ROI.
    """
    out = {}
    for v, view in ((ANT, "ant"), (POST, "post")):
        lm = s.lm[v]
        out[f"knee_over_femur_{view}"] = ratio(lm.leg_peak[lm.knee], np.median(lm.leg_peak[femur_rows(lm)]))
    a, lm = s.raw[ANT], s.lm[ANT]
    femur = femur_rows(lm)
    shin = slice(int(lm.knee + 0.25 * (lm.ankle - lm.knee)), int(lm.knee + 0.65 * (lm.ankle - lm.knee)))
    legs = ((max(lm.mid - 70, 0), lm.mid), (lm.mid, min(lm.mid + 71, a.shape[1])))
    for bone, limb, rows in (("femur", "thigh", femur), ("tibia", "shin", shin)):
        widths, soft = [], []
        for c0, c1 in legs:
            found = shaft_profile(a, rows.start, rows.stop, c0, c1)
            if found is None:
                continue
            profile, bg = found
            widths.append(fwhm(profile - bg) * PIXEL_MM)
            soft.append(bg / profile.max())
        out[f"{bone}_fwhm_mm_ant"] = float(np.mean(widths)) if widths else math.nan
        out[f"{limb}_soft_over_{bone}_ant"] = float(np.mean(soft)) if soft else math.nan
    return out


def bone_texture(s: Study) -> dict[str, float]:
    """Rib and vertebral structure, noise-corrected so that count level matters little.

    rib_modulation_*: `modulation` in a rib ROI 18-45 px (43-108 mm) either side of the
    spine track at levels 0.17-0.32, inside the body. vertebral_modulation_post: the
    counts within ±4 px of the spine track, summed per row over levels 0.20-0.45, form a
    profile down the spine; its band-passed RMS (σ 1.5 px minus σ 8 px; 20 rows trimmed
    at each end), with the Poisson variance subtracted, over its mean: the alternation of
    vertebral bodies and discs.
    """
    out = {}
    for v, view in ((ANT, "ant"), (POST, "post")):
        a, lm = s.raw[v], s.lm[v]
        roi = np.zeros_like(lm.body)
        for r in range(lm.row(0.17), lm.row(0.32)):
            for side in (-1, 1):
                lo, hi = sorted((lm.track[r] + side * 18, lm.track[r] + side * 45))
                roi[r, max(lo, 0) : min(hi, a.shape[1])] = True
        out[f"rib_modulation_{view}"] = modulation(a, roi & lm.body)
    a, lm = s.raw[POST], s.lm[POST]
    rows = range(lm.row(0.20), lm.row(0.45))
    profile = np.array([a[r, max(lm.track[r] - 4, 0) : lm.track[r] + 5].sum() for r in rows])
    band = (smooth(profile, 1.5) - smooth(profile, 8))[20:-20]
    signal_var = band.var() - profile.mean() * kernel_gain(1.5, 8)
    out["vertebral_modulation_post"] = ratio(np.sqrt(max(signal_var, 0.0)), profile.mean())
    return out


def joints(s: Study) -> dict[str, float]:
    """Joint uptake against the spine (σ = 3 px smoothing; left and right maxima averaged).

    hip_over_lumbar_spine_ant: hips, levels 0.49-0.58, 22-70 px from the midline, over the
    median spine-track value at levels 0.34-0.44. iliac_over_lumbar_spine_post: iliac
    wings, levels 0.40-0.47, 18-60 px from the midline, over the same.
    shoulder_over_thoracic_spine_post: shoulders, from the neck row to level 0.24,
    30-80 px from the midline, over the median spine-track value at levels 0.19-0.33.
    """
    a, p = s.smooth(ANT, 3), s.smooth(POST, 3)
    la, lp = s.lm
    hip = bilateral_peak(a, la, la.row(0.49), la.row(0.58), 22, 70)
    iliac = bilateral_peak(p, lp, lp.row(0.40), lp.row(0.47), 18, 60)
    shoulder = bilateral_peak(p, lp, lp.neck, lp.row(0.24), 30, 80)
    return {
        "hip_over_lumbar_spine_ant": ratio(hip, spine_centre(a, la, 0.34, 0.44)),
        "iliac_over_lumbar_spine_post": ratio(iliac, spine_centre(p, lp, 0.34, 0.44)),
        "shoulder_over_thoracic_spine_post": ratio(shoulder, spine_centre(p, lp, 0.19, 0.33)),
    }


def extremities_head(s: Study) -> dict[str, float]:
    """Feet, knee height and head, on the anterior view unless named otherwise.

    foot_below_ankle_mm_post: soles row minus ankle row, in mm. ankle_over_knee_ant:
    weaker-leg peak (σ = 4 px) at the ankle over that at the knee.
    knee_height_over_body_height: vertex-to-knee over vertex-to-soles rows.
    head_frac_ant: share of the view's counts from the vertex to the neck row.
    skull_centre_over_rim_ant: in the ellipse spanning the rows vertex to neck and the
    widest body row among them (σ = 2 px smoothing), mean inside 0.4 of its radius over
    the mean between 0.7 and 1.0 of its radius: brain over calvarium (a hollow shell
    gives less than 1).
    """
    a, lm = s.raw[ANT], s.lm[ANT]
    lp = s.lm[POST]
    half_w = lm.body.sum(1)[lm.top : lm.neck].max() / 2
    half_h = (lm.neck - lm.top) / 2
    centre_row = lm.top + half_h
    head_cols = np.flatnonzero(lm.body[int(centre_row)])
    centre_col = (head_cols.min() + head_cols.max()) / 2 if head_cols.size else lm.mid
    yy, xx = np.mgrid[0 : a.shape[0], 0 : a.shape[1]]
    e = np.hypot((yy - centre_row) / max(half_h, 1), (xx - centre_col) / max(half_w, 1))
    sm = s.smooth(ANT, 2)
    return {
        "foot_below_ankle_mm_post": (lp.bottom - lp.ankle) * PIXEL_MM,
        "ankle_over_knee_ant": ratio(lm.leg_peak[lm.ankle], lm.leg_peak[lm.knee]),
        "knee_height_over_body_height": ratio(lm.knee - lm.top, lm.bottom - lm.top),
        "head_frac_ant": ratio(a[lm.top : lm.neck].sum(), a.sum()),
        "skull_centre_over_rim_ant": ratio(sm[e < 0.4].mean(), sm[(e > 0.7) & (e < 1.0)].mean()),
    }


def symmetry(s: Study) -> dict[str, float]:
    """Left-right balance and agreement of the two views.

    lr_asymmetry_*: |left - right| / (left + right) of the view's counts either side of
    the sub-pixel midline `Landmarks.axis`, the column it crosses split in proportion.
    (A whole-pixel split moves about 0.03 per pixel, as much as the real range.)
    corr_ant_mirrored_post: Pearson correlation of the anterior view and the left-right
    mirrored posterior view, both smoothed with σ = 4 px: the same anatomy seen from both
    sides.
    """
    out = {}
    for v, view in ((ANT, "ant"), (POST, "post")):
        columns = s.raw[v].sum(0)
        left_share = np.clip(s.lm[v].axis + 0.5 - np.arange(columns.size), 0, 1)
        left = (columns * left_share).sum()
        right = columns.sum() - left
        out[f"lr_asymmetry_{view}"] = ratio(abs(left - right), left + right)
    mirrored_post = s.smooth(POST, 4)[:, ::-1]  # smoothing commutes with the mirror
    out["corr_ant_mirrored_post"] = float(np.corrcoef(s.smooth(ANT, 4).ravel(), mirrored_post.ravel())[0, 1])
    return out


# Group function and the metrics it returns, in table order.
METRIC_GROUPS = [
    (count_level, ["counts_ant_M", "counts_post_M", "pa_total"]),
    (regional_pa, ["pa_lumbar_spine", "pa_head", "pa_legs"]),
    (body_extent, ["body_frac_ant", "body_rows_ant", "median_in_body_ant", "p99_in_body_post"]),
    (background, ["bg_outside_body_ant", "top_rows_ant", "bottom_rows_ant"]),
    (
        noise_texture,
        ["var_over_mean_post", "hf_power_share_post", "nps_mid_post", "signal_mid_over_low_post"],
    ),
    (
        bone_soft_contrast,
        [
            "lumbar_spine_over_soft_post",
            "sternum_spine_over_soft_ant",
            "kidney_over_spine_post",
            "bladder_over_lumbar_spine_ant",
        ],
    ),
    (
        long_bones,
        [
            "thigh_soft_over_femur_ant",
            "shin_soft_over_tibia_ant",
            "femur_fwhm_mm_ant",
            "tibia_fwhm_mm_ant",
            "knee_over_femur_ant",
            "knee_over_femur_post",
        ],
    ),
    (bone_texture, ["rib_modulation_ant", "rib_modulation_post", "vertebral_modulation_post"]),
    (
        joints,
        ["hip_over_lumbar_spine_ant", "iliac_over_lumbar_spine_post", "shoulder_over_thoracic_spine_post"],
    ),
    (
        extremities_head,
        [
            "foot_below_ankle_mm_post",
            "ankle_over_knee_ant",
            "knee_height_over_body_height",
            "head_frac_ant",
            "skull_centre_over_rim_ant",
        ],
    ),
    (symmetry, ["lr_asymmetry_ant", "lr_asymmetry_post", "corr_ant_mirrored_post"]),
]
METRICS = [name for _, names in METRIC_GROUPS for name in names]


def thin(counts: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Binomial thinning of each view to `target` total counts (views at or below it kept)."""
    out = counts.copy()
    for v in range(counts.shape[0]):
        total = int(counts[v].sum())
        if target > 0 and total > target:
            out[v] = rng.binomial(counts[v], target / total)
    return out


def measure_study(counts: np.ndarray, match_counts: int) -> tuple[dict[str, float], dict[str, list]]:
    """All metrics of one study. Groups that fail leave their metrics NaN; they are
    returned as {error message: [group names]}."""
    rng = np.random.default_rng([SEED, zlib.crc32(counts.tobytes())])
    values, failed = {}, {}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        study = Study(counts, thin(counts, match_counts, rng))
        for group, names in METRIC_GROUPS:
            try:
                got = group(study)
            except Exception as err:
                failed.setdefault(str(err) or type(err).__name__, []).append(group.__name__)
                got = {}
            values.update({n: float(got.get(n, math.nan)) for n in names})
    return values, failed


# ------------------------------------------------------------------------------ datasets


def load_counts(path: Path) -> np.ndarray:
    """counts array of one study (.npz array `counts`, or a bare .npy array), as int64,
    checked for shape and sign."""
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError("not a readable .npz or .npy file") from err
    if isinstance(data, np.ndarray):
        counts = data
    else:
        with data:
            if "counts" not in data.files:
                raise ValueError(f"no array 'counts' (has {', '.join(data.files) or 'nothing'})")
            counts = data["counts"]
    if counts.shape != SHAPE:
        raise ValueError(f"shape {counts.shape} is not {SHAPE}")
    if not np.issubdtype(counts.dtype, np.integer):
        if not np.isfinite(counts).all():
            raise ValueError("counts are not finite")
        counts = np.rint(counts)
    if counts.min() < 0:
        raise ValueError("negative counts")
    return counts.astype(np.int64)


def measure_dataset(folder: Path, match_counts: int, limit: int | None) -> dict:
    """Metrics of every usable study of one dataset folder; skipped studies are reported."""
    result = {"folder": str(folder), "studies": {}, "skipped": []}
    tag = folder.resolve().name  # prefix of the messages
    try:
        with open(folder / "manifest.csv", newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        result["error"] = f"cannot read manifest.csv ({err})"
        log.warning(f"{folder}: {result['error']}; dataset skipped")
        return result
    for i, row in enumerate(rows if limit is None else rows[: max(limit, 0)]):
        rel = (row.get("path") or "").strip()
        study_id = (row.get("study_id") or "").strip() or Path(rel).stem or f"row {i + 1}"
        if study_id in result["studies"]:
            study_id = f"{study_id} (row {i + 1})"
        try:
            if not rel:
                raise ValueError("no path in manifest.csv")
            counts = load_counts(folder / rel)
        except Exception as err:
            reason = str(err) or type(err).__name__
            log.warning(f"{tag}/{study_id}: skipped: {reason}")
            result["skipped"].append({"study": study_id, "reason": reason})
            continue
        values, failed = measure_study(counts, match_counts)
        for err, groups in failed.items():
            log.warning(f"{tag}/{study_id}: {', '.join(groups)} not measured: {err}")
        result["studies"][study_id] = {"label": row.get("label") or "", **values}
    return result


def metric_values(result: dict, name: str) -> np.ndarray:
    """The finite values of metric ``name`` over a measured dataset's studies."""
    x = np.array([s[name] for s in result["studies"].values()], float)
    return x[np.isfinite(x)]


def summarise(result: dict, targets: dict[str, dict]) -> None:
    """Adds per-metric median/min/max (and inside-target flags) and the inside count."""
    summary, inside, compared, no_value = {}, 0, 0, 0
    for name in METRICS:
        x = metric_values(result, name)
        entry = {"n": int(x.size)}
        if x.size:
            entry.update(median=float(np.median(x)), min=float(x.min()), max=float(x.max()))
        if name in targets:
            if x.size:
                lo, hi = targets[name]["min"], targets[name]["max"]
                entry["inside"] = bool(lo <= entry["median"] <= hi)
                entry["studies_inside"] = int(((x >= lo) & (x <= hi)).sum())
                inside += entry["inside"]
                compared += 1
            else:
                no_value += 1
        summary[name] = entry
    result["summary"] = summary
    if targets:
        result["inside"], result["compared"], result["no_value"] = inside, compared, no_value


def load_targets(path: Path | None, match_counts: int) -> dict[str, dict]:
    """{metric: {"min", "max"}} from the "metrics" object of a targets file (or from its
    top level); {} with a message if the file is unusable."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
        table = data.get("metrics", data)
        targets = {
            k: {"min": float(v["min"]), "max": float(v["max"])}
            for k, v in table.items()
            if isinstance(v, dict)
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        log.warning(f"{path}: cannot use targets ({err}); printing without them")
        return {}
    if data.get("match_counts", match_counts) != match_counts:
        log.warning(f"{path}: targets assume --match-counts {data['match_counts']}, not {match_counts}")
    unknown = sorted(set(targets) - set(METRICS))
    if unknown:
        log.warning(f"{path}: targets for unknown metrics ignored: {', '.join(unknown)}")
    return {k: v for k, v in targets.items() if k in METRICS}


# ------------------------------------------------------------------------------- output


def finite_or_none(x):
    """x with every non-finite float replaced by None, for strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: finite_or_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [finite_or_none(v) for v in x]
    return x


def fmt(x: float) -> str:
    if not math.isfinite(x):
        return "n/a"
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.3g}"


def format_table(results: list[dict], targets: dict[str, dict], match_counts: int) -> str:
    """One row per metric (grouped), one column per dataset: median [min..max]."""
    lines = []

    def cell(result: dict, metric: str) -> str:
        e = result["summary"][metric]
        if not e["n"]:
            return "n/a"
        out = "" if e.get("inside", True) else " OUT"
        return f"{fmt(e['median'])} [{fmt(e['min'])}..{fmt(e['max'])}]{out}"

    header = (
        ["metric"] + (["target"] if targets else []) + [f"{r['name']} ({len(r['studies'])})" for r in results]
    )
    rows = [header]
    for group, metrics in METRIC_GROUPS:
        rows.append([f"[{group.__name__}]"])
        for m in metrics:
            row = [m]
            if targets:
                t = targets.get(m)
                row.append(f"{fmt(t['min'])}..{fmt(t['max'])}" if t else "-")
            rows.append(row + [cell(r, m) for r in results])
    widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(len(header))]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip())
    lines.append(
        "cells: median [min..max] over the studies" + ("; OUT: median outside the target" if targets else "")
    )
    if match_counts > 0:
        lines.append(f"noise_texture metrics after thinning each view to at most {match_counts} counts")
    for r in (r for r in results if targets and "compared" in r):
        no_value = f" ({r['no_value']} without a value)" if r["no_value"] else ""
        lines.append(f"{r['name']}: {r['inside']} of {r['compared']} metrics inside the range{no_value}")
    return "\n".join(lines)


def unique_names(folders: list[Path]) -> list[str]:
    names = []
    for f in folders:
        base = f.resolve().name or str(f)
        names.append(base if base not in names else f"{base}#{len(names) + 1}")
    return names


# ------------------------------------------------------------------------- comparison

TARGETS = Path(__file__).with_name("realism_targets.json")


def compare_datasets(
    folders: list[Path],
    *,
    reference: Path | None = None,
    targets: bool = True,
    match_counts: int = 500_000,
    limit: int | None = None,
) -> dict:
    """Measure ``folders`` (``reference`` first, when given) and summarise each against the ranges.

    With ``reference`` the ranges are its studies' per-metric [min, max] and every other dataset also
    gets ``separation`` (:func:`separation`); without it, the shipped indicative real ranges when
    ``targets``, else none. Returns ``{"match_counts", "ranges", "datasets"}``, JSON-ready after
    :func:`finite_or_none`.
    """
    folders = [Path(f) for f in ([reference] if reference else []) + list(folders)]
    results = []
    for name, folder in zip(unique_names(folders), folders, strict=True):
        result = {"name": name, **measure_dataset(folder, match_counts, limit)}
        if "error" in result:
            raise DatasetError(f"{folder}: {result['error']}")
        if not result["studies"]:
            raise DatasetError(f"{folder}: no study could be measured (see the messages above)")
        results.append(result)
    ranges: dict[str, dict] = {}
    if reference:
        summarise(results[0], {})
        ranges = {m: {"min": e["min"], "max": e["max"]} for m, e in results[0]["summary"].items() if e["n"]}
    elif targets:
        ranges = load_targets(TARGETS, match_counts)
    for result in results[1 if reference else 0 :]:
        summarise(result, ranges)
        if reference:
            result["separation"] = separation(results[0], result)
    return {"match_counts": match_counts, "ranges": ranges, "datasets": results}


def separation(reference: dict, other: dict, alpha: float = 0.05) -> dict[str, dict]:
    """Per metric, how well it alone tells ``other``'s studies from ``reference``'s.

    A median inside the reference's [min, max] says little: a metric can keep its median in range and
    still order every study of one set above every study of the other. ``auc`` is the Mann-Whitney
    probability that an ``other`` study's value exceeds a ``reference`` study's (0.5: the metric cannot
    tell the sets apart; 0 or 1: it always can); ``p`` its two-sided Mann-Whitney p-value, Holm-adjusted
    over the metrics compared, and ``separates`` whether that p lies below ``alpha``.
    """
    table = {}
    for name in METRICS:
        x, y = metric_values(reference, name), metric_values(other, name)
        if len(x) >= 2 and len(y) >= 2:
            test = mannwhitneyu(y, x, alternative="two-sided")
            auc = float(test.statistic / (len(x) * len(y)))
            table[name] = {"auc": auc, "p_raw": float(test.pvalue), "n_reference": len(x), "n_other": len(y)}
    if table:
        separates, adjusted, _, _ = multipletests([e["p_raw"] for e in table.values()], alpha, "holm")
        for entry, flag, p in zip(table.values(), separates, adjusted, strict=True):
            entry.update(p=float(p), separates=bool(flag))
    return table


def format_separation(name: str, table: dict[str, dict], top: int = 5, alpha: float = 0.05) -> str:
    """The metrics that tell ``name`` from the reference on their own (:func:`separation` at ``alpha``),
    strongest first (with none, the ``top`` strongest)."""
    if not table:
        return f"{name}: no metric has values in both datasets to compare"
    ranked = sorted(table.items(), key=lambda item: -abs(item[1]["auc"] - 0.5))
    flagged = [(m, e) for m, e in ranked if e["separates"]]
    lines = [
        f"{name}: {len(flagged)} of {len(table)} metrics tell it from the reference on their own "
        f"(Mann-Whitney, Holm-adjusted p < {alpha:g}){'' if flagged else '; the strongest'}:"
    ]
    lines += [f"  {m}: AUC {e['auc']:.2f}, p {e['p']:.2g}" for m, e in flagged or ranked[:top]]
    return "\n".join(lines)
