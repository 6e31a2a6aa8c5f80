"""The bone-scan simulator: count statistics, lesion contrast, Perugini grades, presets, CLI, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from synthscan.cli import main
from synthscan.config import ConfigError, to_dict
from synthscan.dataset import Dataset, DatasetError, read_study_file
from synthscan.labels import AMYLOIDOSIS_GRADES, LABELS, TRACERS
from synthscan.simulator import SimulatorConfig, load_site, simulate_dataset, simulate_study, site_names

TINY = {"matrix": [256, 64], "pixel_spacing_mm": 9.6}
SMALL = {"matrix": [512, 128], "pixel_spacing_mm": 4.8}
NO_MIMICS = {
    "disease.degenerative_per_decade": 0.0,
    "disease.rib_fracture_probability": 0.0,
    "disease.injection_site_probability": 0.0,
    "disease.urine_contamination_probability": 0.0,
}
REQUIRED_SITES = ("centre_a", "centre_b", "external_1", "external_2", "external_3", "external_4")
EXTERNAL_SITES = REQUIRED_SITES[2:]


def tiny(site: str = "centre_a", **overrides) -> SimulatorConfig:
    return load_site(site, {**TINY, **overrides})


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_total_counts_per_view_lie_in_the_configured_range():
    config = tiny(counts_per_view=[400_000, 600_000])
    for seed in range(6):
        study = simulate_study(config, seed)
        totals = study.counts.reshape(2, -1).sum(axis=1)
        assert study.counts.shape == (2, 256, 64)
        assert study.counts.dtype in (np.uint16, np.uint32)
        assert study.meta["counts_per_view"] == [int(t) for t in totals]
        assert np.all(totals >= 400_000 * 0.99) and np.all(totals <= 600_000 * 1.01), totals


def test_counts_are_poisson_around_the_expectation():
    """Variance equals the mean: standardised residuals have unit variance wherever counts are high enough."""
    study = simulate_study(load_site("centre_a", {**SMALL, "counts_per_view": [2e6, 2e6]}), 3)
    expected, counts = study.expected.astype(np.float64), study.counts.astype(np.float64)
    region = expected > 20
    assert region.sum() > 500
    residual = (counts[region] - expected[region]) / np.sqrt(expected[region])
    assert abs(residual.mean()) < 0.05
    assert 0.93 < residual.var() < 1.07
    level = np.median(expected[expected > 1])  # a typical body pixel
    uniform = np.abs(expected - level) < 0.02 * level  # pixels sharing (nearly) one expectation
    assert uniform.sum() > 300
    assert counts[uniform].var() == pytest.approx(counts[uniform].mean(), rel=0.15)


def test_noise_off_gives_the_rounded_expectation():
    study = simulate_study(tiny(), 4, noise=False)
    assert np.array_equal(study.counts, np.rint(study.expected).astype(study.counts.dtype))
    assert study.expected.dtype == np.float32 and study.expected.min() >= 0


def test_posterior_is_stored_as_seen_from_behind():
    """The heart (patient's left) lies on the viewer's right in the anterior view, left in the posterior."""
    config = tiny(
        **SMALL, **{"disease.amyloidosis_prevalence": 1.0, "disease.metastasis_prevalence": 0.0}, **NO_MIMICS
    )
    config.disease.grade_weights = (0.0, 0.0, 1.0)
    config.tracer_weights = {"DPD": 1.0}
    study = simulate_study(config, 2, noise=False)
    row, col = (round(v) for v in study.meta["organs_pixel_anterior"]["heart"])
    cols = study.expected.shape[2]
    assert col > cols // 2
    anterior, posterior = study.expected[0, row], study.expected[1, row]
    assert anterior[col] > anterior[cols - 1 - col]
    assert posterior[cols - 1 - col] > posterior[col]


def _contrast_configs(contrast: float) -> tuple[SimulatorConfig, SimulatorConfig]:
    """One large lesion per study, seen by an ideal camera (no blur, attenuation, scatter or soft tissue)."""
    ideal = {
        **SMALL,
        **NO_MIMICS,
        "disease.amyloidosis_prevalence": 0.0,
        "disease.lesion_count_mean": 1.0,
        "disease.widespread_fraction": 0.0,
        "disease.superscan_fraction": 0.0,
        "disease.cold_lesion_fraction": 0.0,
        "disease.lesion_diameter_mm": [40, 40],
        "disease.lesion_contrast": [contrast, contrast],
        "disease.region_weights": {"femur": 1, "humerus": 1},  # AP thinner than the lesion
        "scanner.fwhm_at_collimator_mm": 0.5,
        "scanner.fwhm_per_mm": 0.0,
        "scanner.attenuation_per_mm": 0.0,
        "scanner.scatter_fraction": 0.0,
        "scanner.background_counts_per_pixel": 0.0,
        "biodistribution.soft_tissue_fraction": [0.0, 0.0],
    }
    with_lesion = load_site("centre_a", {**ideal, "disease.metastasis_prevalence": 1.0})
    without = load_site("centre_a", {**ideal, "disease.metastasis_prevalence": 0.0})
    return with_lesion, without


@pytest.mark.parametrize("contrast", [3.0, 6.0])
def test_lesion_contrast_is_as_sampled(contrast):
    """Same patient with and without its lesion: the ratio at the lesion centre is the sampled contrast."""
    with_lesion, without = _contrast_configs(contrast)
    ratios = []
    for seed in range(6):
        sick = simulate_study(with_lesion, seed, noise=False)
        healthy = simulate_study(without, seed, noise=False)
        assert sick.meta["patient"] == healthy.meta["patient"]
        (lesion,) = sick.meta["lesions"]
        assert lesion["contrast"] == pytest.approx(contrast) and lesion["kind"] == "hot"
        row, col = (round(v) for v in lesion["pixel_anterior"])
        ratios.append(sick.expected[0, row, col] / healthy.expected[0, row, col])
    assert np.median(ratios) == pytest.approx(contrast, rel=0.1), ratios
    assert min(ratios) > 0.6 * contrast and max(ratios) < 1.15 * contrast, ratios


def _heart_to_bone(study) -> float:
    """Mean counts in the heart region over the mean of the lumbar spine (posterior) on the anterior view."""
    row, col = (round(v) for v in study.meta["organs_pixel_anterior"]["heart"])
    heart = study.expected[0, row - 3 : row + 4, col - 3 : col + 4].mean()
    spine_row = round(row + 0.2 * study.meta["patient"]["height_mm"] / study.meta["pixel_spacing_mm"])
    centre = study.expected.shape[2] // 2
    spine = study.expected[1, spine_row - 3 : spine_row + 4, centre - 2 : centre + 3].mean()
    return float(heart / spine)


@pytest.mark.parametrize("tracer", ["DPD", "MDP"])
def test_cardiac_uptake_increases_with_perugini_grade(tracer):
    ratios = {}
    for grade in (0, *AMYLOIDOSIS_GRADES):
        config = load_site(
            "centre_a",
            {
                **SMALL,
                **NO_MIMICS,
                "disease.metastasis_prevalence": 0.0,
                "disease.amyloidosis_prevalence": 1.0 if grade else 0.0,
                "disease.grade_weights": [float(grade == g) for g in AMYLOIDOSIS_GRADES]
                if grade
                else [1, 1, 1],
                "disease.cardiac_spread": 0.0,
                "tracer_weights": {tracer: 1.0},
            },
        )
        study = simulate_study(config, 11, noise=False)
        assert study.perugini_grade == grade and study.tracer == tracer
        ratios[grade] = _heart_to_bone(study)
    assert ratios[0] < ratios[1] < ratios[2] < ratios[3], ratios
    if tracer == "DPD":
        assert ratios[3] > 1.5 * ratios[2]  # grade 3: strong heart over faint bone


def test_mdp_shows_amyloid_hearts_more_weakly_than_dpd():
    def ratio(tracer: str) -> float:
        config = load_site(
            "centre_a",
            {
                **SMALL,
                **NO_MIMICS,
                "disease.metastasis_prevalence": 0.0,
                "disease.amyloidosis_prevalence": 1.0,
                "disease.grade_weights": [0, 1, 0],
                "tracer_weights": {tracer: 1.0},
            },
        )
        return _heart_to_bone(simulate_study(config, 5, noise=False))

    assert ratio("MDP") < 0.7 * ratio("DPD")


def test_ground_truth_is_complete_and_consistent():
    config = tiny(**{"disease.metastasis_prevalence": 0.6, "disease.amyloidosis_prevalence": 0.3})
    labels = set()
    for seed in range(12):
        study = simulate_study(config, seed)
        meta = json.loads(json.dumps(study.meta))  # JSON-able as stored
        labels.add(study.label)
        assert meta["label"] == study.label and meta["perugini_grade"] == study.perugini_grade
        assert (study.label == "amyloidosis") == (study.perugini_grade in AMYLOIDOSIS_GRADES)
        assert study.tracer in TRACERS and meta["site"] == "centre_a" and meta["seed"] == seed
        assert {"sex", "age", "height_mm", "bmi", "arm_position"} <= set(meta["patient"])
        assert (study.label == "metastasis") == bool(meta["lesions"])
        for finding in meta["lesions"] + meta["mimics"]:
            assert {"kind", "bone", "position_mm", "diameter_mm", "contrast", "pixel_anterior"} <= set(
                finding
            )
            row, col = finding["pixel_anterior"]
            assert -1 <= row <= 256 and -1 <= col <= 64
            assert finding["pixel_posterior"] == [row, round(63 - col, 1)]
        for lesion in meta["lesions"]:
            assert lesion["kind"] in ("hot", "cold")
            assert (lesion["contrast"] > 1) == (lesion["kind"] == "hot")
    assert labels == set(LABELS)


def test_same_seed_gives_identical_studies_and_other_seeds_differ():
    config = tiny()
    first, again, other = simulate_study(config, 7), simulate_study(config, 7), simulate_study(config, 8)
    assert np.array_equal(first.counts, again.counts) and first.meta == again.meta
    assert not np.array_equal(first.counts, other.counts)


def test_presets_exist_and_differ_as_configured():
    assert set(REQUIRED_SITES) <= set(site_names())
    sites = {name: load_site(name) for name in REQUIRED_SITES}
    for name, config in sites.items():
        assert config.site == name
        assert config.matrix == (1024, 256)
        assert 2.2 <= config.pixel_spacing_mm <= 3.0
        assert 0.35e6 <= config.counts_per_view[0] <= config.counts_per_view[1] <= 3e6
        assert config.disease.metastasis_prevalence >= 0.1 and config.disease.amyloidosis_prevalence >= 0.05
    a = sites["centre_a"]
    assert a.disease.metastasis_prevalence >= 0.2 and a.disease.amyloidosis_prevalence >= 0.1
    assert set(sites["centre_b"].tracer_weights) == {"MDP"}
    b = sites["centre_b"]
    scanner_b = (
        b.pixel_spacing_mm,
        b.scanner.fwhm_at_collimator_mm,
        b.scanner.fwhm_per_mm,
        b.counts_per_view,
    )
    tracers_seen = set()
    for name in EXTERNAL_SITES:
        ext = sites[name]
        assert (
            ext.pixel_spacing_mm,
            ext.scanner.fwhm_at_collimator_mm,
            ext.scanner.fwhm_per_mm,
            ext.counts_per_view,
        ) != scanner_b
        tracers_seen |= set(ext.tracer_weights)
    assert tracers_seen == set(TRACERS)  # cross-tracer: every diphosphonate appears at some external site


def test_site_differences_reach_the_studies():
    low = simulate_study(tiny("external_2"), 1)
    high = simulate_study(tiny("external_1"), 1)
    assert low.tracer == "HDP" and high.tracer == "DPD"
    assert (
        max(low.meta["counts_per_view"]) <= 0.8e6 * 1.01 < 1.5e6 * 0.99 <= min(high.meta["counts_per_view"])
    )
    assert low.meta["scanner"]["fwhm_per_mm"] == load_site("external_2").scanner.fwhm_per_mm


def test_centre_a_file_equals_the_config_defaults():
    """Other presets list only what differs from centre_a, so the dataclass defaults must equal it."""
    assert to_dict(load_site("centre_a")) == to_dict(SimulatorConfig())


def test_every_preset_number_is_commented():
    """A line that sets a number carries a comment, or its parent key does (table entries)."""
    root = Path(__file__).resolve().parents[1] / "configs" / "simulator"
    for path in sorted(root.glob("*.yaml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        yaml.safe_load("\n".join(lines))
        for number, line in enumerate(lines):
            value = yaml.safe_load(line.split("#")[0].partition(":")[2] or "null")
            if _holds_number(value) and "#" not in line:
                assert "#" in _parent(lines, number), f"{path.name}:{number + 1}: number without a comment"


def _holds_number(value) -> bool:
    if isinstance(value, dict):
        return any(_holds_number(v) for v in value.values())
    if isinstance(value, list):
        return any(_holds_number(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parent(lines: list[str], number: int) -> str:
    indent = len(lines[number]) - len(lines[number].lstrip())
    for line in reversed(lines[:number]):
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            return line
    return ""


def test_bad_overrides_are_refused_with_the_valid_keys():
    with pytest.raises(ConfigError, match="valid keys"):
        load_site("centre_a", {"not_a_field": 1})
    with pytest.raises(ConfigError, match="matrix"):
        load_site("centre_a", {"matrix": "abc"})
    with pytest.raises(ConfigError, match="tracer_weights"):
        load_site("centre_a", {"tracer_weights": {"FDG": 1.0}})
    with pytest.raises(ConfigError, match="valid sites"):
        load_site("centre_z")
    for site in ("centre_a-s7", "../elsewhere", ""):  # another seed's ids; a path; nothing
        with pytest.raises(ConfigError, match="site must be"):
            load_site("centre_a", {"site": site})
    merged = load_site("centre_a", {"disease.tracer_cardiac.MDP": 0.5})
    assert merged.disease.tracer_cardiac == {"MDP": 0.5, "HDP": 0.85, "DPD": 1.0}


def _simulate_cli(*args: str):
    return CliRunner().invoke(main, ["simulate", "--no-progress", *args], catch_exceptions=False)


TINY_FLAGS = ("--set", "matrix=[256,64]", "--set", "pixel_spacing_mm=9.6")


def test_cli_simulates_a_dataset_with_ground_truth(tmp_path):
    out = tmp_path / "sim"
    result = _simulate_cli("-n", "4", "--out", str(out), "--site", "centre_b", "--seed", "3", *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    dataset = Dataset.open(out)
    assert len(dataset) == 4 and dataset.info.matrix == (256, 64)
    assert dataset.info.pixel_spacing_mm == 9.6
    provenance = dataset.info.provenance["simulator"]
    assert provenance["seed"] == 3 and provenance["site_config"]["site"] == "centre_b"
    assert provenance["site_config"]["matrix"] == [256, 64] and "synthscan_version" in provenance
    for record in dataset:
        assert record.source == "simulated" and record.site == "centre_b" and record.tracer == "MDP"
        assert record.patient_id.startswith("centre_b-") and record.study_id.startswith("centre_b-")
        assert {"sex", "age", "lesion_count", "scanner"} <= set(record.extra)
        study = dataset.read(record)
        rebuilt = simulate_study(load_site("centre_b", TINY), record.seed)
        assert np.array_equal(study.counts, rebuilt.counts)  # the manifest seed reproduces the study
        assert study.meta["lesions"] == rebuilt.meta["lesions"]
    assert len({r.patient_id for r in dataset}) == 4


def test_cli_site_can_be_a_yaml_file(tmp_path):
    path = tmp_path / "my_site.yaml"
    path.write_text("site: my_site\ntracer_weights: {DPD: 1.0}  # test\n", encoding="utf-8")
    result = _simulate_cli("-n", "2", "--out", str(tmp_path / "sim"), "--site", str(path), *TINY_FLAGS)
    assert result.exit_code == 0, result.output
    assert {r.tracer for r in Dataset.open(tmp_path / "sim")} == {"DPD"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--site", "centre_z"), "valid: centre_a, centre_b"),
        (("--set", "nonsense=1"), "unknown key 'nonsense'"),
        (("--set", "disease.metastasis_prevalence=2"), "metastasis_prevalence"),
        (("--set", "matrix"), "KEY=VALUE"),
    ],
)
def test_cli_bad_input_fails_clearly_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "sim"
    result = CliRunner().invoke(main, ["simulate", "-n", "2", "--out", str(out), *TINY_FLAGS, *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not out.exists()


def test_cli_refuses_a_non_empty_folder_and_leaves_it_alone(tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine", encoding="utf-8")
    result = CliRunner().invoke(main, ["simulate", "-n", "2", "--out", str(out), *TINY_FLAGS])
    assert result.exit_code != 0 and "not an empty folder" in result.output
    assert _files(out) == {"notes.txt"}


def test_cli_refuses_to_resume_with_other_settings(tmp_path):
    out = tmp_path / "sim"
    assert _simulate_cli("-n", "2", "--out", str(out), *TINY_FLAGS).exit_code == 0
    result = CliRunner().invoke(main, ["simulate", "-n", "3", "--out", str(out), "--seed", "9", *TINY_FLAGS])
    assert result.exit_code != 0 and "other settings" in result.output
    assert len(Dataset.open(out)) == 2


def _manifest_rows(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_interrupted_run_resumes_without_duplicates(tmp_path):
    config = tiny()
    whole = simulate_dataset(config, 6, tmp_path / "whole", seed=5, workers=1, progress=False)
    part = tmp_path / "part"
    simulate_dataset(config, 6, part, seed=5, workers=1, progress=False)
    rows = _manifest_rows(part)  # an interruption after the last files were written but not their rows
    with open(part / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows[:3])
    resumed = simulate_dataset(config, 6, part, seed=5, workers=2, progress=False)
    assert _manifest_rows(part) == _manifest_rows(whole.root)
    assert [r.study_id for r in resumed] == [r.study_id for r in whole]
    for record in whole:
        a, meta_a = read_study_file(whole.root / record.path)
        b, meta_b = read_study_file(part / record.path)
        assert np.array_equal(a, b) and meta_a == meta_b
    assert not [p for p in part.rglob("*") if p.name.endswith(".tmp")]


def test_dataset_grows_when_rerun_with_a_larger_n(tmp_path):
    config = tiny()
    simulate_dataset(config, 2, tmp_path / "sim", seed=1, workers=1, progress=False)
    grown = simulate_dataset(config, 4, tmp_path / "sim", seed=1, workers=1, progress=False)
    assert [r.study_id for r in grown] == [f"centre_a-s1-{i:06d}" for i in range(4)]
    assert len({r.seed for r in grown}) == 4


def test_datasets_of_one_site_with_other_seeds_share_no_study_or_patient(tmp_path):
    """A training set and a held-out set of one site (seeds 0 and 7) can be merged or audited together."""
    config = tiny()
    first = simulate_dataset(config, 2, tmp_path / "a", workers=1, progress=False)
    second = simulate_dataset(config, 2, tmp_path / "b", seed=7, workers=1, progress=False)
    assert [r.study_id for r in first] == ["centre_a-000000", "centre_a-000001"]  # seed 0 keeps its names
    assert [r.patient_id for r in second] == ["centre_a-s7-P000000", "centre_a-s7-P000001"]
    assert not {r.study_id for r in first} & {r.study_id for r in second}
    assert not {r.patient_id for r in first} & {r.patient_id for r in second}
    rows = _manifest_rows(tmp_path / "b")  # a seed-7 folder from before ids named the seed
    with open(tmp_path / "b" / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**row, "study_id": row["study_id"].replace("-s7-", "-")} for row in rows)
    info = (tmp_path / "b" / "dataset.json").read_text()
    with pytest.raises(DatasetError, match=r"centre_a-000000.*new folder"):
        simulate_dataset(config, 3, tmp_path / "b", seed=7, workers=1, progress=False)
    assert (tmp_path / "b" / "dataset.json").read_text() == info, "a refused run leaves the folder as it was"
    with Dataset.open(tmp_path / "a").writer() as writer:  # studies another command added
        counts = np.zeros((2, *config.matrix), dtype=np.int32)
        writer.add(counts, study_id="syn-normal-s1", patient_id="syn", label="normal", source="synthetic")
    grown = simulate_dataset(config, 3, tmp_path / "a", workers=1, progress=False)
    assert len(grown) == 4 and "centre_a-000002" in grown


def test_phantom_ships_every_bone_with_its_licence():
    """The anatomy is package data (small, licensed) with every named bone present."""
    from importlib import resources

    from synthscan.simulator.phantom import load_phantom

    data = resources.files("synthscan.simulator").joinpath("data")
    assert len(data.joinpath("phantom.npz").read_bytes()) < 8e6
    assert "MIT License" in data.joinpath("LICENSE").read_text()
    assert "Segars" in data.joinpath("README.md").read_text()
    phantom = load_phantom()
    counts = np.bincount(phantom.bone.kind, minlength=len(phantom.bones) + 1)[1:]
    missing = [b for b, n in zip(phantom.bones, counts, strict=True) if n == 0 and not b.startswith("rib_")]
    assert not missing, missing
    assert sum(n > 0 for b, n in zip(phantom.bones, counts, strict=True) if b.startswith("rib_")) >= 20


def test_lesions_sit_on_their_named_bone():
    from synthscan.simulator.phantom import load_phantom

    phantom = load_phantom()
    config = tiny(
        **{
            "disease.metastasis_prevalence": 1.0,
            "disease.amyloidosis_prevalence": 0.0,
            "disease.widespread_fraction": 0.0,
        }
    )
    for seed in range(4):
        for lesion in simulate_study(config, seed).meta["lesions"]:
            points = phantom.bone.xyz[phantom.bone.kind == phantom.bone_id(lesion["bone"])]
            gap = np.linalg.norm(points - np.asarray(lesion["position_mm"]), axis=1).min()
            assert gap < 3.0, lesion


def test_views_balance_as_on_clinical_scans():
    """Broad-beam attenuation: posterior and anterior totals nearly equal (real 0.92-1.0), the lumbar
    spine brighter from behind, the sternum brighter from the front."""
    config = load_site(
        "centre_a",
        {**SMALL, **NO_MIMICS, "disease.metastasis_prevalence": 0.0, "disease.amyloidosis_prevalence": 0.0},
    )
    for seed in range(3):
        study = simulate_study(config, seed, noise=False)
        ant, post = study.expected
        assert 0.85 < post.sum() / ant.sum() < 1.05
        row = round(
            study.meta["organs_pixel_anterior"]["bladder"][0]
            - 0.12 * study.meta["patient"]["height_mm"] / 4.8
        )
        band_a, band_p = ant[row - 4 : row + 4], post[row - 4 : row + 4, ::-1]
        assert 1.1 < band_p.max() / band_a.max() < 3.0


def test_arm_positions_move_the_forearms():
    """Hands by the thighs stay lateral to the trunk; forearms on the abdomen cross it."""
    from synthscan.simulator.anatomy import Pose, sample_patient
    from synthscan.simulator.phantom import load_phantom

    phantom = load_phantom()
    forearm = np.isin(phantom.bone.segment, [phantom.segment_id("forearm_R"), phantom.segment_id("hand_R")])
    spread = {}
    for position in ("sides", "on_abdomen"):
        config = load_site(
            "centre_a",
            {
                "patients.arm_position_weights": [
                    1.0 if p == position else 0.0 for p in ("sides", "abducted", "on_abdomen")
                ]
            },
        )
        patient = sample_patient(config.patients, np.random.default_rng(0))
        pose = Pose(patient, phantom, 614.4)
        _, col = pose.field(pose.limbs(phantom.bone.xyz[forearm], phantom.bone.segment[forearm]))
        spread[position] = abs(np.median(col) - 307.2 - patient.lateral_offset_mm)
    assert spread["sides"] > 200 and spread["on_abdomen"] < 150, spread


def test_limb_soft_tissue_moves_with_its_limb():
    """Every limb segment's soft tissue is in points of that segment: none is left behind, unposed,
    as a ghost outline of the phantom's own limbs (blocks on a limb's surface used to take the
    segment of their first voxel, often outside the body and so static)."""
    from importlib import resources

    from synthscan.simulator.phantom import load_phantom

    phantom = load_phantom()
    with resources.files("synthscan.simulator").joinpath("data/phantom.npz").open("rb") as fh:
        data = np.load(fh)
        soft = (data["tissue"] > 0) & (data["bone"] == 0)
        voxels = np.bincount(data["segment"][soft], minlength=len(phantom.segments))
        voxel_volume = float(data["pitch_mm"]) ** 3
    points = np.bincount(phantom.soft.segment, phantom.soft.volume, minlength=len(phantom.segments))
    np.testing.assert_allclose(points / voxel_volume, voxels, rtol=1e-3)


def test_soft_tissue_texture_is_local():
    """Neighbouring soft tissue shares its texture, tissue 20 cm away does not: whole-body plane waves
    drew the same horizontal stripes from chest to feet (|r| about 0.1 at 20 cm)."""
    from scipy.spatial import cKDTree

    from synthscan.simulator.phantom import load_phantom
    from synthscan.simulator.uptake import heterogeneity

    xyz = load_phantom().soft.xyz
    tree = cKDTree(xyz)

    def pairs(shift: list[float]) -> tuple[np.ndarray, np.ndarray]:
        distance, partner = tree.query(xyz + np.float32(shift), distance_upper_bound=4.0)
        found = np.isfinite(distance)
        return np.flatnonzero(found), partner[found]

    near, far_z, far_x = pairs([0.0, 0.0, 7.2]), pairs([0.0, 0.0, 200.0]), pairs([200.0, 0.0, 0.0])
    far = []
    for seed in range(4):
        field = heterogeneity(xyz, np.random.default_rng(seed), 0.2)
        assert np.corrcoef(field[near[0]], field[near[1]])[0, 1] > 0.6
        far += [abs(np.corrcoef(field[a], field[b])[0, 1]) for a, b in (far_z, far_x)]
    assert np.mean(far) < 0.05, far
