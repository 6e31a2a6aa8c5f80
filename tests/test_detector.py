"""The image-space real-vs-synthetic detector: it must separate what differs and not what does not."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from synthscan.evaluation.detector import (
    DetectorConfig,
    build_detector,
    detector_auc,
    detector_inputs,
    logit_maps,
    repeats_text,
    where_text,
    within_condition_text,
)

CONFIG = DetectorConfig(bin_factor=1, channels=(8, 16), epochs=6, folds=4)


def striped_studies(n: int, rng: np.random.Generator, blur: float = 0.0) -> np.ndarray:
    """Poisson studies (2, 64, 16) of a body with rib-like rows every 4 pixels, optionally blurred.

    Blurring keeps each row's mean and the Poisson noise: only the fine structure differs.
    """
    rate = np.full((64, 16), 20.0)
    rate[::4] *= 2.0
    if blur:
        rate = gaussian_filter1d(rate, blur, axis=0, mode="nearest")
    return rng.poisson(rate, size=(n, 2, 64, 16))


def test_detector_inputs_mirror_bin_and_normalise():
    counts = np.zeros((1, 2, 4, 4))
    counts[0, 1, :, 0] = 8  # posterior: left column as acquired
    x = detector_inputs(counts, 2)
    assert x.shape == (1, 2, 2, 2)
    assert x[0, 1, :, 1].min() > x[0, 1, :, 0].max(), "the mirrored posterior puts it on the right"
    assert abs(float(x.mean()) - 1.0) < 1e-6


@pytest.mark.parametrize("repeats", [1, 2])
def test_detector_separates_sharp_from_blurred_studies(repeats):
    rng = np.random.default_rng(0)
    sharp, blurred = striped_studies(24, rng), striped_studies(24, rng, blur=1.5)
    groups = [str(i) for i in range(24)]
    result = detector_auc(sharp, blurred, groups, groups, dataclasses.replace(CONFIG, repeats=repeats))
    assert result["auc"] > 0.9 and result["ci95"][0] > 0.75, result
    folds = result["fold_auc"]
    assert len(folds) == repeats and all(len(r) == 4 and min(r) > 0.75 for r in folds), folds


def test_detector_does_not_separate_two_draws_of_one_distribution():
    rng = np.random.default_rng(1)
    a, b = striped_studies(24, rng), striped_studies(24, rng)
    groups = [str(i) for i in range(24)]
    result = detector_auc(a, b, groups, groups, CONFIG)
    assert result["ci95"][0] < 0.5 < result["ci95"][1], result
    assert result["n_real"] == result["n_synthetic"] == 24 and result["folds"] == 4
    assert 0.2 < np.mean(result["fold_auc"]) < 0.8, result["fold_auc"]


def test_within_conditions_the_mix_of_two_looks_is_no_tell():
    rng = np.random.default_rng(5)
    # "amyloidosis" studies look blurred in both sets; the synthetic set simply holds more of them
    real = np.concatenate([striped_studies(24, rng), striped_studies(8, rng, blur=1.5)])
    fake = np.concatenate([striped_studies(8, rng), striped_studies(24, rng, blur=1.5)])
    keys = (["normal"] * 24 + ["amyloidosis-g3"] * 8, ["normal"] * 8 + ["amyloidosis-g3"] * 24)
    groups = [str(i) for i in range(32)]
    result = detector_auc(real, fake, groups, groups, CONFIG, conditions=keys)
    assert result["ci95"][0] > 0.5, "pooled, the mix is a tell"
    within = result["within_condition"]
    assert within["ci95"][0] < 0.5 < within["ci95"][1], within
    assert "Within conditions" in within_condition_text(result)


def test_repeats_report_the_spread_of_the_detectors_own_training():
    rng = np.random.default_rng(2)
    a, b = striped_studies(16, rng), striped_studies(16, rng)  # one distribution: AUCs vary by chance
    groups = [str(i) for i in range(16)]
    once = detector_auc(a, b, groups, groups, CONFIG)
    thrice = detector_auc(a, b, groups, groups, dataclasses.replace(CONFIG, repeats=3))
    assert "repeats" not in once
    spread = thrice["repeats"]
    assert spread["auc"][0] == once["auc"], "the first repeat is the single run"
    assert spread["seeds"] == [0, 1000, 2000] and len(set(spread["auc"])) > 1, spread
    assert spread["mean"] == pytest.approx(np.mean(spread["auc"]))
    assert thrice["ci95"][0] < thrice["auc"] < thrice["ci95"][1], "the ensemble's AUC comes with its interval"
    text = repeats_text(thrice)
    assert "3 trainings' averaged" in text and "The 12 fold detectors' AUCs" in text, text
    assert "trainings'" not in repeats_text(once) and "The 4 fold detectors'" in repeats_text(once)
    with pytest.raises(ValueError, match="repeats"):
        detector_auc(a, b, groups, groups, dataclasses.replace(CONFIG, repeats=0))


def test_the_logit_map_averages_to_the_detectors_logit():
    torch.manual_seed(0)
    model = build_detector((8, 16)).eval()
    x = torch.randn(3, 2, 64, 16)
    with torch.no_grad():
        maps, logits = logit_maps(model, x), model(x).squeeze(1)
    assert maps.shape == (3, 16, 4)
    torch.testing.assert_close(maps.mean(dim=(1, 2)), logits)


def test_the_map_finds_a_tell_where_it_is():
    """Synthetic studies blurred in their lower half only: the looks-synthetic difference lies there."""
    rng = np.random.default_rng(4)
    real, synthetic = striped_studies(24, rng), striped_studies(24, rng)
    synthetic[:, :, 40:] = striped_studies(24, rng, blur=1.5)[:, :, 40:]
    groups = [str(i) for i in range(24)]
    result = detector_auc(real, synthetic, groups, groups, CONFIG)
    assert result["auc"] > 0.9, result
    where = result["where"]
    assert where["cell_pixels"] == 4 and np.shape(where["difference"]) == (16, 4)
    profile = np.asarray(where["row_profile"])  # cells 10-15 hold rows 40-63
    assert profile[10:].mean() > 2 * profile[:10].mean(), profile
    # (the detector's group norms see the whole image, so the unaltered rows are not at 0)
    first, last = map(int, where_text(result).split(" lies in rows ")[1].split(" ")[0].split("-"))
    assert first >= 40 and last == 63, where_text(result)
    assert np.shape(where["real_mean"]) == (16, 4)
