"""Disease and its mimics as changes to a patient's phantom.

Metastases are ellipsoids attached to a named bone whose activity concentration is ``contrast``
times the host bone's (``contrast`` < 1: a cold, lytic lesion), sized so that their projected
thickness matches the host bone's at their centre: for a lesion much wider than the collimator
FWHM the image ratio at its centre equals the sampled contrast, smaller ones lose contrast to
the partial-volume effect as real lesions do. Cardiac amyloidosis is myocardial uptake at a
Perugini-grade- and tracer-dependent concentration relative to bone. Benign mimics (degenerative
joints, rib fractures, injection site, urine contamination) are added in every class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from synthscan.simulator.anatomy import SIDES, VERTEBRAE, Capsule, Ellipsoid, Patient, Phantom, Primitive
from synthscan.simulator.physics import thickness_at
from synthscan.simulator.sites import DiseaseConfig

REGION_BONES: dict[str, tuple[str, ...]] = {
    "spine": VERTEBRAE,
    "ribs": tuple(f"rib_{side}{i}" for side, _ in SIDES for i in range(1, 13)),
    "pelvis": ("pelvis_R", "pelvis_L"),
    "sacrum": ("sacrum",),
    "femur": ("femur_R", "femur_L"),
    "skull": ("skull",),
    "humerus": ("humerus_R", "humerus_L"),
    "sternum": ("sternum",),
    "scapula": ("scapula_R", "scapula_L"),
    "clavicle": ("clavicle_R", "clavicle_L"),
}
"""Bones of each metastasis region (names as built by :mod:`anatomy`)."""

SPINE_WEIGHTS: dict[str, float] = {"C": 0.4, "T": 1.0, "L": 1.2}
"""Relative lesion risk per vertebra by segment: thoracic and lumbar most, cervical least
(red-marrow distribution, DOMAIN.md; exact weights # assumption)."""

PROXIMAL_ONLY: frozenset[str] = frozenset({"femur", "humerus"})
"""Long bones whose metastases sit in the red-marrow-bearing proximal part (DOMAIN.md)."""

AXIAL_REGIONS: tuple[str, ...] = (
    "spine",
    "ribs",
    "pelvis",
    "sacrum",
    "skull",
    "sternum",
    "scapula",
    "clavicle",
)
"""Bones intensified in a superscan (with the proximal long bones)."""

SUPERSCAN_FACTORS: dict[str, tuple[float, float]] = {
    "kidney": (0.05, 0.3),
    "bladder": (0.4, 0.8),
    "soft_tissue": (0.4, 0.7),
}
"""Uptake multipliers (uniform ranges) in a superscan: faint or absent kidneys, bladder still seen
(DOMAIN.md), less soft tissue as the skeleton takes the tracer (values # assumption)."""

JOINT_WEIGHTS: dict[str, float] = {
    "knee": 0.24,
    "shoulder": 0.1,
    "acromioclavicular": 0.08,
    "hip": 0.1,
    "thumb_base": 0.08,
    "big_toe": 0.07,
    "ankle": 0.05,
    "spine": 0.22,
    "sacroiliac": 0.06,
}
"""Where degenerative uptake appears, relative frequency (# assumption from clinical experience)."""

SPINE_JOINTS: tuple[str, ...] = ("C5", "C6", "L3", "L4", "L5")


@dataclass
class Finding:
    """One focal uptake change: a lesion (condition) or a mimic, with its ground truth."""

    kind: str
    bone: str
    position_mm: tuple[float, float, float]
    diameter_mm: float
    contrast: float
    primitive: Primitive = field(repr=False)

    def ground_truth(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bone": self.bone,
            "position_mm": [round(v, 2) for v in self.position_mm],
            "diameter_mm": round(self.diameter_mm, 2),
            "contrast": round(self.contrast, 3),
        }


@dataclass
class Condition:
    """A study's sampled condition and everything it changes."""

    label: str
    perugini_grade: int
    primary: str = ""
    superscan: bool = False
    superscan_factor: float = 1.0
    lesions: list[Finding] = field(default_factory=list)
    cardiac_to_bone: float = 0.0
    bone_factor: float = 1.0
    soft_tissue_factor: float = 1.0
    kidney_factor: float = 1.0
    bladder_factor: float = 1.0


def sample_label(config: DiseaseConfig, rng: np.random.Generator) -> tuple[str, int]:
    """Condition and Perugini grade by the site's prevalence."""
    draw = rng.random()
    if draw < config.metastasis_prevalence:
        return "metastasis", 0
    if draw < config.metastasis_prevalence + config.amyloidosis_prevalence:
        weights = np.asarray(config.grade_weights, dtype=float)
        return "amyloidosis", int(rng.choice(3, p=weights / weights.sum())) + 1
    return "normal", 0


def sample_condition(
    phantom: Phantom, config: DiseaseConfig, tracer: str, rng: np.random.Generator
) -> Condition:
    """Sample the condition and add its lesions to ``phantom`` (in place)."""
    label, grade = sample_label(config, rng)
    condition = Condition(label, grade)
    if label == "metastasis":
        _metastases(phantom, config, condition, rng)
    elif label == "amyloidosis":
        spread = float(rng.lognormal(0.0, config.cardiac_spread))
        condition.cardiac_to_bone = config.cardiac_to_bone[grade - 1] * config.tracer_cardiac[tracer] * spread
        if grade == 3:
            condition.bone_factor = float(rng.uniform(*config.grade3_bone_factor))
            condition.soft_tissue_factor = float(rng.uniform(*config.grade3_soft_tissue_factor))
    return condition


def _metastases(
    phantom: Phantom, config: DiseaseConfig, condition: Condition, rng: np.random.Generator
) -> None:
    primaries = list(config.primary_weights)
    weights = np.asarray([config.primary_weights[p] for p in primaries], dtype=float)
    primary = primaries[int(rng.choice(len(primaries), p=weights / weights.sum()))]
    condition.primary = primary
    factors = config.primary_region_factors.get(primary, {})
    regions = [r for r in config.region_weights if config.region_weights[r] > 0]
    region_p = np.asarray([config.region_weights[r] * factors.get(r, 1.0) for r in regions], dtype=float)
    region_p /= region_p.sum()
    widespread = rng.random() < config.widespread_fraction
    if rng.random() < config.superscan_fraction:
        condition.superscan = True
        condition.superscan_factor = float(rng.uniform(*config.superscan_bone_factor))
        condition.kidney_factor = float(rng.uniform(*SUPERSCAN_FACTORS["kidney"]))
        condition.bladder_factor = float(rng.uniform(*SUPERSCAN_FACTORS["bladder"]))
        condition.soft_tissue_factor = float(rng.uniform(*SUPERSCAN_FACTORS["soft_tissue"]))
        axial = {b for r in AXIAL_REGIONS for b in REGION_BONES[r]}
        for prim in phantom.primitives:
            if prim.compartment == "bone" and (prim.bone in axial or _proximal_long_bone(prim, phantom)):
                prim.density *= condition.superscan_factor
    if widespread or condition.superscan:
        count = int(rng.integers(config.widespread_count[0], config.widespread_count[1] + 1))
    else:
        count = 1 + int(rng.poisson(config.lesion_count_mean - 1.0))
    hot_contrast = config.superscan_lesion_contrast if condition.superscan else config.lesion_contrast
    for _ in range(count):
        region = regions[int(rng.choice(len(regions), p=region_p))]
        cold = rng.random() < config.cold_lesion_fraction
        finding = _lesion(phantom, config, region, cold, hot_contrast, rng)
        if finding is None and cold:  # no bone thick enough for a lytic lesion there: a hot one instead
            finding = _lesion(phantom, config, region, False, hot_contrast, rng)
        if finding is not None:
            condition.lesions.append(finding)
            phantom.primitives.append(finding.primitive)


def _proximal_long_bone(prim: Primitive, phantom: Phantom) -> bool:
    if not prim.bone.startswith(("femur", "humerus")):
        return False
    return prim in _proximal(phantom.of_bone(prim.bone))


def _proximal(prims: list[Primitive]) -> list[Primitive]:
    """The primitives of a long bone whose centre lies in its upper 40 %."""
    ys = [_centre(p)[1] for p in prims]
    top, bottom = min(ys), max(ys)
    return [p for p, y in zip(prims, ys, strict=True) if y <= top + 0.4 * (bottom - top)]


def _centre(prim: Primitive) -> tuple[float, float, float]:
    if isinstance(prim, Capsule):
        return tuple(0.5 * (a + b) for a, b in zip(prim.p0, prim.p1, strict=True))
    if isinstance(prim, Ellipsoid):
        return prim.centre
    xs, ys = zip(*prim.points, strict=True)
    return (sum(xs) / 3, sum(ys) / 3, prim.z)


def _pick_bone(region: str, rng: np.random.Generator) -> str:
    bones = REGION_BONES[region]
    if region == "spine":
        weights = np.asarray([SPINE_WEIGHTS[v[0]] for v in bones])
        return bones[int(rng.choice(len(bones), p=weights / weights.sum()))]
    return bones[int(rng.integers(len(bones)))]


def _lesion(
    phantom: Phantom,
    config: DiseaseConfig,
    region: str,
    cold: bool,
    hot_contrast: tuple[float, float],
    rng: np.random.Generator,
) -> Finding | None:
    """A metastasis in ``region``: a hot lesion anywhere in the bone, a cold one only in thick bone."""
    for _attempt in range(8):
        bone = _pick_bone(region, rng)
        prims = phantom.of_bone(bone)
        if region in PROXIMAL_ONLY:
            prims = _proximal(prims)
        if not prims:
            return None
        volumes = np.asarray([p.volume() for p in prims])
        host = prims[int(rng.choice(len(prims), p=volumes / volumes.sum()))]
        point, wall = _point_in(host, rng)
        diameter = float(rng.uniform(*config.lesion_diameter_mm))
        if cold:
            width = _host_width(host)
            if wall < 14.0 or width < 16.0:
                continue
            diameter = min(diameter, width)
            contrast = float(rng.uniform(*config.cold_contrast))
        else:
            contrast = float(rng.uniform(*hot_contrast))
        column = _column_uptake(phantom, bone, point)
        primitive = _spot(host, point, diameter, contrast, wall, rng, compartment="lesion", column=column)
        return Finding("cold" if cold else "hot", bone, point, diameter, contrast, primitive)
    return None


def _column_uptake(phantom: Phantom, bone: str, point: tuple[float, float, float]) -> float:
    """Projected uptake (density × thickness) of ``bone`` through ``point``: what a lesion multiplies."""
    return sum(
        thickness_at(prim, point[0], point[1]) * prim.density
        for prim in phantom.primitives
        if prim.bone == bone and prim.compartment == "bone"
    )


def _point_in(host: Primitive, rng: np.random.Generator) -> tuple[tuple[float, float, float], float]:
    """A random point inside ``host`` and the bone's thickness along z there (mm)."""
    if isinstance(host, Capsule):
        t = float(rng.uniform(0.1, 0.9))
        point = tuple(a + t * (b - a) for a, b in zip(host.p0, host.p1, strict=True))
        radius = host.r0 + t * (host.r1 - host.r0)
        return point, 2.0 * radius
    if isinstance(host, Ellipsoid):
        a, b, c = host.axes
        if host.shell > 0:
            theta = float(rng.uniform(0.0, 2 * math.pi))
            phi = float(rng.uniform(-0.25 * math.pi, 0.45 * math.pi))
            radius = 1.0 - 0.5 * host.shell
            u = a * radius * math.cos(phi) * math.sin(theta)
            v = -b * radius * math.sin(phi)
            z = c * radius * math.cos(phi) * math.cos(theta)
            wall = host.shell * (a + b + c) / 3.0
        else:
            u, v = (float(x) for x in rng.uniform(-0.45, 0.45, size=2) * (a, b))
            z = 0.0
            wall = 0.0
        cos, sin = math.cos(host.angle), math.sin(host.angle)
        cx, cy, cz = host.centre
        point = (cx + u * cos - v * sin, cy + u * sin + v * cos, cz + z)
        if not wall:
            wall = thickness_at(host, point[0], point[1])
        return point, wall
    weights = rng.dirichlet((2.0, 2.0, 2.0))
    x = sum(w * px for w, (px, _) in zip(weights, host.points, strict=True))
    y = sum(w * py for w, (_, py) in zip(weights, host.points, strict=True))
    return (float(x), float(y), host.z), host.thickness


def _host_width(host: Primitive) -> float:
    if isinstance(host, Capsule):
        return 2.0 * min(host.r0, host.r1)
    if isinstance(host, Ellipsoid):
        return 2.0 * min(host.axes[:2])
    x0, x1, x2 = (p[0] for p in host.points)
    return 0.5 * (max(x0, x1, x2) - min(x0, x1, x2))


def _spot(
    host: Primitive | None,
    point: tuple[float, float, float],
    diameter: float,
    contrast: float,
    wall: float,
    rng: np.random.Generator,
    *,
    compartment: str,
    column: float | None = None,
) -> Ellipsoid:
    """An ellipsoid at ``point`` adding ``contrast - 1`` times the bone uptake of its column.

    ``column`` is the bone's projected uptake (density × thickness, summed over the bone's
    primitives) through the centre, by default ``wall`` × the host density. Along a capsule host
    (rib, long bone) the spot is elongated along the bone and no wider than it; its z half-extent
    is at most half the bone's local thickness ``wall``.
    """
    half = 0.5 * diameter
    if isinstance(host, Capsule):
        angle = math.atan2(host.p1[1] - host.p0[1], host.p1[0] - host.p0[0])
        across = min(half, max(host.r0, host.r1))
        axes_xy = (half, across)
    else:
        angle = float(rng.uniform(0.0, math.pi))
        axes_xy = (half, half * float(rng.uniform(0.75, 1.0)))
    depth = max(min(half, 0.5 * wall), 1.0)
    if column is None:
        column = (host.density if host is not None else 1.0) * wall
    density = (contrast - 1.0) * column / (2.0 * depth)
    return Ellipsoid(
        host.bone if host is not None else "soft_tissue",
        point,
        (axes_xy[0], axes_xy[1], depth),
        angle=angle,
        density=density,
        compartment=compartment,
    )


def add_mimics(
    phantom: Phantom, patient: Patient, config: DiseaseConfig, rng: np.random.Generator
) -> list[Finding]:
    """Benign findings a classifier must not call disease: added to ``phantom`` in every class."""
    findings: list[Finding] = []
    decades = max(patient.age - 40.0, 0.0) / 10.0
    for _ in range(int(rng.poisson(config.degenerative_per_decade * decades))):
        findings.extend(_degenerative(phantom, rng))
    if rng.random() < config.rib_fracture_probability:
        findings.extend(_rib_fractures(phantom, rng))
    if rng.random() < config.injection_site_probability:
        findings.append(_injection_site(phantom, rng))
    if rng.random() < config.urine_contamination_probability:
        findings.extend(_urine_contamination(phantom, rng))
    phantom.primitives.extend(f.primitive for f in findings)
    return findings


def _degenerative(phantom: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Joint uptake, bilateral and symmetric more often than not."""
    joints = list(JOINT_WEIGHTS)
    weights = np.asarray([JOINT_WEIGHTS[j] for j in joints])
    joint = joints[int(rng.choice(len(joints), p=weights / weights.sum()))]
    contrast = float(rng.uniform(1.5, 3.5))  # milder than most metastases (# assumption)
    diameter = float(rng.uniform(14.0, 30.0))  # about a joint's size (# assumption)
    if joint == "spine":
        level = SPINE_JOINTS[int(rng.integers(len(SPINE_JOINTS)))]
        x, y, z = phantom.landmarks[level]
        sides = [(s, sign) for s, sign in SIDES if rng.random() < 0.7] or [
            SIDES[int(rng.integers(2))]
        ]  # facets
        points = [(f"{level}", (x + sign * 18.0, y, z - 22.0)) for _, sign in sides]
        diameter = min(diameter, 20.0)
    else:
        both = rng.random() < 0.6  # degenerative disease is usually symmetric (DOMAIN.md; share # assumption)
        chosen = list(SIDES) if both else [SIDES[int(rng.integers(2))]]
        points = [(f"{joint}_{side}", phantom.landmarks[f"{joint}_{side}"]) for side, _ in chosen]
    findings = []
    for name, point in points:
        c = contrast * float(rng.uniform(0.85, 1.15))
        spot = _spot(None, point, diameter, c, 0.6 * diameter, rng, compartment="lesion")
        findings.append(Finding("degenerative", name, point, diameter, c, spot))
    return findings


def _rib_fractures(phantom: Phantom, rng: np.random.Generator) -> list[Finding]:
    """Two to four focal spots on adjacent ribs, aligned (same segment along each rib)."""
    side = SIDES[int(rng.integers(2))][0]
    first = int(rng.integers(3, 10))  # ribs 3-9 first (# assumption)
    count = int(rng.integers(2, 5))  # several adjacent ribs, DOMAIN.md
    segment = int(rng.integers(2, 7))  # lateral to posterolateral arc (# assumption)
    findings = []
    for rib in range(first, min(first + count, 13)):
        prims = phantom.of_bone(f"rib_{side}{rib}")
        if segment >= len(prims):
            continue
        host = prims[segment]
        point = tuple(0.5 * (a + b) for a, b in zip(host.p0, host.p1, strict=True))
        diameter = float(rng.uniform(8.0, 14.0))  # small focal spots (# assumption)
        contrast = float(rng.uniform(2.5, 5.0))  # (# assumption)
        spot = _spot(host, point, diameter, contrast, 2.0 * host.r0, rng, compartment="lesion")
        findings.append(Finding("rib_fracture", host.bone, point, diameter, contrast, spot))
    return findings


def _injection_site(phantom: Phantom, rng: np.random.Generator) -> Finding:
    """Tracer left at the injection site: antecubital fossa or back of the hand."""
    side = SIDES[int(rng.integers(2))][0]
    place = "elbow" if rng.random() < 0.65 else "thumb_base"  # (# assumption)
    x, y, z = phantom.landmarks[f"{place}_{side}"]
    point = (x + float(rng.normal(0, 6)), y + float(rng.normal(0, 10)), z + 15.0)
    diameter = float(rng.uniform(6.0, 18.0))  # (# assumption)
    contrast = float(rng.lognormal(math.log(15.0), 0.8))  # often the hottest spot of the scan (# assumption)
    spot = _spot(None, point, diameter, contrast, 0.6 * diameter, rng, compartment="hotspot")
    return Finding("injection_site", f"{place}_{side}", point, diameter, contrast, spot)


def _urine_contamination(phantom: Phantom, rng: np.random.Generator) -> list[Finding]:
    """One to three blobs of urine on skin or clothing near the groin and upper thighs."""
    findings = []
    side = SIDES[int(rng.integers(2))][0]
    x, y, z = phantom.landmarks[f"groin_{side}"]
    for _ in range(int(rng.integers(1, 4))):
        point = (x + float(rng.normal(0, 25)), y + float(rng.uniform(-10, 120)), z + 20.0)
        diameter = float(rng.uniform(8.0, 25.0))  # (# assumption)
        contrast = float(rng.lognormal(math.log(8.0), 0.7))  # urine is hot (# assumption)
        spot = _spot(None, point, diameter, contrast, 0.5 * diameter, rng, compartment="hotspot")
        findings.append(Finding("urine_contamination", f"groin_{side}", point, diameter, contrast, spot))
    return findings
