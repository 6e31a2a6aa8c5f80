"""Convert the XCAT-derived whole-body mesh phantom into the simulator's package data.

Run once (needs the ``phantom`` extra: ``pip install -e ".[phantom]"``):

    python scripts/build_phantom.py PATH/TO/mesh50XCAT_WholeBody.zip

and commit what it writes to ``synthscan/simulator/data/``: ``phantom.npz`` (labelled voxels,
compressed) beside the licence and citation of the source. Nothing at run time reads the meshes.

The meshes (Auer et al., Phys Med Biol 2022; Segars et al., Med Phys 2010; MIT licence) are
watertight STL surfaces in mm, centred on the origin, x to the patient's left, y posterior
(the face at low y), z from the feet to the head. Each mesh is voxelized as a solid by ray
parity (one ray per voxel column along y), which keeps cavities such as the cranium open,
unlike hole filling.

The skeleton is one surface. It is split into labelled bones by anatomical landmarks measured
on this phantom (each constant below says where it comes from): vertebral levels from the
intervertebral disc gaps, ribs by the vertebra they articulate with, limbs by their joint centres. Joint
surfaces (voxels of one bone within reach of its articular partner) get joint ids, so the
simulator can put degenerative or subchondral uptake on real joint geometry. Soft tissue
voxels get the limb segment of their nearest bone, so the simulator can re-pose arms and feet.
"""

from __future__ import annotations

import argparse
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import trimesh
from scipy import ndimage
from skimage.segmentation import watershed

PITCH_MM = 2.4  # voxel size: the common whole-body pixel (DOMAIN.md)
OUT = Path(__file__).resolve().parents[1] / "synthscan" / "simulator" / "data"

# Intervertebral disc levels (z, mm) of this phantom: minima of the vertebral-body voxel count along
# z within 15 mm of the midline (scipy.signal.find_peaks on the voxelized skeleton); upper thoracic
# levels, hidden by the ribs and sternum, are evenly spaced between T5/T4 and T1/C7 (assumption).
DISCS_MM = (
    146.3,
    182.3,
    220.7,
    256.7,
    290.3,
    323.9,
    352.7,
    381.5,
    405.5,
    429.5,
    453.5,
    489.5,
    513.5,
    542.3,
    567.0,
    592.0,
    616.0,
    640.7,
    659.9,
    676.7,
    693.5,
    712.7,
    731.0,
    748.0,
    762.0,
)
VERTEBRAE = (
    *(f"L{i}" for i in range(5, 0, -1)),
    *(f"T{i}" for i in range(12, 0, -1)),
    *(f"C{i}" for i in range(7, 0, -1)),
)  # bottom to top, between consecutive DISCS_MM

# Joint centres (x, y, z in mm), read off coronal and sagittal slabs of the voxelized skeleton.
LANDMARKS_MM = {
    "hip_R": (-96.0, 12.0, 40.0),
    "hip_L": (86.0, 12.0, 40.0),  # femoral head centres
    "knee_R": (-125.0, 20.0, -400.0),
    "knee_L": (108.0, 20.0, -400.0),  # tibiofemoral joint line
    "ankle_R": (-150.0, 35.0, -795.0),
    "ankle_L": (130.0, 35.0, -795.0),  # talocrural joint
    "shoulder_R": (-198.0, 40.0, 590.0),
    "shoulder_L": (188.0, 45.0, 590.0),  # humeral heads
    "elbow_R": (-251.0, 39.0, 281.0),
    "elbow_L": (237.0, 53.0, 291.0),  # arm-profile minima
    "wrist_R": (-306.0, 15.0, 50.0),
    "wrist_L": (298.0, 36.0, 56.0),
}
HEAD_RADIUS_MM = 24.0  # femoral head radius (measured on the coronal slab)
SACRUM_TOP_MM, COCCYX_TIP_MM = 146.3, 25.0  # S1 endplate (lowest disc) and coccyx tip (slab)
ACETABULUM_TOP_MM = 62.0  # ilium above, ischium/pubis below (coronal slab)
STERNUM = {"half_width": 30.0, "y_max": -20.0, "z": (380.0, 600.0)}  # voxel extent measured above

BONES: tuple[str, ...] = (
    "skull",
    "face",
    "mandible",
    *VERTEBRAE[::-1],
    "sacrum",
    "sternum",
    *(f"rib_{s}{i}" for s in "RL" for i in range(1, 13)),
    *(
        f"{b}_{s}"
        for b in (
            "clavicle",
            "scapula",
            "humerus",
            "forearm",
            "hand",
            "ilium",
            "ischium",
            "pubis",
            "femur",
            "patella",
            "tibia",
            "fibula",
            "foot",
        )
        for s in "RL"
    ),
)
JOINTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = tuple(
    (name, a, b)
    for s in "RL"
    for name, a, b in (
        (f"sacroiliac_{s}", ("sacrum",), (f"ilium_{s}",)),
        (f"hip_{s}", (f"femur_{s}",), (f"ilium_{s}", f"ischium_{s}", f"pubis_{s}")),
        (f"knee_{s}", (f"femur_{s}",), (f"tibia_{s}", f"patella_{s}", f"fibula_{s}")),
        (f"ankle_{s}", (f"tibia_{s}", f"fibula_{s}"), (f"foot_{s}",)),
        (f"shoulder_{s}", (f"humerus_{s}",), (f"scapula_{s}",)),
        (f"acromioclavicular_{s}", (f"clavicle_{s}",), (f"scapula_{s}",)),
        (f"sternoclavicular_{s}", (f"clavicle_{s}",), ("sternum",)),
        (f"elbow_{s}", (f"humerus_{s}",), (f"forearm_{s}",)),
        (f"wrist_{s}", (f"forearm_{s}",), (f"hand_{s}",)),
    )
)
JOINT_REACH_MM = 7.0  # joint surface: bone within this distance of its partner (assumption)
TISSUES = ("outside", "soft_tissue", "lung", "liver", "brain", "air")
SEGMENTS = ("static", *(f"{p}_{s}" for p in ("upper_arm", "forearm", "hand", "leg", "foot") for s in "RL"))


def load_meshes(archive: Path) -> dict[str, trimesh.Trimesh]:
    """The STL meshes of the archive by short name (Skeleton, Body, Lungs, Liver, Brain, AirCavity)."""
    meshes = {}
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = Path(info.filename).name
            if info.filename.startswith("__MACOSX") or not name.endswith(".stl"):
                continue
            key = name.removeprefix("WholeBody_").removesuffix(".stl")
            meshes[key] = trimesh.load(io.BytesIO(zf.read(info)), file_type="stl")
    return meshes


def voxelize(mesh: trimesh.Trimesh, axes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Solid occupancy of a watertight mesh on the voxel centres ``axes`` by ray parity along y."""
    xs, ys, zs = axes
    gx, gz = np.meshgrid(xs, zs, indexing="ij")
    origins = np.stack([gx.ravel(), np.full(gx.size, ys[0] - 50.0), gz.ravel()], axis=1)
    directions = np.tile([0.0, 1.0, 0.0], (gx.size, 1))
    hits, ray, _ = mesh.ray.intersects_location(origins, directions, multiple_hits=True)
    order = np.lexsort((hits[:, 1], ray))
    ray, y = ray[order], hits[order, 1]
    fresh = np.ones(len(y), bool)
    fresh[1:] = (ray[1:] != ray[:-1]) | (np.abs(y[1:] - y[:-1]) > 1e-4)  # a hit on a shared edge once
    crossings = np.zeros((gx.size, len(ys) + 1), np.int32)
    np.add.at(crossings, (ray[fresh], np.searchsorted(ys, y[fresh])), 1)
    inside = np.cumsum(crossings, axis=1)[:, :-1] % 2 == 1
    return inside.reshape(len(xs), len(zs), len(ys)).transpose(0, 2, 1)


def label_bones(skeleton: np.ndarray, axes, components: np.ndarray) -> np.ndarray:
    """Bone id (index into BONES, +1; 0 = no bone) of every skeleton voxel."""
    xs, ys, zs = axes
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij", sparse=True)
    labels = np.zeros(skeleton.shape, np.uint8)
    ids = {name: i + 1 for i, name in enumerate(BONES)}
    side = np.where(X < 0, "R", "L")

    def put(mask, name):
        labels[mask & skeleton & (labels == 0)] = ids[name]

    def put_sided(mask, stem):
        for s in "RL":
            put(mask & (side == s), f"{stem}_{s}")

    # Separate surfaces of the mesh first: clavicles, patellae, the left scapula, hands and toes.
    sizes = np.bincount(components.ravel())
    for comp in range(1, len(sizes)):
        where = components == comp
        idx = np.argwhere(where)
        cx, cz = xs[idx[:, 0]].mean(), zs[idx[:, 2]].mean()
        if sizes[comp] < 1500 and cz < 120 and abs(cx) > 250:
            put_sided(where, "hand")
        elif sizes[comp] < 1500 and cz < -800:
            put_sided(where, "foot")
        elif 500 < sizes[comp] < 3000 and cz < -300:
            put_sided(where, "patella")
        elif sizes[comp] < 12000 and cz > 450 and abs(cx) > 60:
            put_sided(where, "scapula")

    # Clavicles: anterior, above the sternum's lower manubrium (the left one shares a surface with
    # its scapula).
    put_sided((Z > 540) & (Z < 625) & (Y < 35) & (np.abs(X) > 25) & (np.abs(X) < 175), "clavicle")

    # Limbs by their joint centres.
    lm = {k: np.asarray(v) for k, v in LANDMARKS_MM.items()}
    for s, sign in (("R", -1), ("L", 1)):
        lateral = sign * X
        sh, el, wr = lm[f"shoulder_{s}"], lm[f"elbow_{s}"], lm[f"wrist_{s}"]
        arm = (lateral > abs(sh[0]) - 40) & (Z > -250)  # hands end near mid-thigh
        glenoid = sign * (X - sh[0]) < -14  # medial of the humeral head: the scapula
        put(arm & (Z > 440) & glenoid, f"scapula_{s}")
        put(arm & (wr[2] > Z) & (lateral > 250), f"hand_{s}")
        put(arm & (el[2] > Z) & (lateral > 200), f"forearm_{s}")
        put(arm & (el[2] <= Z) & (sh[2] + 40 > Z), f"humerus_{s}")
        hip, knee, ankle = lm[f"hip_{s}"], lm[f"knee_{s}"], lm[f"ankle_{s}"]
        head = (X - hip[0]) ** 2 + (Y - hip[1]) ** 2 + (Z - hip[2]) ** 2 < (HEAD_RADIUS_MM + 1.0) ** 2
        leg = (lateral > 20) & (hip[2] + 60 > Z)
        femur = (
            leg
            & (knee[2] < Z)
            & (head | ((hip[2] > Z) & (sign * (X - hip[0]) > -5)) | (sign * (X - hip[0]) > 38))
        )
        put(femur & (hip[2] + 40 > Z), f"femur_{s}")
        put(leg & (ankle[2] - 8 >= Z), f"foot_{s}")
        shin = leg & (knee[2] >= Z) & (ankle[2] - 8 < Z)
        put(shin & (sign * (X - knee[0]) > 32), f"fibula_{s}")
        put(shin, f"tibia_{s}")

    # Axial skeleton.
    discs = np.asarray(DISCS_MM)
    front = spine_front(skeleton, axes)
    spine_zone = (front[None, None, :] - 6.0 <= Y) & (np.abs(X) < np.where(Z < 324, 50.0, 32.0))
    for name, lo, hi in zip(VERTEBRAE, discs[:-1], discs[1:], strict=True):
        put(spine_zone & (lo <= Z) & (hi > Z), name)
    head_zone = discs[-1] <= Z
    put(head_zone & (Y < -40) & (Z < 795), "face")  # maxilla, nasal bones, orbits
    put(head_zone, "skull")
    put((Z > 640) & (discs[-1] > Z) & (front[None, None, :] - 6.0 > Y), "mandible")
    # The sacrum narrows from its alae (52 mm each side of the midline at S1) to the coccyx (14 mm).
    rise = np.clip((Z - COCCYX_TIP_MM) / (SACRUM_TOP_MM - COCCYX_TIP_MM), 0.0, 1.0)
    sacral = (np.abs(X + 5.0) < 14.0 + 38.0 * rise) & (Z >= COCCYX_TIP_MM - 10) & (Z < SACRUM_TOP_MM + 8)
    put(sacral & (Y > 25), "sacrum")
    pelvis = (Z < 200) & (Z > -80)  # iliac crests to ischial tuberosities
    put_sided(pelvis & (Z >= ACETABULUM_TOP_MM), "ilium")
    put_sided(pelvis & (Y < 15), "pubis")
    put_sided(pelvis, "ischium")
    st = STERNUM
    put((np.abs(X) < st["half_width"]) & (st["y_max"] > Y) & (st["z"][0] < Z) & (st["z"][1] > Z), "sternum")
    label_ribs(labels, skeleton, axes, ids)
    # The few voxels no rule claimed (processes, cartilage tips) join their nearest labelled bone.
    _, nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    orphans = skeleton & (labels == 0)
    labels[orphans] = labels[tuple(i[orphans] for i in nearest)]
    return labels


def spine_front(skeleton: np.ndarray, axes) -> np.ndarray:
    """Anterior surface y of the vertebral bodies per z slice (median-filtered), sternum excluded."""
    xs, ys, zs = axes
    column = skeleton[np.abs(xs) < 15][:, ys > -15]
    yy = ys[ys > -15]
    front = np.full(len(zs), 100.0)
    for k in range(len(zs)):
        occupied = column[:, :, k].any(axis=0)
        if occupied.any():
            front[k] = yy[occupied].min()
    return ndimage.median_filter(front, 9)


def label_ribs(labels: np.ndarray, skeleton: np.ndarray, axes, ids: dict[str, int]) -> None:
    """Ribs 1-12 per side: rib n articulates with vertebra Tn, so the unlabelled thoracic bone is
    flooded along the bone from the thoracic vertebrae and takes the level it is reached from."""
    xs, _, zs = axes
    X = xs[:, None, None]
    Z = zs[None, None, :]
    rest = skeleton & (labels == 0) & (Z > 250) & (Z < 660)
    markers = np.zeros(labels.shape, np.int32)
    for level in range(1, 13):
        markers[labels == ids[f"T{level}"]] = level
    flooded = watershed(np.zeros(labels.shape, np.uint8), markers=markers, mask=rest | (markers > 0))
    for level in range(1, 13):
        for s, on_side in (("R", X < 0), ("L", X >= 0)):
            labels[rest & on_side & (flooded == level)] = ids[f"rib_{s}{level}"]


def joint_map(labels: np.ndarray) -> np.ndarray:
    """Joint id (index into JOINTS, +1) of bone voxels within JOINT_REACH_MM of an articular partner."""
    ids = {name: i + 1 for i, name in enumerate(BONES)}
    joints = np.zeros(labels.shape, np.uint8)
    reach = JOINT_REACH_MM / PITCH_MM
    for j, (_, first, second) in enumerate(JOINTS, start=1):
        a = np.isin(labels, [ids[b] for b in first])
        b = np.isin(labels, [ids[b] for b in second])
        if not (a.any() and b.any()):
            continue
        box = ndimage.find_objects((a | b).astype(np.uint8))[0]
        near_b = ndimage.distance_transform_edt(~b[box]) <= reach
        near_a = ndimage.distance_transform_edt(~a[box]) <= reach
        sub = joints[box]
        sub[(a[box] & near_b) | (b[box] & near_a)] = j
    return joints


def tissue_map(vols: dict[str, np.ndarray]) -> np.ndarray:
    """Tissue id (index into TISSUES) of every voxel: organs over the body outline."""
    tissue = np.zeros(vols["Body"].shape, np.uint8)
    tissue[vols["Body"] | vols["Skeleton"]] = TISSUES.index("soft_tissue")
    for mesh, name in (("Lungs", "lung"), ("Liver", "liver"), ("Brain", "brain"), ("AirCavity", "air")):
        tissue[vols[mesh]] = TISSUES.index(name)
    return tissue


def segment_map(tissue: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Limb segment (index into SEGMENTS) of every body voxel, from its nearest bone."""
    names = {i + 1: name for i, name in enumerate(BONES)}
    bone_to_segment = np.zeros(len(BONES) + 1, np.uint8)
    for i, name in names.items():
        stem, _, s = name.rpartition("_")
        part = {
            "humerus": "upper_arm",
            "forearm": "forearm",
            "hand": "hand",
            "foot": "foot",
            "femur": "leg",
            "patella": "leg",
            "tibia": "leg",
            "fibula": "leg",
        }.get(stem)
        if part:
            bone_to_segment[i] = SEGMENTS.index(f"{part}_{s}")
    _, nearest = ndimage.distance_transform_edt(labels == 0, return_indices=True)
    nearest_label = labels[tuple(nearest)]
    del nearest
    segments = bone_to_segment[nearest_label]
    segments[tissue == 0] = 0
    return segments


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", type=Path, help="mesh50XCAT_WholeBody.zip")
    ap.add_argument("--out", type=Path, default=OUT, help="package data folder (default: %(default)s)")
    args = ap.parse_args()
    meshes = load_meshes(args.archive)
    lo, hi = meshes["Body"].bounds
    axes = tuple(np.arange(lo[i] - PITCH_MM / 2, hi[i] + PITCH_MM, PITCH_MM) for i in range(3))
    vols = {name: voxelize(mesh, axes) for name, mesh in meshes.items() if name != "BronchiTree"}
    components, _ = ndimage.label(vols["Skeleton"])
    labels = label_bones(vols["Skeleton"], axes, components)
    tissue = tissue_map(vols)
    joints = joint_map(labels)
    data = {
        "bone": labels,
        "joint": joints,
        "tissue": tissue,
        "segment": segment_map(tissue, labels),
        "origin_mm": np.asarray([a[0] for a in axes], np.float32),
        "pitch_mm": np.float32(PITCH_MM),
        "names": np.asarray(
            json.dumps(
                {
                    "bones": BONES,
                    "joints": [j[0] for j in JOINTS],
                    "tissues": TISSUES,
                    "segments": SEGMENTS,
                    "landmarks_mm": LANDMARKS_MM,
                    "discs_mm": DISCS_MM,
                }
            )
        ),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "phantom.npz", **data)
    counts = np.bincount(labels.ravel(), minlength=len(BONES) + 1)
    print(f"{args.out / 'phantom.npz'}: grid {labels.shape}, {int(vols['Skeleton'].sum())} bone voxels")
    for name, n in zip(BONES, counts[1:], strict=True):
        print(f"  {name:>22}: {n}")


if __name__ == "__main__":
    main()
