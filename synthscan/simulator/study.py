"""One simulated study from a site config and a seed, and whole datasets of them.

A study's seed is split into independent random streams (patient, condition, mimics, acquisition,
noise), so changing the condition settings of a site leaves the same seed's patient, mimics and
acquisition unchanged: the same body with and without disease.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import math
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
from synthscan.simulator.anatomy import Patient, Phantom, build_phantom, sample_patient
from synthscan.simulator.disease import Condition, Finding, add_mimics, sample_condition
from synthscan.simulator.physics import Grid, Placement, project
from synthscan.simulator.sites import SimulatorConfig

log = logging.getLogger(__name__)

STREAMS: tuple[str, ...] = ("patient", "condition", "mimics", "acquisition", "noise")
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
    patient = sample_patient(config.patients, rng["patient"])
    phantom = build_phantom(patient, rng["patient"])
    scan = rng["acquisition"]
    tracers = list(config.tracer_weights)
    weights = np.asarray([config.tracer_weights[t] for t in tracers], dtype=float)
    tracer = tracers[int(scan.choice(len(tracers), p=weights / weights.sum()))]
    condition = sample_condition(phantom, config.disease, tracer, rng["condition"])
    mimics = add_mimics(phantom, patient, config.disease, rng["mimics"])
    concentration, soft_tissue, biodistribution = _concentrations(
        config, phantom, patient, condition, tracer, scan
    )

    rows, cols = config.matrix
    grid = Grid(rows, cols, config.pixel_spacing_mm)
    placement = Placement(
        axial_rotation_deg=patient.axial_rotation_deg,
        tilt_deg=patient.tilt_deg,
        pivot_y=0.5 * patient.height_mm,
        dx=patient.lateral_offset_mm,
        dy=patient.top_margin_mm,
    )
    image = project(placement.phantom(phantom), concentration, soft_tissue, grid, config.scanner)
    scan_end_mm = _scan_end(patient, placement, scan)
    last_row = min(rows, max(1, math.ceil(scan_end_mm / grid.spacing)))
    image[:, last_row:] = 0.0

    target = float(np.exp(scan.uniform(*np.log(config.counts_per_view))))
    background = np.zeros((rows, cols), np.float32)
    background[:last_row] = config.scanner.background_counts_per_pixel
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
        "lesions": [_finding_truth(f, placement, grid) for f in condition.lesions],
        "mimics": [_finding_truth(f, placement, grid) for f in mimics],
        "organs_pixel_anterior": {
            name: [round(v, 1) for v in grid.to_pixel(*placement.point(phantom.landmarks[name])[:2])]
            for name in ("heart", "bladder")
        },
        "biodistribution": biodistribution,
        "scan_end_mm": round(scan_end_mm, 1),
        "target_counts": round(target),
        "counts_per_view": [int(v) for v in counts.reshape(2, -1).sum(axis=1)],
        "expected_counts_per_view": [round(float(v), 1) for v in expected.reshape(2, -1).sum(axis=1)],
        "noise": noise,
        "matrix": [rows, cols],
        "pixel_spacing_mm": config.pixel_spacing_mm,
        "scanner": to_dict(config.scanner),
        "synthscan_version": synthscan.__version__,
    }
    return SimulatedStudy(counts, expected, condition.label, condition.perugini_grade, tracer, meta)


def _concentrations(
    config: SimulatorConfig,
    phantom: Phantom,
    patient: Patient,
    condition: Condition,
    tracer: str,
    rng: np.random.Generator,
) -> tuple[dict[str, float], float, dict[str, Any]]:
    """Activity per mm³ of each compartment from the sampled biodistribution fractions.

    A compartment's concentration is its fraction of the activity over its (density-weighted)
    volume in this phantom, so bigger patients spread the same activity thinner.
    """
    bio = config.biodistribution
    volume = collections.Counter()
    for prim in phantom.primitives:
        if prim.compartment in ("bone", "kidney", "bladder"):
            volume[prim.compartment] += prim.volume() * max(prim.density, 0.0)
    body_mm3 = patient.bmi * (patient.height_mm / 1000.0) ** 2 * 1e6  # 1 kg of tissue ≈ 1 L
    fractions = {
        "bone": rng.uniform(*bio.bone_fraction) * patient.bone_uptake * bio.tracer_bone[tracer],
        "soft_tissue": rng.uniform(*bio.soft_tissue_fraction) * patient.soft_tissue_uptake,
        "kidney": rng.uniform(*bio.kidney_fraction) * patient.kidney_uptake,
        "bladder": rng.uniform(*bio.bladder_fraction) * (0.3 + patient.bladder_filling),
    }
    fractions["soft_tissue"] *= bio.tracer_soft_tissue[tracer]
    nominal_bone = fractions["bone"] / volume["bone"]
    bone = nominal_bone * condition.bone_factor
    concentration = {
        "bone": bone,
        "lesion": bone,
        "kidney": fractions["kidney"] * condition.kidney_factor / volume["kidney"],
        "bladder": fractions["bladder"] * condition.bladder_factor / volume["bladder"],
        "heart": condition.cardiac_to_bone * nominal_bone,
        "hotspot": nominal_bone,
    }
    soft_tissue = fractions["soft_tissue"] * condition.soft_tissue_factor / body_mm3
    truth = {
        "fractions": {k: round(float(v), 4) for k, v in fractions.items()},
        "bone_factor": round(condition.bone_factor, 3),
        "soft_tissue_factor": round(condition.soft_tissue_factor, 3),
        "kidney_factor": round(condition.kidney_factor, 3),
        "bladder_factor": round(condition.bladder_factor, 3),
        "concentration_relative_to_bone": {
            k: round(float(v / nominal_bone), 4)
            for k, v in {**concentration, "soft_tissue": soft_tissue}.items()
        },
    }
    return concentration, soft_tissue, truth


def _scan_end(patient: Patient, placement: Placement, rng: np.random.Generator) -> float:
    """Where the table stopped (mm from the field top): below the feet, or above them if partial."""
    sole = placement.dy + patient.height_mm
    if patient.partial_scan:
        return placement.dy + patient.height_mm * float(rng.uniform(0.55, 0.85))
    return sole + float(rng.uniform(10.0, 60.0))


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


def _finding_truth(finding: Finding, placement: Placement, grid: Grid) -> dict[str, Any]:
    x, y, _ = placement.point(finding.position_mm)
    row, col = grid.to_pixel(x, y)
    return {
        **finding.ground_truth(),
        "field_position_mm": [round(x, 2), round(y, 2)],
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

    Study ``i`` is ``<site>-<i>`` with seed :func:`study_seed` (``seed``, ``i``) and its own
    patient ``<site>-P<i>``. Rerunning with the same arguments resumes: studies already in the
    manifest are verified against their recorded size and checksum and skipped, damaged or missing
    ones are simulated again; a folder simulated with another site config or seed is refused.
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
    ids = [_study_id(config.site, i) for i in range(n)]
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
                patient_id=f"{config.site}-P{index:06d}",
                source=SOURCE,
                site=config.site,
                replace=ids[index] in damaged,
                **fields,
            )
            bar.update()
    return dataset


def _study_id(site: str, index: int) -> str:
    return f"{site}-{index:06d}"
