"""One simulated study from a site config and a seed, and whole datasets of them.

A study's seed is split into independent random streams (patient, condition, mimics, acquisition,
noise), so changing the condition settings of a site leaves the same seed's patient, mimics and
acquisition unchanged: the same body with and without disease.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import math
import re
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import synthscan
from synthscan.config import to_dict
from synthscan.dataset import Dataset, DatasetError
from synthscan.simulator.anatomy import Patient, Pose, sample_patient
from synthscan.simulator.disease import Condition, Finding, Skeleton, add_mimics, sample_condition
from synthscan.simulator.phantom import ReferencePhantom, load_phantom
from synthscan.simulator.physics import Grid, Sources, project
from synthscan.simulator.sites import SimulatorConfig
from synthscan.simulator.uptake import (
    SOFT_TEXTURE_AMPLITUDE,
    Blob,
    base_bone_uptake,
    growth_plates,
    heterogeneity,
    organs,
    soft_tissue_uptake,
)

log = logging.getLogger(__name__)

STREAMS: tuple[str, ...] = ("patient", "condition", "mimics", "acquisition", "noise")
PHANTOM_SOURCE = "mesh50_XCAT whole-body phantom (Auer et al. 2022, Segars et al. 2010), MIT"
BLOOD_POOL_TO_SOFT_TISSUE = 2.0
"""Blood-pool (cardiac chambers) over mean soft-tissue concentration at 2-4 h (# assumption)."""
SOURCE = "simulated"


@dataclass
class SimulatedStudy:
    """Counts of both views (posterior as acquired), the noise-free expectation and ground truth."""

    counts: np.ndarray
    expected: np.ndarray
    label: str
    perugini_grade: int
    tracer: str
    meta: dict[str, Any] = field(default_factory=dict)

    def manifest_columns(self) -> dict[str, Any]:
        """Extra manifest columns: the ground truth most often filtered on."""
        patient = self.meta["patient"]
        return {
            "sex": patient["sex"],
            "age": patient["age"],
            "height_mm": patient["height_mm"],
            "bmi": patient["bmi"],
            "lesion_count": len(self.meta["lesions"]),
            "primary": self.meta["primary"],
            "superscan": int(self.meta["superscan"]),
            "mimics": ";".join(sorted({m["kind"] for m in self.meta["mimics"]})),
            "scanner": self.meta["scanner"]["name"],
            "counts_anterior": self.meta["counts_per_view"][0],
            "counts_posterior": self.meta["counts_per_view"][1],
        }


def study_seed(seed: int, index: int) -> int:
    """Seed of study ``index`` of a dataset simulated with base ``seed`` (recorded in the manifest)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


def simulate_study(config: SimulatorConfig, seed: int, *, noise: bool = True) -> SimulatedStudy:
    """Simulate one patient's whole-body scan; deterministic in (``config``, ``seed``)."""
    rng = dict(
        zip(STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5)), strict=True)
    )
    phantom = load_phantom()
    patient = sample_patient(config.patients, rng["patient"])
    uptake = _patient_uptake(phantom, patient, rng["patient"])
    nominal = uptake.copy()
    skeleton = Skeleton(phantom, uptake)
    scan = rng["acquisition"]
    tracers = list(config.tracer_weights)
    weights = np.asarray([config.tracer_weights[t] for t in tracers], dtype=float)
    tracer = tracers[int(scan.choice(len(tracers), p=weights / weights.sum()))]
    condition = sample_condition(skeleton, config.disease, tracer, rng["condition"])
    mimics, hot_spots = add_mimics(skeleton, patient, config.disease, rng["mimics"])
    body = organs(phantom, patient)
    levels, biodistribution = _concentrations(
        config, phantom, patient, condition, tracer, nominal, body, scan
    )

    rows, cols = config.matrix
    grid = Grid(rows, cols, config.pixel_spacing_mm)
    pose = Pose(patient, phantom, cols * grid.spacing)
    gap = config.scanner.gap_mm
    bone = phantom.bone
    soft = phantom.soft
    soft_level = soft_tissue_uptake(phantom) * heterogeneity(soft.xyz, rng["patient"], SOFT_TEXTURE_AMPLITUDE)
    sources = [
        _sources(
            pose, bone.xyz, bone.segment, bone.volume * uptake * levels["bone"], bone.depth, bone.contour, gap
        ),
        _sources(
            pose,
            soft.xyz,
            soft.segment,
            soft.volume * soft_level * levels["soft_tissue"],
            soft.depth,
            soft.contour,
            gap,
            smooth=True,
        ),
    ]
    blobs = [(blob, levels[name]) for name, group in body.items() for blob in group]
    blobs += [(blob, contrast * levels["hotspot"]) for blob, contrast in hot_spots]
    for blob, level in blobs:
        if level > 0:
            depth = phantom.surface_depth(blob.xyz)
            if blob.name == "breast":  # in front of the chest wall: its own tissue, not the phantom's
                depth[:, 0] = blob.xyz[:, 1] - blob.xyz[:, 1].min()
            segment = np.full(len(blob.volume), blob.segment, np.uint8)
            sources.append(
                _sources(
                    pose,
                    blob.xyz,
                    segment,
                    blob.volume * level,
                    depth,
                    phantom.contour_distance(blob.xyz),
                    gap,
                )
            )
    image = project(sources, grid, config.scanner)
    scan_end_mm = _scan_end(patient, scan)
    last_row = min(rows, max(1, math.ceil(scan_end_mm / grid.spacing)))
    first_row = min(
        last_row - 1, math.floor(patient.top_margin_mm * float(scan.uniform(0.3, 0.7)) / grid.spacing)
    )
    image[:, last_row:] = 0.0
    image[:, :first_row] = 0.0  # the table starts just above the vertex: no counts before it

    target = float(np.exp(scan.uniform(*np.log(config.counts_per_view))))
    background = np.zeros((rows, cols), np.float32)
    background[first_row:last_row] = config.scanner.background_counts_per_pixel
    expected = (_count_scale(image, background, target, config.counts_per_view) * image + background).astype(
        np.float32
    )
    counts = rng["noise"].poisson(expected) if noise else np.rint(expected)
    counts = counts.astype(np.uint16 if counts.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32)

    meta = {
        "site": config.site,
        "seed": int(seed),
        "label": condition.label,
        "perugini_grade": condition.perugini_grade,
        "tracer": tracer,
        "patient": dataclasses.asdict(patient),
        "primary": condition.primary,
        "superscan": condition.superscan,
        "superscan_factor": round(condition.superscan_factor, 3),
        "cardiac_to_bone": round(condition.cardiac_to_bone, 4),
        "lesions": [_finding_truth(f, pose, grid) for f in condition.lesions],
        "mimics": [_finding_truth(f, pose, grid) for f in mimics],
        "organs_pixel_anterior": {
            name: [round(v, 1) for v in _pixel(pose, grid, body[name][0].xyz.mean(axis=0), 0)]
            for name in ("heart", "bladder")
        },
        "biodistribution": biodistribution,
        "scan_start_mm": round(first_row * grid.spacing, 1),
        "scan_end_mm": round(scan_end_mm, 1),
        "target_counts": round(target),
        "counts_per_view": [int(v) for v in counts.reshape(2, -1).sum(axis=1)],
        "expected_counts_per_view": [round(float(v), 1) for v in expected.reshape(2, -1).sum(axis=1)],
        "noise": noise,
        "matrix": [rows, cols],
        "pixel_spacing_mm": config.pixel_spacing_mm,
        "scanner": to_dict(config.scanner),
        "anatomy": PHANTOM_SOURCE,
        "synthscan_version": synthscan.__version__,
    }
    return SimulatedStudy(counts, expected, condition.label, condition.perugini_grade, tracer, meta)


def _patient_uptake(phantom: ReferencePhantom, patient: Patient, rng: np.random.Generator) -> np.ndarray:
    """Normal bone uptake of this patient: per-bone variation (log-normal, sd 0.12, # assumption),
    a more intense calvarium in women (# assumption from clinical experience), growth plates in the
    young (DOMAIN.md)."""
    variation = rng.lognormal(0.0, 0.12, len(phantom.bones) + 1).astype(np.float32)
    if patient.sex == "F":
        variation[phantom.bone_id("skull")] *= 1.25
    uptake = _base_uptake() * variation[phantom.bone.kind]
    if patient.age < 20:
        growth_plates(phantom, uptake, float(rng.uniform(2.5, 4.0)))
    return uptake


@functools.lru_cache(maxsize=1)
def _base_uptake() -> np.ndarray:
    """Normal uptake of the reference skeleton (computed once per process; studies copy it)."""
    return base_bone_uptake(load_phantom())


def _sources(
    pose: Pose,
    xyz: np.ndarray,
    segment: np.ndarray,
    activity: np.ndarray,
    depth: np.ndarray,
    contour: np.ndarray,
    gap_mm: float,
    *,
    smooth: bool = False,
) -> Sources:
    """Phantom points as this patient's point sources: posed, depths scaled by the habitus."""
    row, col = pose.field(pose.limbs(xyz, segment))
    depth, distance = depth * pose.sy, contour * pose.sy + gap_mm
    return Sources(row, col, activity.astype(np.float32), depth, distance, smooth=smooth)


def _concentrations(
    config: SimulatorConfig,
    phantom: ReferencePhantom,
    patient: Patient,
    condition: Condition,
    tracer: str,
    nominal_uptake: np.ndarray,
    body: dict[str, list[Blob]],
    rng: np.random.Generator,
) -> tuple[dict[str, float], dict[str, Any]]:
    """Activity per mm³ (per unit uptake) of each compartment from the sampled biodistribution.

    A compartment's concentration is its fraction of the activity over its uptake-weighted volume
    in the phantom; every phantom point stands for its share of the patient's (habitus-scaled)
    tissue, so a bigger patient spreads the same activity over the same points, only deeper. Bone is
    normalised on the normal skeleton: lesions add activity on top, as they do in patients.
    """
    bio = config.biodistribution
    tissue_level = soft_tissue_uptake(phantom)
    volume = {
        "bone": float((nominal_uptake * phantom.bone.volume).sum()),
        "soft_tissue": float((tissue_level * phantom.soft.volume).sum())
        + sum(float(b.volume.sum()) for b in body["breast"]),
        "kidney": sum(float(b.volume.sum()) for b in body["kidney"]),
        "bladder": sum(float(b.volume.sum()) for b in body["bladder"]),
    }
    fractions = {
        "bone": rng.uniform(*bio.bone_fraction) * patient.bone_uptake * bio.tracer_bone[tracer],
        "soft_tissue": rng.uniform(*bio.soft_tissue_fraction) * patient.soft_tissue_uptake,
        "kidney": rng.uniform(*bio.kidney_fraction) * patient.kidney_uptake,
        "bladder": rng.uniform(*bio.bladder_fraction) * (0.3 + patient.bladder_filling),
    }
    fractions["soft_tissue"] *= bio.tracer_soft_tissue[tracer]
    nominal_bone = fractions["bone"] / volume["bone"]
    soft = fractions["soft_tissue"] * condition.soft_tissue_factor / volume["soft_tissue"]
    levels = {
        "bone": nominal_bone * condition.bone_factor,
        "soft_tissue": soft,
        "breast": soft,
        "kidney": fractions["kidney"] * condition.kidney_factor / volume["kidney"],
        "bladder": fractions["bladder"] * condition.bladder_factor / volume["bladder"],
        "heart": condition.cardiac_to_bone * nominal_bone,
        "blood_pool": BLOOD_POOL_TO_SOFT_TISSUE * soft,
        "hotspot": nominal_bone,
    }
    truth = {
        "fractions": {k: round(float(v), 4) for k, v in fractions.items()},
        "bone_factor": round(condition.bone_factor, 3),
        "soft_tissue_factor": round(condition.soft_tissue_factor, 3),
        "kidney_factor": round(condition.kidney_factor, 3),
        "bladder_factor": round(condition.bladder_factor, 3),
        "concentration_relative_to_bone": {
            k: round(float(v / nominal_bone), 4) for k, v in levels.items() if k not in ("breast", "hotspot")
        },
    }
    return levels, truth


def _scan_end(patient: Patient, rng: np.random.Generator) -> float:
    """Where the table stopped (mm from the field top): below the feet, or above them if partial."""
    if patient.partial_scan:
        return patient.top_margin_mm + patient.height_mm * float(rng.uniform(0.55, 0.85))
    return patient.top_margin_mm + patient.height_mm + float(rng.uniform(60.0, 120.0))


def _count_scale(
    image: np.ndarray, background: np.ndarray, target: float, bounds: tuple[float, float]
) -> float:
    """Scale that gives the mean view ``target`` counts, kept so that both views stay within ``bounds``."""
    totals = image.reshape(2, -1).sum(axis=1).astype(float)
    extra = float(background.sum())
    if totals.min() <= 0:
        return 0.0
    scale = (target - extra) / totals.mean()
    low, high = ((b - extra) / t for b, t in ((bounds[0], totals.min()), (bounds[1], totals.max())))
    return float(np.clip(scale, low, high)) if low <= high else scale


def _pixel(pose: Pose, grid: Grid, xyz: np.ndarray, segment: int) -> tuple[float, float]:
    """Anterior-view pixel (row, column) of one phantom point in this patient."""
    moved = pose.limbs(np.asarray(xyz, np.float32)[None], np.asarray([segment], np.uint8))
    row, col = pose.field(moved)
    return float(row[0]) / grid.spacing, float(col[0]) / grid.spacing


def _finding_truth(finding: Finding, pose: Pose, grid: Grid) -> dict[str, Any]:
    row, col = _pixel(pose, grid, np.asarray(finding.position_mm), finding.segment)
    return {
        **finding.ground_truth(),
        "pixel_anterior": [round(row, 1), round(col, 1)],
        "pixel_posterior": [round(row, 1), round(grid.cols - 1 - col, 1)],
    }


_WORKER_CONFIG: SimulatorConfig | None = None


def _init_worker(config: SimulatorConfig) -> None:
    global _WORKER_CONFIG
    _WORKER_CONFIG = config


def _fields(config: SimulatorConfig, seed: int) -> dict[str, Any]:
    """What the dataset writer needs of one study (not the float expectation, 4x the counts' size)."""
    study = simulate_study(config, seed)
    return {
        "counts": study.counts,
        "label": study.label,
        "perugini_grade": study.perugini_grade,
        "tracer": study.tracer,
        "seed": seed,
        "meta": study.meta,
        "extra": study.manifest_columns(),
    }


def _fields_in_worker(seed: int) -> dict[str, Any]:
    if _WORKER_CONFIG is None:
        raise RuntimeError("worker started without a site config")
    return _fields(_WORKER_CONFIG, seed)


def _ordered_results(config: SimulatorConfig, seeds: list[int], workers: int) -> Iterator[dict[str, Any]]:
    """Studies in ``seeds`` order, at most a few per worker in flight (memory flat in n)."""
    if workers <= 1:
        for seed in seeds:
            yield _fields(config, seed)
        return
    window = 4 * workers
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(config,))
    try:
        pending: collections.deque[Future] = collections.deque()
        for seed in seeds:
            if len(pending) >= window:
                yield pending.popleft().result()
            pending.append(pool.submit(_fields_in_worker, seed))
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # an interrupted run does not finish queued studies


def _provenance(config: SimulatorConfig, seed: int) -> dict[str, Any]:
    return {"site_config": to_dict(config), "seed": seed}


def simulate_dataset(
    config: SimulatorConfig,
    n: int,
    out: str | Path,
    *,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Dataset:
    """Simulate ``n`` studies into the dataset folder ``out``, streaming them to disk in order.

    Study ``i`` is ``<site>-<i>`` (``<site>-s<seed>-<i>`` for a base seed other than 0, so that
    datasets of one site simulated with different seeds never share a study or patient id) with seed
    :func:`study_seed` (``seed``, ``i``) and its own patient ``<site>-P<i>`` (``<site>-s<seed>-P<i>``);
    a folder whose simulated studies are named otherwise (an older synthscan's) is refused. Rerunning
    with the same arguments resumes: studies already in the manifest are verified against their
    recorded size and checksum and skipped, damaged or missing ones are simulated again; a folder
    simulated with another site config or seed is refused.
    """
    from tqdm import tqdm

    from synthscan.runs import git_hash

    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    out = Path(out)
    settings = _provenance(config, seed)
    dataset = Dataset.create(
        out, matrix=config.matrix, pixel_spacing_mm=config.pixel_spacing_mm, exist_ok=True
    )
    previous = dataset.info.provenance.get("simulator")
    if previous is not None and {k: previous.get(k) for k in settings} != settings:
        raise DatasetError(
            f"{out} was simulated with other settings (site {previous['site_config'].get('site')!r}, "
            f"seed {previous.get('seed')}); rerun with the same --site/--seed/--set to resume, "
            "or choose a new folder"
        )
    if previous is None and len(dataset):
        raise DatasetError(
            f"{out} holds a dataset that was not made by `synthscan simulate`; choose a new folder"
        )
    prefix = _id_prefix(config.site, seed)
    named = re.compile(re.escape(prefix) + r"\d{6,}")
    strangers = [
        r.study_id
        for r in dataset
        if r.source == SOURCE and r.site == config.site and not named.fullmatch(r.study_id)
    ]
    if strangers:  # an older synthscan named every seed's studies alike: resuming would add them twice
        raise DatasetError(
            f"{out} holds simulated studies named unlike those of seed {seed} (e.g. {strangers[0]}, "
            "from an older synthscan); simulate into a new folder"
        )
    dataset.update_provenance(
        simulator={
            **settings,
            "synthscan_version": synthscan.__version__,
            "git": git_hash(),
            "command": sys.argv,
            "n": max(n, int((previous or {}).get("n", 0))),
        },
        source=SOURCE,
    )
    ids = [f"{prefix}{i:06d}" for i in range(n)]
    present = [dataset.record(study_id) for study_id in ids if study_id in dataset]
    damaged = dataset.broken(present)
    for study_id, problem in damaged.items():
        log.warning("simulating %s again: %s", study_id, problem)
    todo = [i for i, study_id in enumerate(ids) if study_id not in dataset or study_id in damaged]
    if present:
        log.info("resuming %s: %d of %d studies already there", out, len(present) - len(damaged), n)
    if len(dataset) > n:
        log.warning(
            "%s already holds %d studies, more than -n %d: nothing is removed; rerun with -n %d or more to "
            "extend it",
            out,
            len(dataset),
            n,
            len(dataset),
        )
    seeds = [study_seed(seed, i) for i in todo]
    with (
        dataset.writer() as writer,
        tqdm(total=n, initial=n - len(todo), desc="simulate", unit="study", disable=not progress) as bar,
    ):
        for index, fields in zip(todo, _ordered_results(config, seeds, workers), strict=True):
            counts = fields.pop("counts")
            writer.add(
                counts,
                study_id=ids[index],
                patient_id=f"{prefix}P{index:06d}",
                source=SOURCE,
                site=config.site,
                replace=ids[index] in damaged,
                **fields,
            )
            bar.update()
    return dataset


def _id_prefix(site: str, seed: int) -> str:
    """What study and patient ids of a ``site`` simulated with base ``seed`` start with."""
    return f"{site}-" if seed == 0 else f"{site}-s{seed}-"
