"""Site presets: the dataclass config of one simulated imaging centre.

A site fixes the scanner (collimator resolution, scatter), the count level, the matrix, the tracer
mix, the patient mix and the disease prevalence. Presets live in ``configs/simulator/<name>.yaml``
and every number there carries its source (``DOMAIN.md``) or ``# assumption``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synthscan.config import ConfigError, builtin_config, builtin_names, from_dict, to_dict
from synthscan.labels import DEFAULT_MATRIX, DEFAULT_PIXEL_SPACING_MM, TRACERS

CONFIG_GROUP = "simulator"


@dataclass
class ScannerConfig:
    """Dual-head gamma camera with a LEHR parallel-hole collimator (presets comment each number)."""

    name: str = "LEHR dual-head, 15 % window"
    fwhm_at_collimator_mm: float = 7.0
    fwhm_per_mm: float = 0.033
    gap_mm: float = 30.0
    attenuation_per_mm: float = 0.0088
    table_transmission: float = 0.96
    scatter_fraction: float = 0.06
    scatter_fwhm_mm: float = 60.0
    background_counts_per_pixel: float = 0.07


@dataclass
class PatientMixConfig:
    """Who is referred for a bone scan at this site, and how they lie on the table."""

    female_fraction: float = 0.45
    age_mean: float = 67.0
    age_sd: float = 12.0
    young_fraction: float = 0.03
    height_mean_mm: tuple[float, float] = (1640.0, 1760.0)
    height_sd_mm: float = 70.0
    bmi_mean: float = 26.5
    bmi_sd: float = 4.5
    arm_position_weights: tuple[float, float, float] = (0.7, 0.1, 0.2)
    breast_fraction: float = 0.9
    max_axial_rotation_deg: float = 4.0
    max_tilt_deg: float = 2.5
    partial_scan_fraction: float = 0.05


@dataclass
class BiodistributionConfig:
    """Where the tracer is at imaging time, as (low, high) ranges sampled per patient.

    Fractions are of the activity left in the body; the concentration of each compartment
    follows from its volume in the phantom.
    """

    bone_fraction: tuple[float, float] = (0.5, 0.62)
    soft_tissue_fraction: tuple[float, float] = (0.19, 0.33)
    kidney_fraction: tuple[float, float] = (0.008, 0.025)
    bladder_fraction: tuple[float, float] = (0.01, 0.08)
    tracer_soft_tissue: dict[str, float] = field(default_factory=lambda: {"MDP": 1.0, "HDP": 1.1, "DPD": 1.4})
    tracer_bone: dict[str, float] = field(default_factory=lambda: {"MDP": 1.0, "HDP": 1.0, "DPD": 0.95})


@dataclass
class DiseaseConfig:
    """Prevalence and appearance of the conditions and their benign mimics."""

    metastasis_prevalence: float = 0.25
    amyloidosis_prevalence: float = 0.12
    grade_weights: tuple[float, float, float] = (0.3, 0.4, 0.3)
    primary_weights: dict[str, float] = field(
        default_factory=lambda: {"prostate": 0.4, "breast": 0.3, "lung": 0.15, "other": 0.15}
    )
    region_weights: dict[str, float] = field(
        default_factory=lambda: {
            "spine": 0.36,
            "ribs": 0.18,
            "pelvis": 0.14,
            "sacrum": 0.04,
            "femur": 0.08,
            "skull": 0.06,
            "humerus": 0.05,
            "sternum": 0.04,
            "scapula": 0.03,
            "clavicle": 0.02,
        }
    )
    primary_region_factors: dict[str, dict[str, float]] = field(
        default_factory=lambda: {
            "prostate": {"spine": 1.4, "pelvis": 1.8, "sacrum": 1.6, "ribs": 0.7, "skull": 0.5},
            "breast": {"ribs": 1.7, "sternum": 2.5, "skull": 1.8, "pelvis": 0.8},
        }
    )
    lesion_count_mean: float = 4.5
    widespread_fraction: float = 0.15
    widespread_count: tuple[int, int] = (12, 40)
    superscan_fraction: float = 0.03
    superscan_bone_factor: tuple[float, float] = (2.0, 3.0)
    superscan_lesion_contrast: tuple[float, float] = (1.2, 2.0)
    cold_lesion_fraction: float = 0.05
    lesion_contrast: tuple[float, float] = (2.0, 8.0)
    cold_contrast: tuple[float, float] = (0.15, 0.5)
    lesion_diameter_mm: tuple[float, float] = (10.0, 40.0)
    cardiac_to_bone: tuple[float, float, float] = (0.25, 0.6, 1.2)
    cardiac_spread: float = 0.25
    tracer_cardiac: dict[str, float] = field(default_factory=lambda: {"MDP": 0.3, "HDP": 0.85, "DPD": 1.0})
    grade3_bone_factor: tuple[float, float] = (0.2, 0.45)
    grade3_soft_tissue_factor: tuple[float, float] = (1.5, 2.5)
    degenerative_per_decade: float = 0.5
    rib_fracture_probability: float = 0.06
    injection_site_probability: float = 0.2
    urine_contamination_probability: float = 0.06


@dataclass
class SimulatorConfig:
    """Everything that defines one simulated site; one study additionally needs only its seed."""

    site: str = "centre_a"
    description: str = "Large training centre, mixed diphosphonates, standard LEHR dual-head camera."
    matrix: tuple[int, int] = DEFAULT_MATRIX
    pixel_spacing_mm: float = DEFAULT_PIXEL_SPACING_MM
    counts_per_view: tuple[float, float] = (0.8e6, 2.5e6)
    tracer_weights: dict[str, float] = field(default_factory=lambda: {"MDP": 0.5, "HDP": 0.25, "DPD": 0.25})
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    patients: PatientMixConfig = field(default_factory=PatientMixConfig)
    biodistribution: BiodistributionConfig = field(default_factory=BiodistributionConfig)
    disease: DiseaseConfig = field(default_factory=DiseaseConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse impossible settings with a message that names the field."""
        # the site names study files and ids; "<site>-s<seed>-" marks another seed's ids
        named = re.fullmatch(r"[A-Za-z0-9_.]+(-[A-Za-z0-9_.]+)*", self.site)
        if not named or re.search(r"-s\d+$", self.site):
            raise ConfigError(
                f"site must be letters, digits, '_', '.' and inner '-' and not end in -s<digits> (the ids "
                f"of another seed), got {self.site!r}"
            )
        try:
            rows, cols = (int(v) for v in self.matrix)
        except (TypeError, ValueError):
            raise ConfigError(f"matrix must be [rows, columns], got {self.matrix!r}") from None
        if rows < 16 or cols < 4:
            raise ConfigError(f"matrix must be at least 16x4 pixels, got {rows}x{cols}")
        _positive(self.pixel_spacing_mm, "pixel_spacing_mm")
        if _range(self.counts_per_view, "counts_per_view")[0] <= 0:
            raise ConfigError(f"counts_per_view must be positive, got {self.counts_per_view}")
        _weights(self.tracer_weights, "tracer_weights", TRACERS)
        s = self.scanner
        for name in ("fwhm_at_collimator_mm", "gap_mm", "scatter_fwhm_mm"):
            _positive(getattr(s, name), f"scanner.{name}")
        for name in ("fwhm_per_mm", "attenuation_per_mm", "background_counts_per_pixel"):
            _non_negative(getattr(s, name), f"scanner.{name}")
        _fraction(s.scatter_fraction, "scanner.scatter_fraction")
        p = self.patients
        for name in ("female_fraction", "young_fraction", "breast_fraction", "partial_scan_fraction"):
            _fraction(getattr(p, name), f"patients.{name}")
        _weights(dict(enumerate(p.arm_position_weights)), "patients.arm_position_weights", range(3))
        b = self.biodistribution
        for name in ("bone_fraction", "soft_tissue_fraction", "kidney_fraction", "bladder_fraction"):
            lo, hi = _range(getattr(b, name), f"biodistribution.{name}")
            if lo < 0 or hi > 1:
                raise ConfigError(f"biodistribution.{name} must lie in [0, 1], got {getattr(b, name)}")
        for name in ("tracer_soft_tissue", "tracer_bone"):
            _covers_tracers(getattr(b, name), f"biodistribution.{name}")
        d = self.disease
        for name in (
            "metastasis_prevalence",
            "amyloidosis_prevalence",
            "widespread_fraction",
            "superscan_fraction",
            "cold_lesion_fraction",
            "rib_fracture_probability",
            "injection_site_probability",
            "urine_contamination_probability",
        ):
            _fraction(getattr(d, name), f"disease.{name}")
        if d.metastasis_prevalence + d.amyloidosis_prevalence > 1:
            raise ConfigError(
                "disease.metastasis_prevalence + disease.amyloidosis_prevalence must be <= 1, got "
                f"{d.metastasis_prevalence} + {d.amyloidosis_prevalence}"
            )
        if len(d.grade_weights) != 3:
            raise ConfigError(f"disease.grade_weights needs 3 weights (grades 1-3), got {d.grade_weights}")
        _weights(dict(enumerate(d.grade_weights)), "disease.grade_weights", range(3))
        _weights(d.primary_weights, "disease.primary_weights", None)
        _weights(d.region_weights, "disease.region_weights", REGIONS)
        for primary, factors in d.primary_region_factors.items():
            unknown = sorted(set(factors) - set(REGIONS))
            if unknown:
                raise ConfigError(
                    f"disease.primary_region_factors.{primary}: unknown regions {unknown}; "
                    f"valid: {', '.join(REGIONS)}"
                )
        _covers_tracers(d.tracer_cardiac, "disease.tracer_cardiac")
        for name in (
            "widespread_count",
            "superscan_bone_factor",
            "superscan_lesion_contrast",
            "lesion_contrast",
            "cold_contrast",
            "lesion_diameter_mm",
            "grade3_bone_factor",
            "grade3_soft_tissue_factor",
        ):
            _range(getattr(d, name), f"disease.{name}")
        if d.lesion_contrast[0] < 1 or d.cold_contrast[1] > 1:
            raise ConfigError(
                "disease.lesion_contrast must be >= 1 (hot) and disease.cold_contrast <= 1 (cold)"
            )
        if d.lesion_count_mean < 1:
            raise ConfigError(f"disease.lesion_count_mean must be >= 1, got {d.lesion_count_mean}")
        if len(d.cardiac_to_bone) != 3 or min(d.cardiac_to_bone) < 0:
            raise ConfigError(f"disease.cardiac_to_bone needs 3 non-negative values, got {d.cardiac_to_bone}")


REGIONS: tuple[str, ...] = (
    "spine",
    "ribs",
    "pelvis",
    "sacrum",
    "femur",
    "skull",
    "humerus",
    "sternum",
    "scapula",
    "clavicle",
)
"""Skeletal regions that metastasis site distributions are given over."""


def _positive(value: Any, name: str) -> None:
    if not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")


def _non_negative(value: Any, name: str) -> None:
    if not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{name} must be a non-negative number, got {value!r}")


def _fraction(value: Any, name: str) -> None:
    if not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")


def _range(value: Any, name: str) -> tuple[float, float]:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a [low, high] pair of numbers, got {value!r}") from None
    if low > high or low < 0:
        raise ConfigError(f"{name} must satisfy 0 <= low <= high, got {value!r}")
    return low, high


def _weights(weights: Any, name: str, valid: Any) -> None:
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(f"{name} must be a non-empty mapping of weights, got {weights!r}")
    if valid is not None:
        unknown = sorted(str(k) for k in set(weights) - set(valid))
        if unknown:
            raise ConfigError(f"{name}: unknown keys {unknown}; valid: {', '.join(str(v) for v in valid)}")
    values = list(weights.values())
    if any(not isinstance(w, int | float) or w < 0 for w in values) or sum(values) <= 0:
        raise ConfigError(f"{name} must hold non-negative numbers with a positive sum, got {dict(weights)}")


def _covers_tracers(table: Any, name: str) -> None:
    if not isinstance(table, Mapping) or set(table) != set(TRACERS):
        raise ConfigError(f"{name} must give a value for each tracer {', '.join(TRACERS)}, got {table!r}")
    for tracer, value in table.items():
        _non_negative(value, f"{name}.{tracer}")


def site_names() -> list[str]:
    """Names of the shipped site presets."""
    return builtin_names(CONFIG_GROUP)


def load_site(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> SimulatorConfig:
    """Load a site preset by name (``centre_a``) or YAML path, then apply dotted ``overrides``.

    The file and the overrides are merged key by key over the defaults, so an override such as
    ``disease.tracer_cardiac.MDP=0.5`` changes one entry of a table and keeps the others.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        if str(name_or_path) not in site_names():
            raise ConfigError(f"unknown site {str(name_or_path)!r}; valid sites: {', '.join(site_names())}")
        path = builtin_config(CONFIG_GROUP, str(name_or_path))
    if not path.is_file():
        raise ConfigError(f"site file {path} does not exist; valid preset names: {', '.join(site_names())}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    merged = _merge(to_dict(SimulatorConfig()), data)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = merged
        for depth, parent in enumerate(parents):
            child = node.get(parent) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                where = ".".join(parents[: depth + 1])
                raise ConfigError(f"override {key!r}: {where!r} is not a section of the site config")
            node = child
        if leaf not in node and not _is_table(parents):
            raise ConfigError(
                f"override {key!r}: unknown key {leaf!r}; valid keys: {', '.join(sorted(node))}"
            )
        node[leaf] = (
            _merge(node[leaf], value) if isinstance(node.get(leaf), dict) and leaf not in TABLES else value
        )
    try:
        config = from_dict(SimulatorConfig, merged, where=str(path))
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from error
    config.matrix = (int(config.matrix[0]), int(config.matrix[1]))
    return config


TABLES: tuple[str, ...] = ("tracer_weights", "primary_weights", "region_weights", "primary_region_factors")
"""Mapping fields whose keys are data (new entries allowed), not config field names."""


def _is_table(parents: list[str]) -> bool:
    return any(p in TABLES for p in parents)


def _merge(base: Any, update: Any) -> Any:
    """``update`` merged key by key over ``base``: sections recurse, tables and values replace."""
    if not isinstance(base, dict) or not isinstance(update, dict):
        return update
    merged = dict(base)
    for key, value in update.items():
        merged[key] = value if key in TABLES or key not in base else _merge(base[key], value)
    return merged
