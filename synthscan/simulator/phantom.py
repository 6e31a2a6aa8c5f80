"""The reference anatomy: a voxelized XCAT-derived whole-body phantom, as point clouds.

``data/phantom.npz`` (built by ``scripts/build_phantom.py`` from the MIT-licensed mesh phantom of
Auer et al. 2022 / Segars et al. 2010; licence and citation in ``data/``) holds labelled 2.4 mm
voxels: bones (skull to feet, each rib and vertebra), joint surfaces, tissues (soft tissue, lungs,
liver, brain, air) and limb segments. It is loaded once per process into point clouds that carry
what the projection needs and that no patient changes: position, volume, the water-equivalent
depth to the anterior and posterior body surface, and the geometric distance to the body contour
that the camera heads follow.

Coordinates are the phantom's, in mm: x towards the patient's left, y posterior, z from the
soles up.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources

import numpy as np

SOFT_PITCH = 3
"""Soft tissue is sampled on blocks of 3×3×3 voxels (7.2 mm): its activity is smooth and the
collimator blurs it with a FWHM of 9 mm or more (a 7.2 mm lattice then leaves a ripple below
0.2 %), so finer points would only cost time."""

BONE_RUN = 4
"""Bone voxels are merged along y in runs of up to 4 (9.6 mm): their attenuation differs by at most
10 % (0.5 % from the run's mean depth), the projection cannot see the rest, and it is 3× fewer points."""

SOFT_RUN = 3
"""Soft-tissue blocks are merged along y in runs of up to 3 (21.6 mm), for the same reason."""

ATTENUATION_RELATIVE_TO_WATER: dict[str, float] = {
    "outside": 0.0,
    "soft_tissue": 1.0,
    "lung": 0.26,  # inflated lung density 0.26 g/cm³ (ICRU 44; assumption for the whole lung)
    "liver": 1.06,  # ICRU 44 density
    "brain": 1.04,  # ICRU 44 density
    "air": 0.0,
}
BONE_ATTENUATION = 1.5
"""Linear attenuation of bone relative to water at 140 keV, a mix of cortical (~1.8) and trabecular
(~1.1) bone (assumption from NIST XCOM mass attenuation × ICRU 44 densities)."""


@dataclass(frozen=True)
class Points:
    """Voxel centres of one kind of tissue and what every projection needs of them."""

    xyz: np.ndarray  # (N, 3) float32, mm
    volume: np.ndarray  # (N,) float32, mm³
    depth: np.ndarray  # (N, 2) float32: water-equivalent mm to the anterior, posterior surface
    contour: np.ndarray  # (N, 2) float32: mm to the most anterior, posterior body surface of the slice
    kind: np.ndarray  # (N,) uint8: bone id or tissue id
    segment: np.ndarray  # (N,) uint8: limb segment id (0 = does not move with a limb)

    def __len__(self) -> int:
        return len(self.volume)


@dataclass(frozen=True)
class ReferencePhantom:
    """The loaded phantom: bone and soft-tissue points, names and landmarks."""

    bone: Points
    soft: Points
    joint: np.ndarray  # (N_bone,) uint8 joint id (0 = not a joint surface)
    bones: tuple[str, ...]
    joints: tuple[str, ...]
    tissues: tuple[str, ...]
    segments: tuple[str, ...]
    landmarks_mm: dict[str, np.ndarray]
    vertex_mm: float
    sole_mm: float
    front_mm: np.ndarray  # (nx, nz) most anterior body y per column, NaN outside the body
    back_mm: np.ndarray  # (nx, nz) most posterior body y per column
    slice_front_mm: np.ndarray  # (nz,) most anterior body y per slice (the anterior head follows it)
    slice_back_mm: np.ndarray  # (nz,) most posterior body y per slice
    origin_mm: np.ndarray
    pitch_mm: float

    def bone_id(self, name: str) -> int:
        return self.bones.index(name) + 1

    def joint_id(self, name: str) -> int:
        return self.joints.index(name) + 1

    def segment_id(self, name: str) -> int:
        return self.segments.index(name)

    def surface_depth(self, xyz: np.ndarray) -> np.ndarray:
        """Geometric depth (mm) of points below the anterior and posterior body surface of their
        column (for organs and hot spots added by the simulator)."""
        ix, iz = self._column(xyz)
        front, back = self.front_mm[ix, iz], self.back_mm[ix, iz]
        y = xyz[:, 1]
        depth = np.stack([y - front, back - y], axis=1)
        return np.nan_to_num(np.maximum(depth, 0.0), nan=0.0).astype(np.float32)

    def surface_front(self, x: float, z: float) -> float:
        """y of the anterior body surface at (x, z) (0 outside the body)."""
        ix, iz = self._column(np.asarray([[x, 0.0, z]]))
        return float(np.nan_to_num(self.front_mm[ix[0], iz[0]]))

    def contour_distance(self, xyz: np.ndarray) -> np.ndarray:
        """Distance (mm) of points to the most anterior and posterior body surface of their slice."""
        _, iz = self._column(xyz)
        front, back = self.slice_front_mm[iz], self.slice_back_mm[iz]
        y = xyz[:, 1]
        return np.maximum(np.stack([y - front, back - y], axis=1), 0.0).astype(np.float32)

    def _column(self, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ix = np.rint((xyz[:, 0] - self.origin_mm[0]) / self.pitch_mm).astype(np.int64)
        iz = np.rint((xyz[:, 2] - self.origin_mm[2]) / self.pitch_mm).astype(np.int64)
        return np.clip(ix, 0, self.front_mm.shape[0] - 1), np.clip(iz, 0, self.front_mm.shape[1] - 1)


def _merge_runs(points: Points, key: np.ndarray) -> tuple[Points, np.ndarray]:
    """Points sharing a key (column, run along y, ...) and their kind and segment merged into one:
    volume summed, position and depths volume-weighted. Also returns each merged point's first source."""
    key = np.concatenate([key, points.kind[:, None], points.segment[:, None]], axis=1)
    _, group = np.unique(key, axis=0, return_inverse=True)
    group = group.ravel()
    volume = np.bincount(group, points.volume)

    def mean(values: np.ndarray) -> np.ndarray:
        columns = [np.bincount(group, points.volume * c) for c in values.reshape(len(group), -1).T]
        return (np.stack(columns, axis=1) / volume[:, None]).reshape(-1, *values.shape[1:]).astype(np.float32)

    first = np.zeros(len(volume), np.int64)
    first[group[::-1]] = np.arange(len(group))[::-1]
    merged = Points(
        xyz=mean(points.xyz),
        volume=volume.astype(np.float32),
        depth=mean(points.depth),
        contour=mean(points.contour),
        kind=points.kind[first],
        segment=points.segment[first],
    )
    return merged, first


@functools.lru_cache(maxsize=1)
def load_phantom() -> ReferencePhantom:
    """The reference phantom (cached: built once per process, a few seconds)."""
    with resources.files("synthscan.simulator").joinpath("data/phantom.npz").open("rb") as fh:
        data = dict(np.load(fh))
    names = json.loads(str(data["names"]))
    pitch = float(data["pitch_mm"])
    origin = data["origin_mm"].astype(np.float64)
    bone, tissue = data["bone"], data["tissue"]
    tissues = tuple(names["tissues"])

    density = np.asarray([ATTENUATION_RELATIVE_TO_WATER[t] for t in tissues], np.float32)[tissue]
    density[bone > 0] = BONE_ATTENUATION
    before = np.cumsum(density, axis=1, dtype=np.float32)
    total = before[:, -1:, :].copy()
    before -= 0.5 * density  # to the voxel centre
    before *= pitch
    total *= pitch
    del density

    inside = tissue > 0
    has_body = inside.any(axis=1)
    ys = origin[1] + pitch * np.arange(tissue.shape[1])
    first = np.where(has_body, ys[np.argmax(inside, axis=1)], np.nan)
    last = np.where(has_body, ys[tissue.shape[1] - 1 - np.argmax(inside[:, ::-1], axis=1)], np.nan)
    in_slice = has_body.any(axis=0)
    slice_front = np.where(in_slice, np.nanmin(np.where(has_body, first, np.inf), axis=0), 0.0)
    slice_back = np.where(in_slice, np.nanmax(np.where(has_body, last, -np.inf), axis=0), 0.0)

    def points(
        idx: np.ndarray, volume: np.ndarray | float, kind: np.ndarray, segment: np.ndarray, step: int
    ) -> Points:
        xyz = (origin + pitch * (idx + 0.5 * (step - 1))).astype(np.float32)
        i, j, k = idx.T
        front = before[i, j, k]
        back = total[i, 0, k] - front
        contour = np.stack([xyz[:, 1] - slice_front[k], slice_back[k] - xyz[:, 1]], axis=1)
        return Points(
            xyz=xyz,
            volume=np.broadcast_to(np.float32(volume), len(idx)).copy() if np.isscalar(volume) else volume,
            depth=np.stack([front, back], axis=1).astype(np.float32),
            contour=np.maximum(np.nan_to_num(contour), 0.0).astype(np.float32),
            kind=kind,
            segment=segment,
        )

    is_bone = bone > 0
    bone_voxels = points(np.argwhere(is_bone), pitch**3, bone[is_bone], data["segment"][is_bone], 1)
    i, j, k = np.nonzero(is_bone)
    joint_of_voxel = data["joint"][is_bone]
    bone_points, source = _merge_runs(bone_voxels, np.stack([i, k, j // BONE_RUN, joint_of_voxel], axis=1))

    # Soft tissue on SOFT_PITCH³ blocks: one point per limb segment in a block (a block on a limb's
    # surface, or where an arm meets the trunk, holds voxels that move apart), with the volume of that
    # segment's non-bone body voxels and the tissue of the block's first voxel.
    step = SOFT_PITCH
    shape = tuple(s - s % step for s in tissue.shape)
    blocks = tuple(s // step for s in shape)
    soft = (inside & ~is_bone)[: shape[0], : shape[1], : shape[2]]
    kind = np.maximum(tissue[: shape[0] : step, : shape[1] : step, : shape[2] : step], 1)
    segments = len(names["segments"])  # also the id of "no soft tissue" below
    segment = np.where(soft, data["segment"][: shape[0], : shape[1], : shape[2]], segments)
    by_block = segment.reshape(blocks[0], step, blocks[1], step, blocks[2], step).transpose(0, 2, 4, 1, 3, 5)
    by_block = by_block.reshape(-1, step**3)
    # (block, segment) voxel counts, flattened block-major: a point's index is block × segments + segment
    counts = [(by_block == s).sum(axis=1, dtype=np.uint8) for s in range(segments)]
    occupancy = np.stack(counts, axis=1).ravel()
    occupied = np.flatnonzero(occupancy)
    block_index = np.stack(np.unravel_index(occupied // segments, blocks), axis=1)
    i, j, k = block_index.T
    soft_blocks = points(
        block_index * step,
        occupancy[occupied].astype(np.float32) * pitch**3,
        kind[i, j, k],
        (occupied % segments).astype(np.uint8),
        step,
    )
    soft_points, _ = _merge_runs(soft_blocks, np.stack([i, k, j // SOFT_RUN], axis=1))

    return ReferencePhantom(
        bone=bone_points,
        soft=soft_points,
        joint=joint_of_voxel[source],
        bones=tuple(names["bones"]),
        joints=tuple(names["joints"]),
        tissues=tissues,
        segments=tuple(names["segments"]),
        landmarks_mm={k: np.asarray(v, np.float64) for k, v in names["landmarks_mm"].items()},
        vertex_mm=float(origin[2] + pitch * (np.flatnonzero(inside.any(axis=(0, 1)))[-1] + 1)),
        sole_mm=float(origin[2] + pitch * np.flatnonzero(inside.any(axis=(0, 1)))[0]),
        front_mm=first.astype(np.float32),
        back_mm=last.astype(np.float32),
        slice_front_mm=slice_front.astype(np.float32),
        slice_back_mm=slice_back.astype(np.float32),
        origin_mm=origin,
        pitch_mm=pitch,
    )
