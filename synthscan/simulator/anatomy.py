"""Parametric 3-D anatomy: a skeleton, organs and a soft-tissue body outline built from primitives.

Coordinates are millimetres in the patient frame: ``x`` towards the patient's left, ``y`` down
from the vertex, ``z`` towards the anterior (z = 0 is the mid-coronal plane of each body region).
Landmark heights are fractions of body height from the vertex, taken from standard
anthropometric proportions (Drillis & Contini segment lengths, # assumption for exact values);
widths and depths are adult reference values in mm scaled by height and sex (# assumption).

Four primitive kinds cover the body: tapered capsules (long bones, limbs), tubes (smooth capsule
chains: ribs, clavicles, mandible, iliac crests, digits), ellipsoids (optionally hollow: skull,
heart; or flat-ended cylinders: vertebral bodies) and flat triangles (scapular blades). Each
carries a compartment (see ``COMPARTMENTS``) and the name of the bone it belongs to, so that
lesions can be attached to a named bone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

COMPARTMENTS: tuple[str, ...] = ("bone", "lesion", "kidney", "bladder", "heart", "hotspot")
"""Tracer compartments: ``lesion`` follows the bone concentration (metastases, degenerative joints,
fractures), ``hotspot`` the nominal one (injection site, urine contamination)."""


@dataclass
class Capsule:
    """A tapered capsule from p0 to p1 (x, y, z in mm), radius r0 → r1, uniform activity ``density``."""

    bone: str
    p0: tuple[float, float, float]
    p1: tuple[float, float, float]
    r0: float
    r1: float
    density: float = 1.0
    compartment: str = "bone"

    def volume(self) -> float:
        length = math.dist(self.p0, self.p1)
        r = 0.5 * (self.r0 + self.r1)
        return math.pi * r * r * length + 4.0 / 3.0 * math.pi * max(self.r0, self.r1) ** 3 * 0.5


@dataclass
class Ellipsoid:
    """An ellipsoid with semi-axes (a, b, c) along x, y, z rotated by ``angle`` (rad) in the x-y plane.

    ``shell`` in (0, 1) makes it hollow: the inner ellipsoid has the semi-axes times ``1 - shell``.
    ``cylinder`` makes it an elliptic cylinder of half-height b instead (flat top and bottom, as
    vertebral bodies are).
    """

    bone: str
    centre: tuple[float, float, float]
    axes: tuple[float, float, float]
    angle: float = 0.0
    shell: float = 0.0
    density: float = 1.0
    compartment: str = "bone"
    cylinder: bool = False

    def volume(self) -> float:
        a, b, c = self.axes
        if self.cylinder:
            return 2.0 * math.pi * a * b * c
        inner = (1.0 - self.shell) ** 3 if self.shell > 0 else 0.0
        return 4.0 / 3.0 * math.pi * a * b * c * (1.0 - inner)


@dataclass
class Plate:
    """A flat triangle of given ``thickness`` (mm along z) at depth ``z``: scapulae, iliac wings."""

    bone: str
    points: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]
    z: float
    thickness: float
    density: float = 1.0
    compartment: str = "bone"

    def volume(self) -> float:
        (x0, y0), (x1, y1), (x2, y2) = self.points
        return 0.5 * abs((x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)) * self.thickness


@dataclass
class Tube:
    """A smooth chain of capsules through ``points`` with a radius per point (ribs, clavicles, crests).

    Each pixel takes its thickness from the nearest segment, so the joints of the chain are
    neither doubled (overlapping capsule caps) nor gapped.
    """

    bone: str
    points: tuple[tuple[float, float, float], ...]
    radii: tuple[float, ...]
    density: float = 1.0
    compartment: str = "bone"

    def segments(self) -> list[Capsule]:
        """The chain as separate capsules (lesion hosts are picked per segment)."""
        return [
            Capsule(self.bone, a, b, ra, rb, self.density, self.compartment)
            for (a, b), (ra, rb) in zip(pairwise(self.points), pairwise(self.radii), strict=True)
        ]

    def volume(self) -> float:
        return sum(
            math.pi * (0.5 * (ra + rb)) ** 2 * math.dist(a, b)
            for (a, b), (ra, rb) in zip(pairwise(self.points), pairwise(self.radii), strict=True)
        )


Primitive = Capsule | Ellipsoid | Plate | Tube


@dataclass
class BodyPart:
    """Soft-tissue outline piece: a tapered 2-D capsule of half-width r and AP half-depth ``ratio * r``."""

    name: str
    p0: tuple[float, float]
    p1: tuple[float, float]
    r0: float
    r1: float
    ratio0: float
    ratio1: float
    z: float = 0.0


@dataclass
class Patient:
    """Sampled patient parameters (all stored in the study's ground truth)."""

    sex: str
    age: float
    height_mm: float
    bmi: float
    arm_position: str
    breasts: bool
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


@dataclass
class Phantom:
    """A patient's primitives and body outline, in field coordinates once :meth:`place` has run."""

    primitives: list[Primitive] = field(default_factory=list)
    body: list[BodyPart] = field(default_factory=list)
    landmarks: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    def bones(self) -> list[str]:
        return sorted({p.bone for p in self.primitives if p.compartment == "bone"})

    def of_bone(self, bone: str) -> list[Primitive]:
        """The bone's primitives, tubes split into their capsule segments (candidate lesion hosts)."""
        found: list[Primitive] = []
        for prim in self.primitives:
            if prim.bone == bone and prim.compartment == "bone":
                found.extend(prim.segments() if isinstance(prim, Tube) else [prim])
        return found


SIDES: tuple[tuple[str, int], ...] = (("R", -1), ("L", 1))
"""Patient's right is negative x (viewer's left on the anterior view)."""

VERTEBRAE: tuple[str, ...] = (
    *(f"C{i}" for i in range(1, 8)),
    *(f"T{i}" for i in range(1, 13)),
    *(f"L{i}" for i in range(1, 6)),
)
ARM_POSITIONS: tuple[str, ...] = ("sides", "abducted", "on_abdomen")


class _Builder:
    """Builds one patient's phantom; ``f(frac)`` turns a height fraction into a y in mm.

    ``density`` is the bone's tracer concentration relative to trabecular bone (# assumption,
    set by eye against clinical scans): cortical shafts take up less than vertebrae and joint
    ends, the sacro-iliac joints and the nasal-maxillary region more.
    """

    def __init__(self, patient: Patient, rng: np.random.Generator):
        self.p = patient
        self.rng = rng
        self.H = patient.height_mm
        self.s = patient.height_mm / 1750.0
        female = patient.sex == "F"
        self.shoulder = self.s * (0.9 if female else 1.0)
        self.hip = self.s * (1.06 if female else 1.0)
        self.soft = (patient.bmi / 24.0) ** 0.7
        self.phantom = Phantom()
        self.growth = patient.age < 20
        self.variation = lambda: float(rng.lognormal(0.0, 0.08))

    def f(self, frac: float) -> float:
        return frac * self.H

    def add(self, primitive: Primitive) -> None:
        self.phantom.primitives.append(primitive)

    def capsule(self, bone, p0, p1, r0, r1=None, density=1.0, compartment="bone"):
        self.add(Capsule(bone, p0, p1, r0, r0 if r1 is None else r1, density, compartment))

    def ellipsoid(
        self, bone, centre, axes, angle=0.0, shell=0.0, density=1.0, compartment="bone", cylinder=False
    ):
        self.add(Ellipsoid(bone, centre, axes, angle, shell, density, compartment, cylinder))

    def plate(self, bone, points, z, thickness, density=1.0):
        self.add(Plate(bone, points, z, thickness, density))

    def tube(self, bone, points, radii, density=1.0):
        if not isinstance(radii, list | tuple):
            radii = [radii] * len(points)
        self.add(Tube(bone, tuple(tuple(float(v) for v in q) for q in points), tuple(radii), density))

    def build(self) -> Phantom:
        self.skull()
        self.spine()
        self.thorax()
        self.shoulder_girdle()
        self.arms()
        self.pelvis()
        self.legs()
        self.organs()
        self.body_outline()
        self.record_landmarks()
        self.vary_uptake()
        return self.phantom

    def vary_uptake(self) -> None:
        """Patient-to-patient variation of uptake per bone (log-normal, sd 0.12, # assumption); women
        tend to show a more intense calvarium (# assumption from clinical experience)."""
        factors: dict[str, float] = {}
        for prim in self.phantom.primitives:
            if prim.compartment != "bone":
                continue
            if prim.bone not in factors:
                skull = 1.25 if prim.bone == "skull" and self.p.sex == "F" else 1.0
                factors[prim.bone] = skull * float(self.rng.lognormal(0.0, 0.12))
            prim.density *= factors[prim.bone]

    def record_landmarks(self) -> None:
        """Joint and organ positions used to place degenerative uptake and artefacts."""
        s, marks = self.s, self.phantom.landmarks
        for side, sign in SIDES:
            head, elbow, wrist, tip = self.arm_points[side]
            marks[f"shoulder_{side}"] = head
            marks[f"acromioclavicular_{side}"] = self.acromion[side]
            marks[f"elbow_{side}"] = (elbow[0], elbow[1], elbow[2] + 20 * s)
            marks[f"thumb_base_{side}"] = _lerp(wrist, tip, 0.2)
            marks[f"finger_joints_{side}"] = _lerp(wrist, tip, 0.75)
            marks[f"hip_{side}"] = self.acetabulum[side]
            knee = self.knees[side]
            marks[f"knee_{side}"] = (knee[0] - sign * 14 * s, knee[1] + 2 * s, 0.0)
            ankle = self.ankle[side]
            marks[f"ankle_{side}"] = ankle
            marks[f"big_toe_{side}"] = (ankle[0] - sign * 10 * s, ankle[1] + 40 * s, 120 * s)
            marks[f"sacroiliac_{side}"] = (sign * 44 * self.hip, self.f(0.452), -58 * s)
            marks[f"groin_{side}"] = (sign * 70 * self.hip, self.f(0.53), 60 * s)
        for name in ("C5", "C6", "L3", "L4", "L5"):
            y, _ = self.levels[name]
            marks[name] = (0.0, y, self.spine_z(y))
        marks["heart"] = self.heart
        marks["bladder"] = self.bladder

    def skull(self) -> None:
        """Calvarium (hollow), skull base, the hot nasal-maxillary block and the mandible."""
        s, f = self.s, self.f
        v = self.variation
        self.ellipsoid(
            "skull", (0, f(0.056), -4 * s), (72 * s, f(0.056), 92 * s), shell=0.2, density=0.24 * v()
        )
        self.ellipsoid("skull", (0, f(0.079), -12 * s), (54 * s, 11 * s, 40 * s), density=0.35)
        for _side, sign in SIDES:
            self.ellipsoid("skull", (sign * 45 * s, f(0.074), -20 * s), (14 * s, 9 * s, 20 * s), density=0.6)
        self.ellipsoid("skull", (0, f(0.094), 58 * s), (26 * s, 15 * s, 22 * s), density=0.5 * v())
        self.ellipsoid("skull", (0, f(0.076), 72 * s), (30 * s, 8 * s, 10 * s), density=0.6)
        self.tube(
            "mandible",
            [
                (-50 * s, f(0.083), -12 * s),
                (-47 * s, f(0.114), -16 * s),
                (-30 * s, f(0.124), 42 * s),
                (0, f(0.128), 66 * s),
                (30 * s, f(0.124), 42 * s),
                (47 * s, f(0.114), -16 * s),
                (50 * s, f(0.083), -12 * s),
            ],
            [5 * s, 7 * s, 7 * s, 8 * s, 7 * s, 7 * s, 5 * s],
            density=0.55,
        )

    def vertebra_levels(self) -> dict[str, tuple[float, float]]:
        """Vertebra name → (centre y, segment height including its disc)."""
        bounds = {"C": (0.1, 0.168), "T": (0.168, 0.343), "L": (0.343, 0.44)}
        levels = {}
        for region, (top, bottom) in bounds.items():
            names = [v for v in VERTEBRAE if v[0] == region]
            height = (bottom - top) * self.H / len(names)
            for i, name in enumerate(names):
                levels[name] = (top * self.H + (i + 0.5) * height, height)
        return levels

    def spine_z(self, y: float) -> float:
        """AP position of the vertebral bodies: cervical lordosis, thoracic kyphosis, lumbar lordosis."""
        frac = y / self.H
        knots = [0.09, 0.17, 0.25, 0.34, 0.40, 0.44, 0.50]
        values = [-12, -30, -62, -48, -30, -45, -70]
        return float(np.interp(frac, knots, values)) * self.s

    def spine(self) -> None:
        """Vertebral bodies with their discs, pedicles, transverse and spinous processes; the sacrum."""
        s = self.s
        self.levels = self.vertebra_levels()
        old = self.p.age >= 60
        for name, (y, height) in self.levels.items():
            region = name[0]
            index = int(name[1:])
            disc = {"C": 0.2, "T": 0.16, "L": 0.2}[region] * (0.75 if old else 1.0)
            half_h = 0.5 * height * (1 - disc)
            if region == "C":
                width, depth = 15 + index * 0.8, 8
            elif region == "T":
                width, depth = 17 + index * 0.6, 12 + index * 0.4
            else:
                width, depth = 23 + index * 1.0, 16
            width, depth = width * s, depth * s
            z = self.spine_z(y)
            density = {"C": 0.9, "T": 1.0, "L": 1.05}[region]
            self.ellipsoid(name, (0, y, z), (width, half_h, depth), density=density, cylinder=True)
            pedicle_x = width * 0.8
            back = z - depth - 8 * s
            arch = (pedicle_x + 6 * s, 0.45 * height, 9 * s)
            self.ellipsoid(name, (0, y - 0.1 * height, back), arch, density=0.6, cylinder=True)
            for _side, sign in SIDES:
                if region in "TL":
                    reach = (22 if region == "L" else 18) * s
                    self.capsule(
                        name,
                        (sign * pedicle_x, y - 0.05 * height, back - 4 * s),
                        (sign * (pedicle_x + reach), y + (3 if region == "L" else -3) * s, back - 8 * s),
                        4.5 * s,
                        3.5 * s,
                        density=0.7,
                    )
            self.capsule(
                name,
                (0, y - 0.1 * height, back - 8 * s),
                (0, y + 0.35 * height, back - 30 * s),
                4 * s,
                density=0.7,
            )
        sacrum_top = self.f(0.44)
        self.sacrum_top = sacrum_top
        z0 = self.spine_z(sacrum_top)
        for i in range(5):
            y = sacrum_top + (i + 0.5) * 0.0135 * self.H
            width = (46 - 7 * i) * self.hip
            self.ellipsoid(
                "sacrum", (0, y, z0 - 7 * i * s), (width, 0.0085 * self.H, (15 - 1.5 * i) * s), density=0.95
            )
        self.capsule("sacrum", (0, self.f(0.508), z0 - 36 * s), (0, self.f(0.52), z0 - 26 * s), 5 * s, 3 * s)

    def thorax(self) -> None:
        """Twelve rib pairs as smooth tubes from the costovertebral joint round to the costal cartilage."""
        s, f = self.s, self.f
        sw = self.shoulder
        half_widths = [52, 80, 98, 110, 118, 124, 127, 127, 124, 118, 106, 90]
        depths = [40, 58, 72, 82, 90, 95, 98, 99, 98, 94, 86, 76]
        drops = [26, 50, 64, 74, 82, 88, 92, 94, 92, 76, 46, 32]
        self.rib_tubes = {}
        for i in range(12):
            level = f"T{i + 1}"
            y0, height = self.levels[level]
            y0 -= 0.25 * height
            rx = half_widths[i] * sw * (0.95 + 0.1 * self.soft**0.3)
            rz = depths[i] * s
            z_centre = self.spine_z(y0) + rz - 14 * s
            theta_end = math.pi * (0.78 if i < 10 else (0.55 if i == 10 else 0.42))
            drop = drops[i] * s
            for side, sign in SIDES:
                points = []
                for theta in np.linspace(0.0, theta_end, 12):
                    x = sign * (rx * math.sin(theta) + 24 * s * max(math.cos(theta), 0.0))
                    z = z_centre - rz * math.cos(theta)
                    y = y0 + drop * (theta / math.pi) ** 0.95
                    points.append((x, y, z))
                radii = [5.0 * s] * 9 + [4.6 * s, 4.3 * s, 4.0 * s]
                self.tube(f"rib_{side}{i + 1}", points, radii, density=0.5)
        z_st = self.spine_z(f(0.25)) + 2 * 98 * s - 30 * s
        self.sternum_z = z_st
        self.ellipsoid("sternum", (0, f(0.192), z_st - 10 * s), (24 * s, f(0.013), 8 * s), density=0.7)
        self.capsule(
            "sternum", (0, f(0.207), z_st - 4 * s), (0, f(0.272), z_st + 4 * s), 12 * s, 10 * s, density=0.6
        )
        self.capsule(
            "sternum", (0, f(0.274), z_st + 4 * s), (0, f(0.29), z_st + 2 * s), 5 * s, 3 * s, density=0.6
        )

    def shoulder_girdle(self) -> None:
        """Clavicles (S-shaped tubes) and scapulae: a thin blade with thicker borders, spine and glenoid."""
        s, f, sw = self.s, self.f, self.shoulder
        self.shoulder_joint = {}
        self.acromion = {}
        z_st = self.sternum_z
        for side, sign in SIDES:
            acromion = (sign * 160 * sw, f(0.173), -12 * s)
            self.acromion[side] = acromion
            self.tube(
                f"clavicle_{side}",
                [
                    (sign * 20 * s, f(0.184), z_st - 8 * s),
                    (sign * 60 * sw, f(0.178), z_st - 10 * s),
                    (sign * 110 * sw, f(0.174), z_st - 40 * s),
                    acromion,
                ],
                [8 * s, 6.5 * s, 6 * s, 7 * s],
                density=0.55,
            )
            scap = f"scapula_{side}"
            zb = -80 * s
            sup = (sign * 78 * sw, f(0.182))
            inf = (sign * 92 * sw, f(0.302))
            glen = (sign * 150 * sw, f(0.198))
            self.plate(scap, (sup, inf, glen), zb, 5 * s, density=0.45)
            self.capsule(scap, (sup[0], sup[1], zb), (inf[0], inf[1], zb), 4 * s, density=0.6)
            self.capsule(
                scap,
                (inf[0], inf[1], zb),
                (glen[0], glen[1] + 18 * s, zb + 25 * s),
                6 * s,
                5 * s,
                density=0.65,
            )
            self.ellipsoid(scap, (inf[0], inf[1] - 4 * s, zb), (9 * s, 8 * s, 6 * s), density=0.8)
            self.capsule(
                scap,
                (sign * 82 * sw, f(0.2), zb - 6 * s),
                (acromion[0], acromion[1] + 6 * s, acromion[2] - 10 * s),
                5 * s,
                6 * s,
                density=0.7,
            )
            self.capsule(
                scap,
                (sign * 118 * sw, f(0.19), zb + 40 * s),
                (sign * 132 * sw, f(0.178), 10 * s),
                5 * s,
                density=0.6,
            )
            self.ellipsoid(scap, (glen[0], glen[1], -40 * s), (9 * s, 17 * s, 13 * s), density=0.85)
            self.shoulder_joint[side] = (sign * 168 * sw, f(0.197), -26 * s)

    def arm_path(self, sign: int) -> tuple[tuple[float, float, float], ...]:
        """Elbow, wrist and fingertip positions for the patient's arm position."""
        s, f, sw = self.s, self.f, self.shoulder
        soft = self.soft
        out = 25 * s * (soft - 1)
        if self.p.arm_position == "sides":
            elbow = (sign * (200 * sw + out), f(0.365), -20 * s)
            wrist = (sign * (215 * sw + 1.5 * out), f(0.505), -5 * s)
            tip = (sign * (218 * sw + 1.5 * out), f(0.605), 0.0)
        elif self.p.arm_position == "abducted":
            elbow = (sign * (232 * sw + out), f(0.355), -15 * s)
            wrist = (sign * (268 * sw + out), f(0.49), -5 * s)
            tip = (sign * (282 * sw + out), f(0.585), 0.0)
        else:
            belly = 110 * s * soft
            elbow = (sign * (198 * sw + out), f(0.36), 10 * s)
            wrist = (sign * 60 * s, f(0.43), belly + 25 * s)
            tip = (-sign * 50 * s, f(0.455), belly + 35 * s)
        return elbow, wrist, tip

    def arms(self) -> None:
        """Humeri, radius and ulna, hands; growth plates in the young."""
        s = self.s
        self.arm_points = {}
        for side, sign in SIDES:
            head = self.shoulder_joint[side]
            elbow, wrist, tip = self.arm_path(sign)
            self.arm_points[side] = (head, elbow, wrist, tip)
            hum = f"humerus_{side}"
            self.ellipsoid(hum, head, (22 * s, 24 * s, 22 * s), density=0.55)
            neck = _lerp(head, elbow, 0.12)
            self.capsule(hum, head, neck, 16 * s, 13 * s, density=0.6)
            self.capsule(hum, neck, _lerp(head, elbow, 0.92), 11 * s, 10 * s, density=0.45)
            self.ellipsoid(hum, _lerp(head, elbow, 0.96), (22 * s, 12 * s, 13 * s), density=0.6)
            if self.growth:
                self.ellipsoid(hum, _lerp(head, elbow, 0.08), (20 * s, 4 * s, 18 * s), density=2.5)
            forearm = f"forearm_{side}"
            dx, dy = wrist[0] - elbow[0], wrist[1] - elbow[1]
            norm = math.hypot(dx, dy) or 1.0
            px, py = -dy / norm * 8 * s, dx / norm * 8 * s
            for k, (radius0, radius1) in enumerate(((6, 8), (7.5, 5))):
                off = 1 if k == 0 else -1
                a = (elbow[0] + off * px, elbow[1] + off * py, elbow[2])
                b = (wrist[0] + off * px, wrist[1] + off * py, wrist[2])
                self.capsule(forearm, a, b, radius0 * s, radius1 * s, density=0.45)
            if self.growth:
                self.ellipsoid(forearm, _lerp(elbow, wrist, 0.93), (18 * s, 4 * s, 12 * s), density=2.5)
            hand = f"hand_{side}"
            carpal = _lerp(wrist, tip, 0.14)
            self.ellipsoid(hand, carpal, (17 * s, 14 * s, 10 * s), density=0.75)
            spread = 10 * s if self.p.arm_position == "sides" else 22 * s
            hx, hy = tip[0] - wrist[0], tip[1] - wrist[1]
            hn = math.hypot(hx, hy) or 1.0
            ux, uy = hx / hn, hy / hn
            for finger in range(5):
                lateral = (finger - 2) / 2.0 * spread
                base = (carpal[0] - uy * lateral * 0.5, carpal[1] + ux * lateral * 0.5, carpal[2])
                knuckle = _lerp(wrist, tip, 0.5)
                knuckle = (knuckle[0] - uy * lateral, knuckle[1] + ux * lateral, knuckle[2])
                end = (tip[0] - uy * lateral * 1.2, tip[1] + ux * lateral * 1.2, tip[2])
                if finger == 0:
                    end = _lerp(knuckle, end, 0.6)
                self.tube(hand, [base, knuckle, end], [3.6 * s, 3.6 * s, 2.8 * s], density=0.55)

    def pelvis(self) -> None:
        """Iliac wings (rim brighter than the thin fossa), hot sacro-iliac joints, acetabula, pubis."""
        s, f, hw = self.s, self.f, self.hip
        v = self.variation
        for side, sign in SIDES:
            bone = f"pelvis_{side}"
            wing_centre = (sign * 92 * hw, f(0.425), -20 * s)
            self.ellipsoid(
                bone, wing_centre, (56 * hw, 34 * s, 16 * s), angle=sign * 0.3, shell=0.3, density=0.6
            )
            self.plate(
                bone,
                ((sign * 52 * hw, f(0.445)), (sign * 128 * hw, f(0.445)), (sign * 96 * hw, f(0.478))),
                -10 * s,
                12 * s,
                density=0.6,
            )
            crest = [
                (sign * 48 * hw, f(0.417), -52 * s),
                (sign * 90 * hw, f(0.397), -40 * s),
                (sign * 128 * hw, f(0.407), -12 * s),
                (sign * 136 * hw, f(0.43), 20 * s),
                (sign * 122 * hw, f(0.447), 45 * s),
            ]
            self.tube(bone, crest, [7 * s, 7 * s, 7 * s, 6 * s, 6 * s], density=0.75)
            self.capsule(
                bone,
                (sign * 40 * hw, f(0.43), -58 * s),
                (sign * 48 * hw, f(0.47), -55 * s),
                11 * s,
                10 * s,
                density=1.7 * v(),
            )
            acet = (sign * 95 * hw, f(0.485), 0.0)
            self.ellipsoid(bone, acet, (26 * s, 26 * s, 26 * s), shell=0.35, density=0.55)
            symphysis = (sign * 9 * hw, f(0.503), 55 * s)
            self.capsule(
                bone, (acet[0] - sign * 8 * s, acet[1] + 6 * s, 15 * s), symphysis, 9 * s, 7 * s, density=0.65
            )
            tuber = (sign * 60 * hw, f(0.533), -15 * s)
            self.capsule(bone, (acet[0], acet[1] + 15 * s, -5 * s), tuber, 12 * s, 11 * s, density=0.6)
            self.capsule(
                bone, (symphysis[0], symphysis[1] + 12 * s, 50 * s), tuber, 6 * s, 8 * s, density=0.55
            )
            self.capsule(bone, symphysis, (symphysis[0], symphysis[1] + 16 * s, 52 * s), 8 * s, density=0.8)
        self.acetabulum = {side: (sign * 95 * hw, f(0.485), 0.0) for side, sign in SIDES}

    def legs(self) -> None:
        """Femora, patellae, tibiae, fibulae and feet (supine: toes point anterior, heels on the table)."""
        s, f, hw = self.s, self.f, self.hip
        self.knees = {}
        self.ankle = {}
        for side, sign in SIDES:
            fem = f"femur_{side}"
            head = self.acetabulum[side]
            troch = (sign * 136 * hw, f(0.503), -5 * s)
            self.ellipsoid(fem, head, (21 * s, 21 * s, 21 * s), density=0.55)
            self.capsule(fem, head, troch, 14 * s, 15 * s, density=0.5)
            self.ellipsoid(fem, troch, (18 * s, 22 * s, 18 * s), density=0.55)
            knee = (sign * (70 * s + 100 * (hw - s)), f(0.712), 0.0)
            self.knees[side] = knee
            shaft_top = (troch[0] - sign * 10 * s, f(0.52), 0.0)
            self.capsule(fem, shaft_top, (knee[0], knee[1] - 50 * s, 0.0), 14 * s, 13 * s, density=0.42)
            self.ellipsoid(fem, (knee[0], knee[1] - 24 * s, -5 * s), (38 * s, 26 * s, 30 * s), density=0.32)
            if self.growth:
                self.ellipsoid(fem, (knee[0], knee[1] - 40 * s, 0.0), (34 * s, 5 * s, 26 * s), density=3.0)
            self.ellipsoid(
                f"patella_{side}", (knee[0], knee[1] - 18 * s, 42 * s), (19 * s, 22 * s, 9 * s), density=0.45
            )
            tib = f"tibia_{side}"
            ankle = (sign * 60 * s, f(0.958), 0.0)
            self.ankle[side] = ankle
            self.ellipsoid(tib, (knee[0], knee[1] + 16 * s, -5 * s), (36 * s, 17 * s, 28 * s), density=0.32)
            if self.growth:
                self.ellipsoid(tib, (knee[0], knee[1] + 30 * s, 0.0), (32 * s, 5 * s, 24 * s), density=3.0)
            self.capsule(
                tib,
                (knee[0], knee[1] + 32 * s, 8 * s),
                (ankle[0], ankle[1] - 22 * s, 5 * s),
                15 * s,
                11 * s,
                density=0.42,
            )
            self.ellipsoid(
                tib, (ankle[0] - sign * 6 * s, ankle[1] - 6 * s, 0.0), (16 * s, 12 * s, 16 * s), density=0.6
            )
            fib = f"fibula_{side}"
            fib_head = (knee[0] + sign * 32 * s, knee[1] + 36 * s, -15 * s)
            malleolus = (ankle[0] + sign * 26 * s, ankle[1] + 4 * s, -10 * s)
            self.capsule(fib, fib_head, malleolus, 6 * s, 5 * s, density=0.4)
            self.ellipsoid(fib, fib_head, (9 * s, 10 * s, 9 * s), density=0.5)
            foot = f"foot_{side}"
            self.ellipsoid(foot, (ankle[0], ankle[1] + 16 * s, 5 * s), (20 * s, 15 * s, 22 * s), density=0.28)
            self.ellipsoid(
                foot,
                (ankle[0] + sign * 3 * s, ankle[1] + 26 * s, -32 * s),
                (18 * s, 20 * s, 24 * s),
                density=0.28,
            )
            for toe in range(5):
                offset = sign * (toe - 1.5) * 9 * s
                base = (ankle[0] + offset * 0.5, ankle[1] + 28 * s, 30 * s)
                mid = (ankle[0] + offset * 1.1, ankle[1] + 36 * s, 95 * s)
                end = (ankle[0] + offset * 1.4 + sign * 8 * s, ankle[1] + 40 * s, 140 * s)
                self.tube(foot, [base, mid, end], [5 * s, 4.5 * s, 3.5 * s], density=0.25)

    def organs(self) -> None:
        """Kidneys (cortex and collecting system), bladder of variable filling, heart (myocardium)."""
        s, f, p = self.s, self.f, self.p
        for side, sign in SIDES:
            y = f(0.35) - (p.left_kidney_rise_mm if side == "L" else 0.0)
            centre = (sign * 62 * s, y, self.spine_z(y) + 8 * s)
            self.ellipsoid(
                f"kidney_{side}",
                centre,
                (27 * s, 54 * s, 24 * s),
                angle=-sign * 0.22,
                density=1.0,
                compartment="kidney",
            )
            self.ellipsoid(
                f"kidney_{side}",
                (centre[0] - sign * 9 * s, y + 4 * s, centre[2]),
                (11 * s, 17 * s, 10 * s),
                density=1.6,
                compartment="kidney",
            )
        fill = p.bladder_filling
        radius = (22 + 45 * fill) * s
        self.bladder = (0.0, f(0.492) - 0.6 * radius, 25 * s)
        self.ellipsoid("bladder", self.bladder, (radius * 1.2, radius * 0.85, radius), compartment="bladder")
        heart_centre = (38 * s, f(0.283), self.sternum_z - 70 * s)
        self.heart = heart_centre
        self.ellipsoid(
            "heart", heart_centre, (55 * s, 50 * s, 45 * s), angle=-0.6, shell=0.7, compartment="heart"
        )

    def body_outline(self) -> None:
        s, f, sw, hw, soft = self.s, self.f, self.shoulder, self.hip, self.soft
        body = self.phantom.body
        body.append(BodyPart("head", (0, 78 * s), (0, f(0.07)), 76 * s, 74 * s, 1.2, 1.25))
        body.append(BodyPart("face", (0, f(0.085)), (0, f(0.118)), 66 * s, 48 * s, 1.35, 1.5))
        neck = 52 * s * soft**0.5
        body.append(BodyPart("neck", (0, f(0.12)), (0, f(0.175)), neck, neck * 1.1, 1.0, 1.0))
        female = self.p.sex == "F"
        trunk = [
            (0.19, 150 * sw, 95),
            (0.25, 150 * sw * (0.95 if female else 1.0), 108),
            (0.33, 140 * sw, 103),
            (0.40, 142 * hw * (0.97 if female else 1.0), 100),
            (0.465, 165 * hw, 98),
            (0.52, 150 * hw, 88),
        ]
        belly = 1.0 + 0.45 * max(soft - 1.0, 0.0)
        for (y0, a0, b0), (y1, a1, b1) in pairwise(trunk):
            fa0, fa1 = a0 * soft, a1 * soft
            g0 = belly if 0.3 < y0 < 0.5 else 1.0
            g1 = belly if 0.3 < y1 < 0.5 else 1.0
            body.append(
                BodyPart(
                    "trunk",
                    (0, f(y0)),
                    (0, f(y1)),
                    fa0,
                    fa1,
                    b0 * s * g0 / a0 * soft**0.3,
                    b1 * s * g1 / a1 * soft**0.3,
                )
            )
        if female and self.p.breasts:
            size = (45 + 25 * max(soft - 0.9, 0.0)) * s
            for _side, sign in SIDES:
                body.append(
                    BodyPart(
                        "breast",
                        (sign * 80 * s, f(0.255)),
                        (sign * 88 * s, f(0.275)),
                        size,
                        size,
                        0.85,
                        0.85,
                        z=100 * s * soft**0.3,
                    )
                )
        for side, sign in SIDES:
            head, elbow, wrist, tip = self.arm_points[side]
            arm = 42 * s * soft**0.8
            body.append(
                BodyPart(
                    "deltoid",
                    (sign * 150 * sw, f(0.19)),
                    head[:2],
                    55 * s * soft**0.6,
                    arm,
                    0.9,
                    1.0,
                    z=-10 * s,
                )
            )
            body.append(BodyPart("arm", head[:2], elbow[:2], arm, arm * 0.85, 1.0, 1.0, z=head[2]))
            body.append(BodyPart("forearm", elbow[:2], wrist[:2], arm * 0.85, 26 * s, 1.0, 0.7, z=wrist[2]))
            body.append(BodyPart("hand", wrist[:2], tip[:2], 28 * s, 18 * s, 0.6, 0.5, z=tip[2]))
            knee, ankle = self.knees[side], self.ankle[side]
            thigh = 80 * s * soft**0.8
            body.append(
                BodyPart("thigh", (sign * 85 * hw, f(0.5)), knee[:2], thigh, 52 * s * soft**0.5, 1.0, 1.0)
            )
            calf_mid = (sign * 66 * s, f(0.79))
            body.append(
                BodyPart("calf", knee[:2], calf_mid, 50 * s * soft**0.5, 55 * s * soft**0.5, 1.0, 1.0)
            )
            body.append(BodyPart("calf", calf_mid, ankle[:2], 55 * s * soft**0.5, 32 * s, 1.0, 1.1))
            body.append(
                BodyPart(
                    "foot",
                    (ankle[0], ankle[1] + 20 * s),
                    (ankle[0] + sign * 8 * s, ankle[1] + 45 * s),
                    38 * s,
                    30 * s,
                    1.8,
                    1.8,
                    z=45 * s,
                )
            )


def _lerp(a: tuple[float, ...], b: tuple[float, ...], t: float) -> tuple[float, ...]:
    return tuple(x + t * (y - x) for x, y in zip(a, b, strict=True))


def build_phantom(patient: Patient, rng: np.random.Generator) -> Phantom:
    """The patient's skeleton, organs and body outline in the patient frame."""
    return _Builder(patient, rng).build()


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
    young_factor = 1.0 + max(0.0, (25.0 - age) / 25.0)
    return Patient(
        sex=sex,
        age=round(age, 1),
        height_mm=round(height, 1),
        bmi=round(bmi, 1),
        arm_position=arm,
        breasts=sex == "F" and bool(rng.random() < mix.breast_fraction),
        axial_rotation_deg=float(rng.uniform(-1.0, 1.0) * mix.max_axial_rotation_deg),
        tilt_deg=float(rng.uniform(-1.0, 1.0) * mix.max_tilt_deg),
        top_margin_mm=float(rng.uniform(15.0, 90.0)),
        lateral_offset_mm=float(rng.normal(0.0, 8.0)),
        partial_scan=bool(rng.random() < mix.partial_scan_fraction),
        bone_uptake=float(young_factor * rng.lognormal(0.0, 0.15)),
        soft_tissue_uptake=float(rng.lognormal(0.0, 0.25) * (1.0 + 0.4 * max(0.0, (age - 70.0) / 20.0))),
        kidney_uptake=float(rng.lognormal(0.0, 0.35)),
        bladder_filling=float(rng.beta(1.6, 2.2)),
        left_kidney_rise_mm=float(rng.normal(12.0, 6.0)),
    )
