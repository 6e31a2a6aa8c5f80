"""The lesion detector: trained on lesion ground truth, it must find lesions, count them and ignore mimics."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from synthscan.dataset import Dataset
from synthscan.evaluation.lesions import (
    LesionDetector,
    LesionDetectorConfig,
    count_lesions,
    lesion_fidelity,
    lesion_markdown,
    lesion_targets,
    train_lesion_detector,
)

MATRIX = (64, 32)
CONFIG = LesionDetectorConfig(
    bin_factor=1, features=(8, 8, 16, 16, 32, 8), crop_rows=32, steps=300, batch_size=8, learning_rate=5e-3
)


def write_studies(root, n: int, seed: int, *, lesions: bool = True, source: str = "simulated") -> Dataset:
    """Poisson bodies with a bright band in every study (anatomy); metastasis studies get 1-5 recorded
    hot disks, or none with ``lesions=False`` (a generator that ignores the condition)."""
    dataset = Dataset.create(root, matrix=MATRIX)
    rng = np.random.default_rng(seed)
    r, c = np.ogrid[: MATRIX[0], : MATRIX[1]]
    with dataset.writer() as writer:
        for i in range(n):
            label = "metastasis" if i % 2 else "normal"
            rate = np.zeros(MATRIX)
            rate[2:-2, 4:-4] = 20.0
            rate[40:44, 4:-4] *= 2.5  # the same bright band in every study: anatomy, not a lesion
            truth = []
            if label == "metastasis" and lesions:
                for _ in range(int(rng.integers(1, 6))):
                    row, col = float(rng.uniform(6, 36)), float(rng.uniform(8, 24))
                    rate[np.hypot(r - row, c - col) <= 1.5] *= 5.0
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
                extra={"lesion_count": len(truth), "superscan": 0},
            )
    return dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("lesions")
    train = write_studies(root / "train", 48, seed=0)
    return train_lesion_detector(train, train.records, CONFIG), root


def test_targets_are_disks_at_the_anterior_pixel_and_skip_cold_lesions():
    lesions = [
        {"kind": "hot", "diameter_mm": 24.0, "pixel_anterior": [40.0, 20.0]},
        {"kind": "cold", "diameter_mm": 24.0, "pixel_anterior": [10.0, 10.0]},
    ]
    mask = lesion_targets(lesions, (64, 32), bin_factor=2, spacing_mm=2.4)
    assert mask.shape == (32, 16)
    assert mask[20, 10] == 1 and mask[5, 5] == 0, "hot lesion drawn at (row, col) / 2, the cold one not"
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
    report = "\n".join(lesion_markdown(hollow))
    assert "| metastasis | 0.0" in report or "| metastasis | 0.1" in report, report


def test_saved_detector_gives_the_same_maps(trained, tmp_path):
    detector, root = trained
    detector.save(tmp_path / "detector")
    again = LesionDetector.load(tmp_path / "detector")
    held = Dataset.open(root / "train")
    counts = np.stack([held.read(r).counts for r in held.records[:4]])
    assert again.config == detector.config
    np.testing.assert_allclose(again.probabilities(counts), detector.probabilities(counts), atol=1e-6)
