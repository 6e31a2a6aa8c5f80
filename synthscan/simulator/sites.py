"""Site presets: the dataclass config of one simulated imaging centre.

A site fixes the scanner (collimator resolution, scatter), the count level, the matrix, the tracer
mix, the patient mix and the disease prevalence. Presets live in ``configs/simulator/<name>.yaml``
and every number there carries its source (``DOMAIN.md``) or ``# assumption``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthscan.config import ConfigError, builtin_config, builtin_names, load_config
from synthscan.labels import DEFAULT_MATRIX, DEFAULT_PIXEL_SPACING_MM, TRACERS

CONFIG_GROUP = "simulator"


@dataclass
class ScannerConfig:
    """Dual-head gamma camera with a LEHR parallel-hole collimator."""

    name: str = "generic LEHR dual-head"
    fwhm_at_collimator_mm: float = 7.0
    fwhm_per_mm: float = 0.045
    gap_mm: float = 25.0
    attenuation_per_mm: float = 0.015
    scatter_fraction: float = 0.12
    scatter_fwhm_mm: float = 70.0
    background_counts_per_pixel: float = 0.01


@dataclass
class PatientMixConfig:
    """Who is referred for a bone scan at this site."""

    female_fraction: float = 0.45
    age_mean: float = 67.0
    age_sd: float = 12.0
    young_fraction: float = 0.04
    height_mean_mm: tuple[float, float] = (1640.0, 1760.0)
    height_sd_mm: float = 70.0
    bmi_mean: float = 26.5
    bmi_sd: float = 4.5
    arm_position_weights: tuple[float, float, float] = (0.7, 0.1, 0.2)
    breast_fraction: float = 0.9
    max_axial_rotation_deg: float = 6.0
    max_tilt_deg: float = 2.5
    partial_scan_fraction: float = 0.05


@dataclass
class DiseaseConfig:
    """Prevalence and appearance of the conditions and their benign mimics."""

    metastasis_prevalence: float = 0.25
    amyloidosis_prevalence: float = 0.1
    grade_weights: tuple[float, float, float] = (0.3, 0.4, 0.3)
    superscan_fraction: float = 0.03
    cold_lesion_fraction: float = 0.06
    lesion_count_mean: float = 5.0
    widespread_fraction: float = 0.15
    lesion_contrast: tuple[float, float] = (2.0, 8.0)
    lesion_diameter_mm: tuple[float, float] = (10.0, 40.0)
    degenerative_per_decade: float = 0.12
    rib_fracture_probability: float = 0.06
    injection_site_probability: float = 0.15
    urine_contamination_probability: float = 0.05


@dataclass
class SimulatorConfig:
    """Everything that defines one simulated site; one study additionally needs only its seed."""

    site: str = "custom"
    description: str = ""
    matrix: tuple[int, int] = DEFAULT_MATRIX
    pixel_spacing_mm: float = DEFAULT_PIXEL_SPACING_MM
    counts_per_view: tuple[float, float] = (0.8e6, 2.0e6)
    tracer_weights: dict[str, float] = field(default_factory=lambda: {"MDP": 1.0})
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    patients: PatientMixConfig = field(default_factory=PatientMixConfig)
    disease: DiseaseConfig = field(default_factory=DiseaseConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Refuse impossible settings with a message that names the field."""
        rows, cols = (int(v) for v in self.matrix)
        if rows < 16 or cols < 4:
            raise ConfigError(f"matrix must be at least 16x4 pixels, got {rows}x{cols}")
        if self.pixel_spacing_mm <= 0:
            raise ConfigError(f"pixel_spacing_mm must be positive, got {self.pixel_spacing_mm}")
        low, high = self.counts_per_view
        if not 0 < low <= high:
            raise ConfigError(f"counts_per_view must be (low, high) with 0 < low <= high, got {low}, {high}")
        unknown = sorted(set(self.tracer_weights) - set(TRACERS))
        if unknown or not self.tracer_weights:
            raise ConfigError(
                f"tracer_weights must name tracers from {', '.join(TRACERS)}, got {dict(self.tracer_weights)}"
            )
        if any(w < 0 for w in self.tracer_weights.values()) or sum(self.tracer_weights.values()) <= 0:
            raise ConfigError(
                f"tracer_weights must be non-negative with a positive sum: {self.tracer_weights}"
            )
        d = self.disease
        for name in ("metastasis_prevalence", "amyloidosis_prevalence"):
            if not 0 <= getattr(d, name) <= 1:
                raise ConfigError(f"disease.{name} must lie in [0, 1], got {getattr(d, name)}")
        if d.metastasis_prevalence + d.amyloidosis_prevalence > 1:
            raise ConfigError(
                "disease.metastasis_prevalence + disease.amyloidosis_prevalence must be <= 1, got "
                f"{d.metastasis_prevalence} + {d.amyloidosis_prevalence}"
            )
        if len(d.grade_weights) != 3 or min(d.grade_weights) < 0 or sum(d.grade_weights) <= 0:
            raise ConfigError(f"disease.grade_weights needs 3 non-negative weights, got {d.grade_weights}")

    @property
    def field_of_view_mm(self) -> tuple[float, float]:
        return (self.matrix[0] * self.pixel_spacing_mm, self.matrix[1] * self.pixel_spacing_mm)


def site_names() -> list[str]:
    """Names of the shipped site presets."""
    return builtin_names(CONFIG_GROUP)


def load_site(name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> SimulatorConfig:
    """Load a site preset by name (``centre_a``) or YAML path, then apply dotted ``overrides``."""
    path = Path(name_or_path)
    if path.suffix != ".yaml":
        if str(name_or_path) not in site_names():
            raise ConfigError(f"unknown site {str(name_or_path)!r}; valid sites: {', '.join(site_names())}")
        path = builtin_config(CONFIG_GROUP, str(name_or_path))
    try:
        config = load_config(SimulatorConfig, path, overrides)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path}: {error}") from error
    config.matrix = (int(config.matrix[0]), int(config.matrix[1]))
    return config
