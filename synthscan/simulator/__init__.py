"""Physics-based simulator of 99mTc whole-body bone scans: anatomy, disease, projection, noise."""

from synthscan.simulator.sites import SimulatorConfig, load_site, site_names
from synthscan.simulator.study import SimulatedStudy, simulate_dataset, simulate_study, study_seed

__all__ = [
    "SimulatedStudy",
    "SimulatorConfig",
    "load_site",
    "simulate_dataset",
    "simulate_study",
    "site_names",
    "study_seed",
]
