"""Disease and its mimics on the phantom's real bone geometry.

A metastasis is a sphere centred on a bone point of the chosen bone: every bone voxel inside it
takes ``contrast`` times its normal uptake (``contrast`` < 1: a cold, lytic lesion), so lesions
follow the bone's shape and smaller ones lose contrast to the partial-volume effect as real lesions
do. Cardiac amyloidosis is myocardial uptake at a Perugini-grade- and tracer-dependent concentration
relative to bone. Benign mimics (degenerative joints on the joint surfaces, aligned rib fractures,
injection site, urine contamination) are added in every class.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from synthscan.simulator.anatomy import SIDES, Patient
from synthscan.simulator.phantom import ReferencePhantom
from synthscan.simulator.sites import DiseaseConfig
from synthscan.simulator.uptake import Blob, bone_stem, ellipsoid

VERTEBRAE: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
)
REGION_BONES: dict[str, tuple[str, ...]] = {
    "spine": VERTEBRAE,
    "ribs": tuple(f"rib_{side}{i}" for side, _ in SIDES for i in range(1, 13)),
    "pelvis": tuple(f"{b}_{s}" for b in ("ilium", "ischium", "pubis") for s, _ in SIDES),
    "sacrum": ("sacrum",),
    "femur": ("femur_R", "femur_L"),
    "skull": ("skull", "face"),
    "humerus": ("humerus_R", "humerus_L"),
    "sternum": ("sternum",),
    "scapula": ("scapula_R", "scapula_L"),
    "clavicle": ("clavicle_R", "clavicle_L"),
}
"""Bones of each metastasis region (names as in the phantom)."""

SPINE_WEIGHTS: dict[str, float] = {"C": 0.4, "T": 1.0, "L": 1.2}
"""Relative lesion risk per vertebra by segment: thoracic and lumbar most, cervical least
(red-marrow distribution, DOMAIN.md; exact weights # assumption)."""

PROXIMAL_ONLY: frozenset[str] = frozenset({"femur", "humerus"})
"""Long bones whose metastases sit in the red-marrow-bearing proximal 40 % (DOMAIN.md)."""

COLD_REGIONS: frozenset[str] = frozenset({"spine", "pelvis", "sacrum", "femur", "skull", "humerus"})
"""Where a lytic lesion is wide enough to show as a defect (# assumption)."""

AXIAL_STEMS: frozenset[str] = frozenset(
    {
        "C",
        "T",
        "L",
        "sacrum",
        "rib",
        "ilium",
        "ischium",
        "pubis",
        "skull",
        "face",
        "mandible",
        "sternum",
        "scapula",
        "clavicle",
    }
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
    position_mm: tuple[float, float, float]  # phantom frame, before posing
    diameter_mm: float
    contrast: float
    segment: int = 0

    def ground_truth(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "bone": self.bone,
            "position_mm": [round(float(v), 2) for v in self.position_mm],
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


class Skeleton:
    """Bone points of the phantom with a spatial index, and the patient's uptake per point."""

    def __init__(self, phantom: ReferencePhantom, uptake: np.ndarray):
        self.phantom = phantom
        self.uptake = uptake
        self.tree = _tree(phantom)
        self.stems = np.asarray(["", *(bone_stem(b) for b in phantom.bones)])

    def segment(self, point: int) -> int:
        """Limb segment a bone point moves with (lesions follow it into the patient's pose)."""
        return int(self.phantom.bone.segment[point])

    def of_bone(self, name: str) -> np.ndarray:
        return np.flatnonzero(self.phantom.bone.kind == self.phantom.bone_id(name))

    def multiply(
        self, centre: np.ndarray, diameter: float, factor: float, bones: np.ndarray | None = None
    ) -> int:
        """Multiply the uptake of the bone points within the sphere (of ``bones`` only, if given)."""
        idx = np.asarray(self.tree.query_ball_point(centre, 0.5 * diameter), dtype=np.int64)
        if bones is not None:
            idx = idx[np.isin(self.phantom.bone.kind[idx], bones)]
        self.uptake[idx] *= factor
        return len(idx)


_TREES: dict[int, cKDTree] = {}


def _tree(phantom: ReferencePhantom) -> cKDTree:
    """Spatial index of the bone points (built once per process)."""
    key = id(phantom)
    if key not in _TREES:
        _TREES[key] = cKDTree(phantom.bone.xyz)
    return _TREES[key]


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
    skeleton: Skeleton, config: DiseaseConfig, tracer: str, rng: np.random.Generator
) -> Condition:
    """Sample the condition and apply its lesions to the skeleton's uptake (in place)."""
    label, grade = sample_label(config, rng)
    condition = Condition(label, grade)
    if label == "metastasis":
        _metastases(skeleton, config, condition, rng)
    elif label == "amyloidosis":
        spread = float(rng.lognormal(0.0, config.cardiac_spread))
        condition.cardiac_to_bone = config.cardiac_to_bone[grade - 1] * config.tracer_cardiac[tracer] * spread
        if grade == 3:
            condition.bone_factor = float(rng.uniform(*config.grade3_bone_factor))
            condition.soft_tissue_factor = float(rng.uniform(*config.grade3_soft_tissue_factor))
    return condition


def _metastases(
    skeleton: Skeleton, config: DiseaseConfig, condition: Condition, rng: np.random.Generator
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
        stems = skeleton.stems[skeleton.phantom.bone.kind]
        axial = np.isin(stems, list(AXIAL_STEMS))
        for bone in ("femur", "humerus"):
            for side, _ in SIDES:
                axial[_proximal(skeleton, f"{bone}_{side}")] = True
        skeleton.uptake[axial] *= condition.superscan_factor
    if widespread or condition.superscan:
        count = int(rng.integers(config.widespread_count[0], config.widespread_count[1] + 1))
    else:
        count = 1 + int(rng.poisson(config.lesion_count_mean - 1.0))
    hot_contrast = config.superscan_lesion_contrast if condition.superscan else config.lesion_contrast
    for _ in range(count):
        region = regions[int(rng.choice(len(regions), p=region_p))]
        cold = region in COLD_REGIONS and rng.random() < config.cold_lesion_fraction
        bone = _pick_bone(region, rng)
        candidates = _proximal(skeleton, bone) if region in PROXIMAL_ONLY else skeleton.of_bone(bone)
        if candidates.size == 0:
            continue
        point = candidates[int(rng.integers(candidates.size))]
        centre = skeleton.phantom.bone.xyz[point]
        diameter = float(rng.uniform(*config.lesion_diameter_mm))
        contrast = float(rng.uniform(*(config.cold_contrast if cold else hot_contrast)))
        skeleton.multiply(centre, diameter, contrast)
        kind = "cold" if cold else "hot"
        condition.lesions.append(
            Finding(kind, bone, tuple(centre), diameter, contrast, skeleton.segment(point))
        )


def _proximal(skeleton: Skeleton, bone: str) -> np.ndarray:
    """Points of a long bone in its upper 40 % (phantom pose: limbs hang down)."""
    idx = skeleton.of_bone(bone)
    z = skeleton.phantom.bone.xyz[idx, 2]
    top, bottom = z.max(), z.min()
    return idx[z >= top - 0.4 * (top - bottom)]


def _pick_bone(region: str, rng: np.random.Generator) -> str:
    bones = REGION_BONES[region]
    if region == "spine":
        weights = np.asarray([SPINE_WEIGHTS[v[0]] for v in bones])
        return bones[int(rng.choice(len(bones), p=weights / weights.sum()))]
    return bones[int(rng.integers(len(bones)))]


def add_mimics(
    skeleton: Skeleton, patient: Patient, config: DiseaseConfig, rng: np.random.Generator
) -> tuple[list[Finding], list[tuple[Blob, float]]]:
    """Benign findings a classifier must not call disease, in every class: bone changes applied to the
    skeleton's uptake, and hot spots outside bone as (blob, concentration relative to bone)."""
    findings: list[Finding] = []
    blobs: list[tuple[Blob, float]] = []
    decades = max(patient.age - 40.0, 0.0) / 10.0
    for _ in range(int(rng.poisson(config.degenerative_per_decade * decades))):
        findings.extend(_degenerative(skeleton, rng))
    if rng.random() < config.rib_fracture_probability:
        findings.extend(_rib_fractures(skeleton, rng))
    if rng.random() < config.injection_site_probability:
        finding, blob = _injection_site(skeleton.phantom, rng)
        findings.append(finding)
        blobs.append((blob, finding.contrast))
    if rng.random() < config.urine_contamination_probability:
        for finding, blob in _urine_contamination(skeleton.phantom, rng):
            findings.append(finding)
            blobs.append((blob, finding.contrast))
    return findings, blobs


def _degenerative(skeleton: Skeleton, rng: np.random.Generator) -> list[Finding]:
    """Joint uptake on a patch of the joint surface, bilateral and symmetric more often than not."""
    ph = skeleton.phantom
    joints = list(JOINT_WEIGHTS)
    weights = np.asarray([JOINT_WEIGHTS[j] for j in joints])
    joint = joints[int(rng.choice(len(joints), p=weights / weights.sum()))]
    contrast = float(rng.uniform(1.5, 3.0))  # milder than most metastases (# assumption)
    diameter = float(rng.uniform(14.0, 30.0))  # about a joint's size (# assumption)
    both = rng.random() < 0.6  # degenerative disease is usually symmetric (DOMAIN.md; share # assumption)
    sides = [s for s, _ in SIDES] if both else [SIDES[int(rng.integers(2))][0]]
    findings = []
    for side in sides:
        if joint == "spine":
            level = SPINE_JOINTS[int(rng.integers(len(SPINE_JOINTS)))]
            idx = skeleton.of_bone(level)
            xyz = ph.bone.xyz[idx]
            facet = idx[
                (np.sign(xyz[:, 0]) == (-1 if side == "R" else 1)) & (xyz[:, 1] > np.median(xyz[:, 1]))
            ]
            candidates, name, size = facet, level, min(diameter, 18.0)
        elif joint == "thumb_base":
            idx = skeleton.of_bone(f"hand_{side}")
            near = np.linalg.norm(ph.bone.xyz[idx] - ph.landmarks_mm[f"wrist_{side}"], axis=1) < 35.0
            candidates, name, size = idx[near], f"thumb_base_{side}", min(diameter, 16.0)
        elif joint == "big_toe":
            idx = skeleton.of_bone(f"foot_{side}")
            y = ph.bone.xyz[idx, 1]
            candidates = idx[y < np.percentile(y, 12)]  # the forefoot: the most anterior foot bones
            name, size = f"big_toe_{side}", min(diameter, 16.0)
        else:
            candidates = np.flatnonzero(ph.joint == ph.joint_id(f"{joint}_{side}"))
            name, size = f"{joint}_{side}", diameter
        if candidates.size == 0:
            continue
        point = candidates[int(rng.integers(candidates.size))]
        centre = ph.bone.xyz[point]
        c = contrast * float(rng.uniform(0.85, 1.15))
        skeleton.multiply(centre, size, c)
        findings.append(Finding("degenerative", name, tuple(centre), size, c, skeleton.segment(point)))
    return findings


def _rib_fractures(skeleton: Skeleton, rng: np.random.Generator) -> list[Finding]:
    """Two to four focal spots on adjacent ribs, aligned at the same place around the chest."""
    ph = skeleton.phantom
    side = SIDES[int(rng.integers(2))][0]
    first = int(rng.integers(3, 10))  # ribs 3-9 first (# assumption)
    count = int(rng.integers(2, 5))  # several adjacent ribs, DOMAIN.md
    angle = float(rng.uniform(-0.6, 1.0))  # anterolateral (-) to posterolateral (+) arc (# assumption)
    findings = []
    for rib in range(first, min(first + count, 13)):
        bone = f"rib_{side}{rib}"
        idx = skeleton.of_bone(bone)
        if idx.size == 0:
            continue
        xyz = ph.bone.xyz[idx]
        around = np.arctan2(xyz[:, 1] - 20.0, np.abs(xyz[:, 0]))
        centre = xyz[int(np.argmin(np.abs(around - angle)))]
        diameter = float(rng.uniform(8.0, 14.0))  # small focal spots (# assumption)
        contrast = float(rng.uniform(2.5, 5.0))  # (# assumption)
        skeleton.multiply(centre, diameter, contrast, bones=np.asarray([ph.bone_id(bone)]))
        findings.append(Finding("rib_fracture", bone, tuple(centre), diameter, contrast))
    return findings


def _injection_site(ph: ReferencePhantom, rng: np.random.Generator) -> tuple[Finding, Blob]:
    """Tracer left at the injection site: antecubital fossa or back of the hand; moves with the arm."""
    side = SIDES[int(rng.integers(2))][0]
    if rng.random() < 0.65:  # (# assumption)
        place, segment = "elbow", f"forearm_{side}"
        centre = ph.landmarks_mm[f"elbow_{side}"] + np.asarray([0.0, -28.0, -15.0])  # front of the elbow
    else:
        place, segment = "hand", f"hand_{side}"
        centre = ph.landmarks_mm[f"wrist_{side}"] + np.asarray([0.0, -5.0, -45.0])
    centre = centre + rng.normal(0.0, 5.0, 3)
    diameter = float(rng.uniform(6.0, 18.0))  # (# assumption)
    contrast = float(rng.lognormal(math.log(15.0), 0.8))  # often the hottest spot of the scan (# assumption)
    blob = ellipsoid(
        "injection_site", centre, (0.5 * diameter,) * 3, pitch=2.0, segment=ph.segment_id(segment)
    )
    return Finding(
        "injection_site", f"{place}_{side}", tuple(centre), diameter, contrast, ph.segment_id(segment)
    ), blob


def _urine_contamination(ph: ReferencePhantom, rng: np.random.Generator) -> list[tuple[Finding, Blob]]:
    """One to three blobs of urine on skin or clothing near the groin and upper thighs."""
    out = []
    side, sign = SIDES[int(rng.integers(2))]
    hip = ph.landmarks_mm[f"hip_{side}"]
    for _ in range(int(rng.integers(1, 4))):
        x = hip[0] - sign * 20.0 + float(rng.normal(0, 20))
        z = hip[2] - float(rng.uniform(20, 140))
        centre = np.asarray([x, ph.surface_front(x, z) + 4.0, z])
        diameter = float(rng.uniform(8.0, 25.0))  # (# assumption)
        contrast = float(rng.lognormal(math.log(8.0), 0.7))  # urine is hot (# assumption)
        blob = ellipsoid("urine", centre, (0.5 * diameter, 3.0, 0.5 * diameter), pitch=2.0)
        out.append((Finding("urine_contamination", f"groin_{side}", tuple(centre), diameter, contrast), blob))
    return out
