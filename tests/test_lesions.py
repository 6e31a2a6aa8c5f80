"""The lesion detector: trained on lesion ground truth, it must find lesions, count them and leave anatomy."""

import dataclasses
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from scipy import ndimage
from scipy.ndimage import gaussian_filter

from synthscan.cli import main
from synthscan.config import builtin_config, builtin_names, load_config
from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import (
    LesionDetector,
    LesionDetectorConfig,
    conspicuity,
    count_lesions,
    lesion_contrast,
    lesion_fidelity,
    lesion_markdown,
    lesion_targets,
    train_lesion_detector,
    visible_hot_lesions,
)
from synthscan.generator.conditions import burden_class

MATRIX = (64, 32)
CONFIG = load_config(LesionDetectorConfig, builtin_config("lesion_detector", "tiny"))


def write_studies(
    root, n: int, seed: int, *, lesions: bool = True, source: str = "simulated", hot: float = 5.0
) -> Dataset:
    """Poisson bodies with a bright band in every study (anatomy); metastasis studies get 1-5 recorded
    disks ``hot`` times their surroundings, or none with ``lesions=False`` (a generator that ignores the
    condition). Synthetic studies record the burden they stand for."""
    dataset = Dataset.create(root, matrix=MATRIX)
    rng = np.random.default_rng(seed)
    r, c = np.ogrid[: MATRIX[0], : MATRIX[1]]
    with dataset.writer() as writer:
        for i in range(n):
            label = "metastasis" if i % 2 else "normal"
            rate = np.zeros(MATRIX)
            rate[2:-2, 4:-4] = 20.0
            rate[40:44, 4:-4] *= 2.5  # the same bright band in every study: anatomy, not a lesion
            truth, asked = [], int(rng.integers(1, 6)) if label == "metastasis" else 0
            if lesions:
                for _ in range(asked):
                    row, col = float(rng.uniform(6, 36)), float(rng.uniform(8, 24))
                    rate[np.hypot(r - row, c - col) <= 1.5] *= hot
                    truth.append(
                        {
                            "kind": "hot",
                            "diameter_mm": 7.2,
                            "pixel_anterior": [row, col],
                            "pixel_posterior": [],
                        }
                    )
            rate = gaussian_filter(rate, 0.7)
            views = np.stack([rate, rate[:, ::-1]])
            writer.add(
                rng.poisson(views),
                study_id=f"s{i:03d}",
                patient_id=f"p{i:03d}",
                label=label,
                source=source,
                meta={"lesions": truth, "pixel_spacing_mm": 2.4},
                extra={"lesion_count": len(truth), "superscan": 0}
                if source == "simulated"
                else {"burden": burden_class(asked, False)},
            )
    return dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lesions")
    train = write_studies(root / "train", 48, seed=0)
    return train_lesion_detector(train, train.records, CONFIG), root


def test_targets_are_disks_of_the_diameter_at_the_binned_anterior_pixel():
    lesions = [{"kind": "hot", "diameter_mm": 24.0, "pixel_anterior": [40.5, 20.5]}]
    mask = lesion_targets(lesions, (64, 32), bin_factor=2, spacing_mm=2.4)
    assert mask.shape == (32, 16)
    rows, cols = np.nonzero(mask)
    assert (rows.mean(), cols.mean()) == pytest.approx((20.0, 10.0)), (
        "native 40.5 is binned pixel 20's centre"
    )
    assert mask.sum() == pytest.approx(np.pi * 2.5**2, abs=8), "diameter 24 mm = 5 binned pixels"


def test_detector_finds_held_out_lesions_and_ignores_the_anatomy(trained, tmp_path):
    detector, _ = trained
    held = write_studies(tmp_path / "held", 24, seed=1)
    rows = count_lesions(detector, held, held.records)
    found = sum(r["found"] for r in rows) / sum(r["true_hot"] for r in rows)
    assert found > 0.8, rows
    normals = [r for r in rows if r["label"] == "normal"]
    assert np.mean([r["detected"] for r in normals]) < 0.5, "the bright band in every study is not a lesion"
    metastatic = [r for r in rows if r["label"] == "metastasis"]
    counted = [abs(r["detected"] - r["true_hot"]) <= 1 for r in metastatic]
    assert np.mean(counted) > 0.7, metastatic


def test_fidelity_tells_lesion_free_metastasis_samples_from_real_ones(trained, tmp_path):
    detector, _ = trained
    held = write_studies(tmp_path / "held", 24, seed=2)
    good = write_studies(tmp_path / "good", 24, seed=3, source="synthetic")
    empty = write_studies(tmp_path / "empty", 24, seed=4, lesions=False, source="synthetic")
    faithful = lesion_fidelity(detector, held, held.records, good, good.records)
    hollow = lesion_fidelity(detector, held, held.records, empty, empty.records)
    ceiling = faithful["with_lesions"]["metastasis"]["real"]["share"]
    assert ceiling > 0.9
    assert faithful["with_lesions"]["metastasis"]["synthetic"]["share"] > 0.8
    assert hollow["with_lesions"]["metastasis"]["synthetic"]["share"] < 0.2
    assert faithful["detector"]["lesion_sensitivity"]["share"] > 0.8
    assert faithful["burden"]["1-3"]["synthetic"]["share"] > 0.6
    assert (
        hollow["burden"]["1-3"]["synthetic"]["share"] == 0 == hollow["burden"]["4-10"]["synthetic"]["share"]
    )
    assert list(faithful["burden"]) == ["1-3", "4-10"], "burden classes in the generator's order"
    report = "\n".join(lesion_markdown(hollow))
    assert "| metastasis | 0.0" in report or "| metastasis | 0.1" in report, report


def test_lesion_contrast_is_the_peak_over_the_ring_around_the_region():
    views = np.full((2, 24, 24), 9.0)
    views[1, 10:13, 10:13] = 40.0  # a 3 x 3 focus on a flat surround of 9 counts
    views[0, 10:13, 10:13] = 20.0  # fainter in the other view
    labels = np.zeros((24, 24), int)
    labels[10:13, 10:13] = 1
    assert lesion_contrast(views, labels, 1) == [pytest.approx(40 / 10)]
    views[1, 15, 11] = 1000.0  # a hot pixel 3 steps outside, in the ring: its median ignores it
    assert lesion_contrast(views, labels, 1) == [pytest.approx(40 / 10)]
    assert lesion_contrast(views, labels, 0) == []
    steps = ndimage.distance_transform_cdt(labels == 0, metric="taxicab")  # city-block steps outside
    views = np.stack([100.0 * steps, np.zeros_like(views[1])])  # 300-500 in the ring, 600 one step out
    views[0][labels == 1] = 5000.0
    ring = views[0][(steps >= 3) & (steps <= 5)]
    assert lesion_contrast(views, labels, 1) == [pytest.approx(5000 / (np.median(ring) + 1))]


def test_conspicuity_compares_metastasis_lesions_and_scales_their_area():
    def rows(label, contrasts):
        return [{"label": label, "contrast": contrasts, "area_pixels": [4.0] * len(contrasts)}]

    real = rows("metastasis", [5.0, 6.0]) + rows("normal", [1.0])  # a normal's marks are not lesions
    seen = conspicuity(real, rows("metastasis", [2.0, 3.0, 4.0]), pixel_area_mm2=23.04)
    assert seen["contrast_auc"] == 1.0, "every real lesion stands out more"
    assert seen["real"]["n_lesions"] == 2 and seen["real"]["contrast_quartiles"][1] == 5.5
    assert seen["synthetic"]["area_mm2_quartiles"] == [4 * 23.04] * 3
    assert conspicuity(real, rows("metastasis", []), 23.04)["contrast_auc"] is None


def test_conspicuity_tells_faint_lesions_from_conspicuous_ones(trained, tmp_path):
    detector, _ = trained
    held = write_studies(tmp_path / "held", 24, seed=7)
    good = write_studies(tmp_path / "good", 24, seed=8, source="synthetic")
    faint = write_studies(tmp_path / "faint", 24, seed=9, source="synthetic", hot=3.0)
    faithful = lesion_fidelity(detector, held, held.records, good, good.records)["conspicuity"]
    result = lesion_fidelity(detector, held, held.records, faint, faint.records)
    pale = result["conspicuity"]
    assert faithful["real"]["n_lesions"] > 20 and pale["synthetic"]["n_lesions"] > 10, pale
    assert 0.3 < faithful["contrast_auc"] < 0.7, faithful
    assert pale["contrast_auc"] > 0.8, pale
    assert pale["synthetic"]["contrast_quartiles"][1] < faithful["synthetic"]["contrast_quartiles"][1]
    report = "\n".join(lesion_markdown(result))
    assert f"**{pale['contrast_auc']:.3f}**" in report, report


def test_report_says_when_the_held_out_studies_carry_no_lesion_truth(trained, tmp_path):
    detector, _ = trained
    real = write_studies(tmp_path / "real", 8, seed=5, source="real")
    good = write_studies(tmp_path / "good", 8, seed=6, source="synthetic")
    result = lesion_fidelity(detector, real, real.records, good, good.records)
    assert (
        result["detector"]["lesion_sensitivity"]["n"] == 0
        and result["detector"]["false_marks_per_normal"] is None
    )
    assert "unchecked" in "\n".join(lesion_markdown(result))


def test_only_visible_hot_lesions_are_truth():
    meta = {
        "scan_start_mm": 24.0,
        "scan_end_mm": 2400.0,  # a partial scan: rows 10 to 999 acquired at 2.4 mm
        "lesions": [
            {"kind": "hot", "pixel_anterior": [500.0, 100.0]},
            {"kind": "cold", "pixel_anterior": [500.0, 100.0]},
            {"kind": "hot", "pixel_anterior": [1010.0, 100.0]},
            {"kind": "hot", "pixel_anterior": [5.0, 100.0]},
        ],
    }
    assert visible_hot_lesions(meta, 2.4) == meta["lesions"][:1]


def test_saved_detector_gives_the_same_maps(trained, tmp_path):
    detector, root = trained
    detector.save(tmp_path / "detector")
    again = LesionDetector.load(tmp_path / "detector")
    held = Dataset.open(root / "train")
    counts = np.stack([held.read(r).counts for r in held.records[:4]])
    assert again.config == detector.config
    np.testing.assert_allclose(again.probabilities(counts), detector.probabilities(counts), atol=1e-6)


def test_shipped_configs_list_every_field_and_default_yaml_is_the_library_default():
    fields = {f.name for f in dataclasses.fields(LesionDetectorConfig)}
    for name in builtin_names("lesion_detector"):
        assert set(yaml.safe_load(builtin_config("lesion_detector", name).read_text())) == fields, name
    default = load_config(LesionDetectorConfig, builtin_config("lesion_detector", "default"))
    assert default == LesionDetectorConfig()


def test_cli_trains_a_detector_whose_folder_describes_itself(tmp_path):
    write_studies(tmp_path / "train", 12, seed=8)
    args = ["evaluate", "lesion-detector", "--data", str(tmp_path / "train"), "--out", str(tmp_path / "det")]
    result = CliRunner().invoke(main, [*args, "--config", "tiny", "--set", "steps=20"])
    assert result.exit_code == 0, result.output
    detector = LesionDetector.load(tmp_path / "det")
    assert detector.config.steps == 20 and detector.config.features == CONFIG.features
    train = Dataset.open(tmp_path / "train")
    assert detector.training_studies == {r.get("file_sha256") for r in train.records}
    assert len(detector.training_studies) == 12, "every study's file hash is recorded"
    training = json.loads((tmp_path / "det" / "training.json").read_text())
    assert (training["studies"], training["metastasis"]) == (12, 6)
    losses = [json.loads(line) for line in (tmp_path / "det" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in losses if "loss" in m] == [1, 20]
    assert (tmp_path / "det" / "config.yaml").is_file() and (tmp_path / "det" / "run.json").is_file()
    again = CliRunner().invoke(main, [*args, "--config", "tiny"])
    assert again.exit_code != 0 and "already holds a lesion detector" in again.output
    bad = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "x"), "--set", "features=[8, 8]"])
    assert bad.exit_code != 0 and "features must list 6 widths" in bad.output
    assert json.loads((tmp_path / "det" / "training.json").read_text())["pixel_spacing_mm"] == 2.4
    normals = Dataset.create(tmp_path / "normals", matrix=MATRIX)
    with normals.writer() as writer:
        study = {"study_id": "n0", "patient_id": "p0", "label": "normal", "source": "simulated"}
        writer.add(np.ones((2, *MATRIX), np.int32), **study, extra={"lesion_count": 0, "superscan": 0})
    no_lesions = [*args[:3], str(normals.root), "--out", str(tmp_path / "y"), "--config", "tiny"]
    none = CliRunner().invoke(main, no_lesions)
    assert none.exit_code != 0 and "holds no simulated metastasis studies" in none.output
    assert not (tmp_path / "y").exists(), "a failed run leaves no folder behind"
    (tmp_path / "z").mkdir()
    (tmp_path / "z" / "notes.txt").write_text("someone else's")
    busy = CliRunner().invoke(main, [*args[:-1], str(tmp_path / "z"), "--config", "tiny"])
    assert busy.exit_code != 0 and "is not empty" in busy.output


def test_fidelity_report_counts_lesions_and_flags_studies_the_detector_learnt_from(trained, tmp_path):
    detector, root = trained
    studies = sorted(r.get("file_sha256") for r in Dataset.open(root / "train").records)
    detector.save(tmp_path / "det")
    (tmp_path / "det" / "training.json").write_text(json.dumps({"study_sha256": studies}))
    held = write_studies(tmp_path / "held", 24, seed=9)
    empty = write_studies(tmp_path / "empty", 12, seed=10, lesions=False, source="synthetic")

    def report(real: Dataset, out: str) -> tuple[dict, str]:
        args = ["--real", str(real.root), "--synthetic", str(empty.root), "--out", str(tmp_path / out)]
        extra = ["--lesion-detector", str(tmp_path / "det"), "--no-image-detector"]
        result = CliRunner().invoke(main, ["evaluate", "fidelity", *args, *extra])
        assert result.exit_code == 0, result.output
        return json.loads((tmp_path / out / "results.json").read_text()), result.output

    results, output = report(held, "rep")
    metastasis = results["lesions"]["with_lesions"]["metastasis"]
    assert metastasis["real"]["share"] > 0.9 and metastasis["synthetic"]["share"] < 0.2
    assert "Metastasis studies with a detected lesion" in output
    assert "## Lesions" in (tmp_path / "rep" / "report.md").read_text()
    assert not any("lesion detector was trained" in c for c in results["caveats"])
    seen, _ = report(Dataset.open(root / "train"), "seen")
    assert any("lesion detector was trained on 48" in c for c in seen["caveats"])
    (tmp_path / "det" / "training.json").unlink()  # a detector saved without its training record
    unknown, _ = report(held, "unknown")
    assert any("training studies are unknown" in c for c in unknown["caveats"])
    (tmp_path / "det" / "training.json").write_text(json.dumps({"study_sha256": [], "pixel_spacing_mm": 4.8}))
    args = ["--real", str(held.root), "--synthetic", str(empty.root), "--out", str(tmp_path / "x")]
    args += ["--lesion-detector", str(tmp_path / "det")]
    other = CliRunner().invoke(main, ["evaluate", "fidelity", *args])
    assert other.exit_code != 0 and "learnt lesions on 4.8 mm pixels" in other.output
