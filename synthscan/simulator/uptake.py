"""Normal tracer distribution on the phantom: bone uptake by bone and joint, soft tissue, organs.

Bone uptake follows bone turnover and red marrow: highest in the sacro-iliac joints, sacrum and
vertebrae, lower in the cortical shafts of the long bones (DOMAIN.md). The levels below are
relative to a lumbar vertebra; they are assumptions, set so that the landmark ratios of real
whole-body scans (hip / lumbar spine, knee / femoral shaft, skull centre / rim, rib modulation;
``synthscan/evaluation/realism_targets.json``) come out in range (docs/simulator/).
Organs the mesh phantom lacks (kidneys, bladder, heart, breasts) are ellipsoids placed on its
anatomy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from synthscan.simulator.phantom import ReferencePhantom

BONE_UPTAKE: dict[str, float] = {
    "skull": 1.0,  # vault and base; with the mandible, sets the head's share of counts (assumption)
    "face": 0.3,  # maxilla, nasal bones, orbits: thin bone seen end-on behind the vault (assumption)
    "mandible": 1.0,  # alveolar ridges and teeth sockets turn over fast (assumption)
    "C": 0.85,
    "T": 0.95,
    "L": 1.0,  # reference: lumbar vertebra
    "sacrum": 1.1,
    "sternum": 0.85,
    "rib": 0.5,
    "clavicle": 0.7,
    "scapula": 0.6,
    "humerus": 0.42,
    "forearm": 0.42,
    "hand": 0.7,
    "ilium": 0.8,
    "ischium": 0.75,
    "pubis": 0.75,
    "femur": 0.48,
    "patella": 0.55,
    "tibia": 0.37,
    "fibula": 0.4,
    "foot": 0.55,
}
"""Uptake per bone relative to a lumbar vertebra (# assumption, see the module docstring)."""

FACE_BLEND_MM = (765.0, 795.0)
"""Phantom heights (z, mm) over which face uptake turns into vault uptake (the face label ends at 795)."""

JOINT_UPTAKE: dict[str, float] = {
    "sacroiliac": 1.6,  # the sacro-iliac joints are among the brightest bones of a normal scan
    "hip": 1.05,
    "knee": 1.0,
    "ankle": 1.2,
    "shoulder": 1.0,
    "acromioclavicular": 1.2,
    "sternoclavicular": 1.4,
    "elbow": 1.0,
    "wrist": 1.1,
}
"""Extra uptake of joint surfaces (× the bone's level; # assumption: joints only mildly hot)."""

TISSUE_UPTAKE: dict[str, float] = {
    "outside": 0.0,
    "soft_tissue": 1.0,
    "lung": 0.35,  # less tissue per volume, blood-rich (# assumption)
    "liver": 1.2,  # (# assumption)
    "brain": 0.25,  # behind the blood-brain barrier (# assumption)
    "air": 0.0,
}
"""Soft-tissue concentration per tissue, relative to the body's mean soft tissue."""

LIMB_SOFT_TISSUE = 1.3
"""Soft-tissue concentration of the legs relative to the trunk's: mostly muscle, little fat
(# assumption, calibrated to the thigh and shin soft-tissue / bone ratios of targets.json)."""

SOFT_TEXTURE_SCALE_MM = 8.0
"""Kernel sd smoothing the soft tissue's white noise: lumps of muscle, fat and vessels 20-80 mm across,
most of the field's variance at wavelengths near 2π × 8 ≈ 50 mm (# assumption)."""
SOFT_TEXTURE_AMPLITUDE = 0.2
"""Relative sd of the soft-tissue heterogeneity (# assumption; the fine-structure and noise-texture
metrics of targets.json barely change between 0.2 and 0.4, docs/simulator)."""

GROWTH_PLATES: tuple[tuple[str, str, float], ...] = (
    ("femur", "knee", 22.0),
    ("tibia", "knee", -20.0),
    ("fibula", "knee", -28.0),
    ("humerus", "shoulder", -30.0),
    ("forearm", "wrist", 18.0),
)
"""Physes as (bone, joint landmark, offset along z in mm) lit in the young (# assumption)."""


def bone_stem(name: str) -> str:
    """'L3' → 'L', 'rib_R4' → 'rib', 'femur_L' → 'femur', 'sacrum' → 'sacrum'."""
    if name[0] in "CTL" and name[1:].isdigit():
        return name[0]
    return name.split("_")[0]


def base_bone_uptake(phantom: ReferencePhantom) -> np.ndarray:
    """Normal uptake of every bone point before patient variation (relative to a lumbar vertebra)."""
    stems = [bone_stem(b) for b in phantom.bones]
    level = np.asarray([0.0, *(BONE_UPTAKE[s] for s in stems)], np.float32)[phantom.bone.kind]
    # The face's upper edge (its label's cut through the orbits) blends into the vault over 30 mm.
    face = phantom.bone.kind == phantom.bone_id("face")
    low, high = FACE_BLEND_MM
    blend = np.clip((phantom.bone.xyz[face, 2] - low) / (high - low), 0.0, 1.0)
    level[face] = (1.0 - blend) * BONE_UPTAKE["face"] + blend * BONE_UPTAKE["skull"]
    joint_gain = np.asarray([1.0, *(JOINT_UPTAKE[j.rsplit("_", 1)[0]] for j in phantom.joints)], np.float32)
    return (level * joint_gain[phantom.joint]).astype(np.float32)


def soft_tissue_uptake(phantom: ReferencePhantom) -> np.ndarray:
    """Relative soft-tissue concentration of every soft-tissue point (tissue type, limb muscle)."""
    level = np.asarray([TISSUE_UPTAKE[t] for t in phantom.tissues], np.float32)[phantom.soft.kind]
    legs = np.isin(phantom.soft.segment, [phantom.segment_id(f"leg_{s}") for s in "RL"])
    return np.where(legs, level * LIMB_SOFT_TISSUE, level).astype(np.float32)


def heterogeneity(xyz: np.ndarray, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random multiplicative field (mean 1, sd ``amplitude``) over points: soft tissue is
    muscle, fat and vessels, not a uniform gel. A Gaussian random field (white noise on a grid as
    fine as the kernel's sd, smoothed, read at the points), so its lumps are local: a sum of a few
    whole-body plane waves drew the same horizontal stripes from chest to feet."""
    spacing = SOFT_TEXTURE_SCALE_MM
    low = xyz.min(axis=0)
    shape = tuple(np.ceil((xyz.max(axis=0) - low) / spacing).astype(int) + 1)
    # wrapped edges: only the outermost parts of the two hands share texture across the grid
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), 1.0, mode="wrap")
    values = ndimage.map_coordinates(field, ((xyz - low) / spacing).T, order=1)
    values = (values - values.mean()) / values.std()
    return (1.0 + amplitude * values).clip(0.2, None).astype(np.float32)


def growth_plates(phantom: ReferencePhantom, uptake: np.ndarray, gain: float) -> None:
    """Light the physes of a young patient (in place): a 6 mm band across each long-bone end."""
    z = phantom.bone.xyz[:, 2]
    for side in "RL":
        for bone, joint, offset in GROWTH_PLATES:
            level = phantom.landmarks_mm[f"{joint}_{side}"][2] + offset
            band = (phantom.bone.kind == phantom.bone_id(f"{bone}_{side}")) & (np.abs(z - level) < 3.0)
            uptake[band] *= gain


@dataclass
class Blob:
    """Extra point sources added to the phantom: an organ or a hot spot, in phantom coordinates."""

    name: str
    xyz: np.ndarray
    volume: np.ndarray
    segment: int = 0  # limb segment it moves with (0: none)


def ellipsoid(
    name: str,
    centre: np.ndarray,
    axes: tuple[float, float, float],
    *,
    pitch: float = 3.0,
    shell: float = 0.0,
    segment: int = 0,
) -> Blob:
    """Points filling an ellipsoid (semi-axes along x, y, z), or its outer ``shell`` mm only."""
    points, volume = _ellipsoid_lattice(tuple(round(float(r), 1) for r in axes), pitch, shell)
    return Blob(name, (points + centre).astype(np.float32), volume.copy(), segment)


@functools.lru_cache(maxsize=64)
def _ellipsoid_lattice(axes: tuple[float, ...], pitch: float, shell: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice points (centred on the origin) and the volume each carries (cached: the heart and
    kidneys of every patient share theirs)."""
    a = np.asarray(axes, float)
    steps = [np.arange(-r, r + 1e-6, pitch) + (0.5 * pitch if round(2 * r / pitch) % 2 else 0.0) for r in a]
    grid = np.stack(np.meshgrid(*steps, indexing="ij"), -1).reshape(-1, 3)
    keep = np.sqrt(((grid / a) ** 2).sum(1)) <= 1.0
    if shell > 0:
        inner = np.maximum(a - shell, 1e-3)
        keep &= np.sqrt(((grid / inner) ** 2).sum(1)) > 1.0
    if not keep.any():  # smaller than the lattice: one point carries the volume
        grid, keep = np.zeros((1, 3)), np.ones(1, bool)
    points = grid[keep]
    full = 4.0 / 3.0 * np.pi * np.prod(a)
    hollow = 4.0 / 3.0 * np.pi * np.prod(np.maximum(a - shell, 0.0)) if shell > 0 else 0.0
    return points, np.full(len(points), (full - hollow) / len(points), np.float32)


# Organ placement on the phantom (mm), read off its voxelized lungs, liver, spine and pelvis.
KIDNEY = {"centre": (62.0, 48.0, 292.0), "axes": (27.0, 22.0, 52.0)}  # lateral to T12-L2, posterior
BLADDER = {"centre": (-5.0, -25.0, 62.0), "axes": (42.0, 34.0, 32.0)}  # above the symphysis
HEART = {"centre": (22.0, -8.0, 432.0), "axes": (52.0, 44.0, 58.0), "wall": 11.0}  # left of midline
BREAST = {"x": 92.0, "z": 470.0, "axes": (62.0, 40.0, 56.0)}  # on the anterior chest wall


def organs(phantom: ReferencePhantom, patient) -> dict[str, list[Blob]]:
    """Kidneys, bladder, myocardium, cardiac blood pool and (for women) breasts."""
    out: dict[str, list[Blob]] = {"kidney": [], "bladder": [], "heart": [], "blood_pool": [], "breast": []}
    for side, sign in (("R", -1), ("L", 1)):
        cx, cy, cz = KIDNEY["centre"]
        rise = patient.left_kidney_rise_mm if side == "L" else 0.0
        out["kidney"].append(
            ellipsoid(f"kidney_{side}", np.asarray([sign * cx, cy, cz + rise]), KIDNEY["axes"])
        )
    fill = 0.35 + patient.bladder_filling
    out["bladder"].append(
        ellipsoid(
            "bladder", np.asarray(BLADDER["centre"]), tuple(r * fill ** (1 / 3) for r in BLADDER["axes"])
        )
    )
    centre = np.asarray(HEART["centre"])
    out["heart"].append(ellipsoid("myocardium", centre, HEART["axes"], shell=HEART["wall"]))
    inner = tuple(r - HEART["wall"] for r in HEART["axes"])
    out["blood_pool"].append(ellipsoid("blood_pool", centre, inner))
    if patient.breasts:
        axes = tuple(r * patient.breast_size ** (1 / 3) for r in BREAST["axes"])
        for _side, sign in (("R", -1), ("L", 1)):
            x, z = sign * BREAST["x"], BREAST["z"]
            chest = phantom.surface_front(x, z)
            out["breast"].append(ellipsoid("breast", np.asarray([x, chest - 0.55 * axes[1], z]), axes))
    return out
