"""Patients on the reference anatomy: who they are, how they lie, and where each point lands.

Every patient is the reference phantom (:mod:`synthscan.simulator.phantom`) re-posed and
re-proportioned: arms brought from the phantom's abducted pose to the clinical whole-body position
(along the body with the hands by the thighs, a little abducted, or the forearms resting on the
abdomen), feet plantar-flexed and splayed as they fall in a supine patient, segment lengths scaled
to the patient's height and proportions, width and depth to the habitus, then rotated slightly
about the body axis and tilted on the table. Anthropometric spreads are assumptions (each says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synthscan.simulator.phantom import ReferencePhantom

ARM_POSITIONS: tuple[str, ...] = ("sides", "abducted", "on_abdomen")
SIDES: tuple[tuple[str, int], ...] = (("R", -1), ("L", 1))
"""Patient's right is negative x (the viewer's left on the anterior view)."""

PHANTOM_ARM_ANGLE_DEG = 14.0
"""Angle of the phantom's humeri from the vertical in the coronal plane (principal axis of the arm
bones, measured by scripts/build_phantom.py's landmarks)."""

REFERENCE_BMI = 24.5
"""Body-mass index the reference phantom stands for (a 50th-percentile adult male, XCAT)."""


@dataclass
class Patient:
    """Sampled patient parameters (all stored in the study's ground truth)."""

    sex: str
    age: float
    height_mm: float
    bmi: float
    arm_position: str
    arm_angle_deg: tuple[float, float]  # final angle of each humerus from the vertical (R, L)
    forearm_sweep_deg: tuple[float, float]  # on_abdomen: how far each forearm swings medially
    ankle_offset_mm: tuple[float, float]  # each ankle's distance from the midline (legs brought together)
    foot_plantarflexion_deg: tuple[float, float]
    foot_splay_deg: tuple[float, float]
    leg_proportion: float  # relative leg length (1 = the phantom's)
    frame: float  # skeletal width relative to the phantom at the same height
    breasts: bool
    breast_size: float  # relative breast volume (1 = about 500 mL each)
    axial_rotation_deg: float
    tilt_deg: float
    top_margin_mm: float
    lateral_offset_mm: float
    partial_scan: bool
    bone_uptake: float
    soft_tissue_uptake: float
    kidney_uptake: float
    bladder_filling: float
    left_kidney_rise_mm: float


def sample_patient(mix, rng: np.random.Generator) -> Patient:
    """Draw one patient from a site's :class:`~synthscan.simulator.sites.PatientMixConfig`."""
    sex = "F" if rng.random() < mix.female_fraction else "M"
    if rng.random() < mix.young_fraction:
        age = float(rng.uniform(10.0, 20.0))
    else:
        age = float(np.clip(rng.normal(mix.age_mean, mix.age_sd), 20.0, 95.0))
    height_mean = mix.height_mean_mm[0] if sex == "F" else mix.height_mean_mm[1]
    height = float(np.clip(rng.normal(height_mean, mix.height_sd_mm), 1450.0, 2000.0))
    if age < 18:
        height *= 0.8 + 0.2 * (age - 10.0) / 8.0
    bmi = float(np.clip(rng.normal(mix.bmi_mean, mix.bmi_sd), 16.0, 45.0))
    weights = np.asarray(mix.arm_position_weights, dtype=float)
    arm = ARM_POSITIONS[int(rng.choice(len(ARM_POSITIONS), p=weights / weights.sum()))]
    # Final humerus angles: along the body 2-9°, abducted 14-24°, under forearms on the belly 4-10°
    # (assumption from clinical whole-body positioning).
    low, high = {"sides": (2.0, 9.0), "abducted": (14.0, 24.0), "on_abdomen": (4.0, 10.0)}[arm]
    young_factor = 1.0 + max(0.0, (25.0 - age) / 25.0)

    def pair(lo: float, hi: float) -> tuple[float, float]:
        """Right and left values: patients lie nearly symmetric (sides differ by ~10 % of the range)."""
        base = rng.uniform(lo, hi)
        return tuple(round(float(np.clip(base + rng.normal(0.0, 0.1 * (hi - lo)), lo, hi)), 2) for _ in "RL")

    return Patient(
        sex=sex,
        age=round(age, 1),
        height_mm=round(height, 1),
        bmi=round(bmi, 1),
        arm_position=arm,
        arm_angle_deg=pair(low, high),
        forearm_sweep_deg=pair(45.0, 62.0),  # hands meet near the midline (assumption)
        ankle_offset_mm=pair(55.0, 95.0),  # supine legs lie together, feet apart (# assumption)
        foot_plantarflexion_deg=pair(22.0, 42.0),  # supine feet fall into plantar flexion (assumption)
        foot_splay_deg=pair(5.0, 30.0),  # and external rotation (assumption)
        leg_proportion=round(float(rng.normal(1.0, 0.025)), 4),  # (# assumption)
        frame=round(float(rng.normal(0.94 if sex == "F" else 1.0, 0.035)), 4),  # (# assumption)
        breasts=sex == "F" and bool(rng.random() < mix.breast_fraction),
        breast_size=round(float(rng.lognormal(0.0, 0.45) * (bmi / 26.0)), 3),  # (# assumption)
        axial_rotation_deg=float(rng.uniform(-1.0, 1.0) * mix.max_axial_rotation_deg),
        tilt_deg=float(rng.uniform(-1.0, 1.0) * mix.max_tilt_deg),
        top_margin_mm=float(rng.uniform(15.0, 70.0)),
        lateral_offset_mm=float(rng.normal(0.0, 8.0)),
        partial_scan=bool(rng.random() < mix.partial_scan_fraction),
        bone_uptake=float(young_factor * rng.lognormal(0.0, 0.15)),
        soft_tissue_uptake=float(rng.lognormal(0.0, 0.25) * (1.0 + 0.4 * max(0.0, (age - 70.0) / 20.0))),
        kidney_uptake=float(rng.lognormal(0.0, 0.35)),
        bladder_filling=float(rng.beta(1.6, 2.2)),
        left_kidney_rise_mm=float(rng.normal(12.0, 6.0)),
    )


def _rotate(xyz: np.ndarray, centre: np.ndarray, axes: tuple[int, int], angle_deg: float) -> None:
    """Rotate points in place in the plane of two coordinate axes about ``centre``: the first axis
    turns towards the second for a positive angle."""
    a, b = axes
    c, s = np.cos(np.radians(angle_deg)), np.sin(np.radians(angle_deg))
    u, v = xyz[:, a] - centre[a], xyz[:, b] - centre[b]
    xyz[:, a] = centre[a] + c * u + s * v
    xyz[:, b] = centre[b] - s * u + c * v


_MEMBERS: dict[int, tuple[np.ndarray, dict[int, np.ndarray]]] = {}


def _members(segment: np.ndarray) -> dict[int, np.ndarray]:
    """Point indices of every limb segment id in ``segment``; cached for the phantom's own arrays,
    which every study poses again."""
    cached = _MEMBERS.get(id(segment))
    if cached is not None and cached[0] is segment:
        return cached[1]
    order = np.argsort(segment, kind="stable")
    ids, starts = np.unique(segment[order], return_index=True)
    groups = dict(zip(ids.tolist(), np.split(order, starts[1:]), strict=True))
    groups.pop(0, None)  # segment 0 does not move
    if len(segment) > 10_000:
        _MEMBERS[id(segment)] = (segment, groups)
    return groups


@dataclass
class Pose:
    """One patient's geometry: maps phantom points to field positions (mm from the field's top-left
    corner, anterior view) and scales depths."""

    patient: Patient
    phantom: ReferencePhantom
    field_width_mm: float

    def __post_init__(self) -> None:
        p, ph = self.patient, self.phantom
        lm = ph.landmarks_mm
        knots = np.asarray(
            [ph.sole_mm, lm["knee_R"][2], lm["hip_R"][2], lm["shoulder_R"][2], ph.vertex_mm], float
        )
        lengths = np.diff(knots)
        factors = np.asarray([p.leg_proportion, p.leg_proportion, 1.0, 0.6 + 0.4 * p.leg_proportion])
        lengths = lengths * factors
        lengths *= p.height_mm / lengths.sum()
        self.z_knots = knots
        self.z_new = np.concatenate([[0.0], np.cumsum(lengths)])  # sole at 0
        scale = p.height_mm / (ph.vertex_mm - ph.sole_mm)
        habitus = p.bmi / REFERENCE_BMI
        self.sx = scale**0.8 * p.frame * habitus**0.25  # (# assumption)
        self.sy = scale**0.5 * habitus**0.6  # AP thickness follows the habitus most (# assumption)
        self.rotation = np.radians(p.axial_rotation_deg)
        self.tilt = np.radians(p.tilt_deg)
        self.rotations = self._limb_rotations()

    def _limb_rotations(self) -> dict[int, list[tuple[np.ndarray, tuple[int, int], float]]]:
        """Per limb segment id, the rotations (centre, plane, degrees) that take it from the phantom's
        pose into the patient's, in order."""
        p, ph = self.patient, self.phantom
        lm = ph.landmarks_mm
        chains: dict[int, list] = {}

        def add(parts: tuple[str, ...], side: str, centre: np.ndarray, plane: tuple[int, int], angle: float):
            for part in parts:
                chains.setdefault(ph.segment_id(f"{part}_{side}"), []).append((centre.copy(), plane, angle))

        for i, (side, sign) in enumerate(SIDES):
            # Legs brought together: rotation about the hip in the coronal plane.
            hip, ankle = lm[f"hip_{side}"], lm[f"ankle_{side}"].copy()
            swing = sign * np.degrees(np.arctan2(abs(ankle[0]) - p.ankle_offset_mm[i], hip[2] - ankle[2]))
            add(("leg", "foot"), side, hip, (0, 2), swing)
            _rotate(ankle[None], hip, (0, 2), swing)
            add(("foot",), side, ankle, (1, 2), -p.foot_plantarflexion_deg[i])  # toes down
            add(("foot",), side, ankle, (1, 0), sign * p.foot_splay_deg[i])  # and outwards
            # Arms: adduction about the shoulder in the coronal plane, towards the vertical.
            shoulder = lm[f"shoulder_{side}"]
            angle = sign * (PHANTOM_ARM_ANGLE_DEG - p.arm_angle_deg[i])
            add(("upper_arm", "forearm", "hand"), side, shoulder, (0, 2), angle)
            if p.arm_position == "on_abdomen":
                elbow = lm[f"elbow_{side}"].copy()
                _rotate(elbow[None], shoulder, (0, 2), angle)
                add(("forearm", "hand"), side, elbow, (2, 1), -88.0)  # flexed: the forearm points forward
                add(("forearm", "hand"), side, elbow, (1, 0), -sign * p.forearm_sweep_deg[i])  # then medially
        return chains

    def limbs(self, xyz: np.ndarray, segment: np.ndarray) -> np.ndarray:
        """Points moved from the phantom's pose into the patient's (limb segments only; a copy)."""
        out = xyz.astype(np.float32, copy=True)
        members = _members(segment)
        for segment_id, chain in self.rotations.items():
            index = members.get(segment_id)
            if index is not None:
                moved = out[index]
                for centre, plane, angle in chain:
                    _rotate(moved, centre, plane, angle)
                out[index] = moved
        return out

    def field(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Field position (row mm from the field top, column mm from its left edge) of posed points."""
        p = self.patient
        z = np.interp(xyz[:, 2], self.z_knots, self.z_new, left=-np.inf, right=np.inf)
        z = np.where(np.isfinite(z), z, self._extrapolate(xyz[:, 2]))
        x = xyz[:, 0] * self.sx
        y = (xyz[:, 1] - 20.0) * self.sy  # about the spinal canal, roughly the body's mid-depth
        x = x * np.cos(self.rotation) - y * np.sin(self.rotation)
        z_mid = 0.5 * p.height_mm
        x, z = (
            x * np.cos(self.tilt) - (z - z_mid) * np.sin(self.tilt),
            z_mid + (z - z_mid) * np.cos(self.tilt) + x * np.sin(self.tilt),
        )
        row = p.top_margin_mm + (p.height_mm - z)
        col = 0.5 * self.field_width_mm + p.lateral_offset_mm + x
        return row.astype(np.float32), col.astype(np.float32)

    def _extrapolate(self, z: np.ndarray) -> np.ndarray:
        """Beyond the sole or vertex (feet swung down, a raised hand): the end segment's scale."""
        below = self.z_new[0] + (z - self.z_knots[0]) * (self.z_new[1] - self.z_new[0]) / (
            self.z_knots[1] - self.z_knots[0]
        )
        above = self.z_new[-1] + (z - self.z_knots[-1]) * (self.z_new[-1] - self.z_new[-2]) / (
            self.z_knots[-1] - self.z_knots[-2]
        )
        return np.where(z < self.z_knots[0], below, above)
