"""The decoder's rate calibration: the count a decoded level stands for, fitted and applied."""

import numpy as np
import pytest
import torch

from synthscan.generator.calibration import (
    CalibrationTable,
    RateCalibration,
    calibration_table,
    decoded_rates,
    fit_rate_calibration,
)
from synthscan.generator.storage import describe_model, load_pipeline
from synthscan.generator.transform import AcquisitionWindow, expected_counts, to_model


def test_a_table_interpolates_between_knots_and_keeps_the_last_ratio_beyond():
    table = CalibrationTable((0.0, 1.0, 2.0), (0.5, 1.5, 2.0))
    rate = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 4.0])
    torch.testing.assert_close(table.apply(rate), torch.tensor([0.5, 1.0, 1.5, 1.75, 2.0, 4.0]))
    with pytest.raises(ValueError, match="increasing knots from 0"):
        CalibrationTable((0.1, 1.0), (0.5, 1.0))
    with pytest.raises(ValueError, match="non-decreasing"):
        CalibrationTable((0.0, 1.0), (1.0, 0.5))


def test_edge_columns_have_their_own_tables():
    double, same, half = (CalibrationTable((0.0, 1.0), (0.0, v)) for v in (2.0, 1.0, 0.5))
    calibration = RateCalibration((double, same, half), edge_columns=1)
    calibrated = calibration.apply(torch.ones(1, 2, 3, 5))
    assert calibrated[0, 0, 0].tolist() == [2.0, 1.0, 1.0, 1.0, 0.5]
    assert RateCalibration.from_dict(calibration.to_dict()) == calibration
    assert RateCalibration.from_dict(None) is None
    with pytest.raises(ValueError, match="2 \\* that \\+ 1 tables"):
        RateCalibration((same,), edge_columns=1)
    with pytest.raises(ValueError, match="over 2 columns wide"):
        calibration.apply(torch.ones(1, 2, 3, 2))


def test_the_fit_undoes_a_decoder_that_is_dark_at_low_levels():
    """Decoded rates 2.5x low at background level and 5 % low in the body, observed as Poisson counts:
    calibrated, each level's mean decoded rate is the true one again."""
    rng = np.random.default_rng(0)
    truth = np.r_[np.full(200_000, 0.008), rng.uniform(0.5, 5.0, 200_000)]
    scale = 20.0
    observed = rng.poisson(truth * scale) / scale
    decoded = np.where(truth < 0.1, 0.4 * truth * rng.uniform(0, 2, truth.size), 0.95 * truth)
    table = calibration_table(decoded, observed)
    calibrated = table.apply(torch.from_numpy(decoded)).numpy()
    background, body = truth < 0.1, truth > 1.0
    assert calibrated[background].mean() == pytest.approx(0.008, rel=0.03)
    assert decoded[background].mean() == pytest.approx(0.0032, rel=0.03), "the decoder as built: dark"
    assert np.mean(calibrated[body] / truth[body]) == pytest.approx(1.0, abs=0.01)
    assert table.decoded[0] == 0 and len(table.decoded) <= 64


def test_a_trained_decoder_calibrated_keeps_the_mean_count_of_every_level(tiny_generator, generator_dataset):
    pipeline = load_pipeline(tiny_generator)
    counts = np.stack([s.counts for s in generator_dataset.iter_studies(generator_dataset.records)])
    x = to_model(counts, pipeline.config.bin_factor)[0].numpy()
    table = fit_rate_calibration(pipeline.vae, x, studies=len(x), edge_columns=2, pixels=10**7, knots=16)
    assert table.edge_columns == 2 and len(table.tables) == 5
    observed, decoded = np.square(x), decoded_rates(pipeline.vae, x)
    calibrated = table.apply(torch.from_numpy(decoded)).numpy()
    third = np.quantile(decoded, [1 / 3, 2 / 3])
    for low, high in ((0, third[0]), (third[0], third[1]), (third[1], np.inf)):
        level = (decoded >= low) & (decoded < high)
        assert calibrated[level].mean() == pytest.approx(observed[level].mean(), rel=0.1), (low, high)


def test_expected_counts_apply_the_calibration_before_the_window_and_the_total():
    x = torch.full((1, 2, 16, 8), 0.1)  # background: decoded rate 0.01
    x[:, :, 8:15, 2:6] = 1.0  # body: 1
    lifted = RateCalibration((CalibrationTable((0.0, 0.01, 1.0), (0.02, 0.04, 1.0)),))
    plain, calibrated = (expected_counts(x, torch.tensor([1e4]), 2, calibration=c)[0] for c in (None, lifted))
    body, background = (slice(20, 26), slice(6, 10)), (slice(0, 6), slice(0, 16))  # apart: bicubic rings
    assert plain.sum() == pytest.approx(1e4, rel=1e-5) and calibrated.sum() == pytest.approx(1e4, rel=1e-5)
    ratio = [r[0][background].mean() / r[0][body].mean() for r in (plain, calibrated)]
    assert ratio == pytest.approx([0.01, 0.04], rel=0.02)
    # the window still cuts the lifted background: exactly 0 outside it, lifted inside
    x[:, :, 8:15, 1:7] = 1.0  # a wider body, its rows far above the lifted background's
    milder = RateCalibration((CalibrationTable((0.0, 0.01, 1.0), (0.01, 0.02, 1.0)),))
    window = AcquisitionWindow(top_margin=0, bottom_margin=0, cols=(0, 11))  # native (32, 16) images
    plain, calibrated = (
        expected_counts(x, torch.tensor([1e4]), 2, window, calibration=c)[0] for c in (None, milder)
    )
    rows = calibrated.sum(dim=(0, 2))
    inside = torch.nonzero(rows).flatten()
    assert 10 <= int(inside[0]) <= 14 and int(inside[-1]) == 31, "the body's rows, not the lifted haze"
    assert float(calibrated[0, :, 12:].sum()) == float(calibrated[1, :, :4].sum()) == 0, (
        "posterior as acquired"
    )
    assert torch.equal(rows > 0, plain.sum(dim=(0, 2)) > 0)
    edge = (slice(int(inside[0]), int(inside[0]) + 2), slice(0, 12))  # background rows above the body
    assert float(calibrated[0][edge].mean() / plain[0][edge].mean()) > 1.5, "lifted inside the window"


def test_edge_columns_no_study_acquired_take_the_middle_table(tiny_generator, generator_dataset):
    """A narrower camera's views are zero-padded to the matrix: no count, no fit, the middle table."""
    pipeline = load_pipeline(tiny_generator)
    counts = np.stack([s.counts for s in generator_dataset.iter_studies(generator_dataset.records)])
    x = to_model(counts, pipeline.config.bin_factor)[0].numpy()
    x[..., :1] = 0
    table = fit_rate_calibration(pipeline.vae, x, studies=len(x), edge_columns=2, knots=16)
    assert table.tables[0] == table.tables[2] != table.tables[1]


def test_a_model_samples_with_its_calibration(tiny_generator):
    pipeline = load_pipeline(tiny_generator)
    assert pipeline.config.rate_calibration is not None, "training fits one"

    def expected() -> np.ndarray:
        return pipeline(
            ["normal"], generator=[torch.Generator().manual_seed(3)], return_expected=True
        ).expected

    calibrated = expected()
    pipeline.register_to_config(rate_calibration=None)
    plain = expected()
    assert not np.allclose(calibrated, plain)
    assert calibrated.sum() == pytest.approx(plain.sum(), rel=1e-4), "the total counts stay as drawn"


def test_calibrate_refits_the_table_and_keeps_the_weights(tiny_generator, generator_dataset, tmp_path):
    from click.testing import CliRunner
    from safetensors.torch import load_file

    from synthscan.cli import main

    args = ["calibrate", "--model", str(tiny_generator), "--data", str(generator_dataset.root)]
    out = tmp_path / "calibrated"
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--sources", "simulated", "--studies", "4"])
    assert result.exit_code == 0, result.output  # the model's own 2 edge columns
    wide = CliRunner().invoke(
        main, [*args, "--out", str(tmp_path / "w"), "--sources", "simulated", "--edge-columns", "8"]
    )
    assert wide.exit_code == 1 and "--edge-columns 8 needs model images over 16 columns wide" in wide.output
    assert not (tmp_path / "w").exists()
    base, calibrated = load_pipeline(tiny_generator), load_pipeline(out)
    for part in ("unet", "vae"):
        one, other = (load_file(next((m / part).glob("*.safetensors"))) for m in (tiny_generator, out))
        assert all(torch.equal(one[k], other[k]) for k in one)
    table = RateCalibration.from_dict(calibrated.config.rate_calibration)
    assert table is not None and table != RateCalibration.from_dict(base.config.rate_calibration), "4 studies"
    assert calibrated.config.training_sources == ["simulated"]
    assert (
        describe_model(out)["decoder_calibration"]
        == "5 tables (the 2 outermost columns of each side and the rest)"
    )
    card = (out / "README.md").read_text()
    assert card.startswith("# Calibrated synthscan generator") and base.sha256 in card
    refused = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "real")])  # the default: real studies
    assert refused.exit_code == 1 and "real" in refused.output and not (tmp_path / "real").exists()


def test_finetune_refits_the_models_calibration_unless_told_not_to(
    tiny_generator, generator_dataset, tmp_path
):
    from synthscan.generator.train import finetune

    common = dict(steps=1, batch_size=2, sources=("simulated",), progress=False)
    refitted = load_pipeline(finetune(tiny_generator, generator_dataset, tmp_path / "a", **common))
    table = RateCalibration.from_dict(refitted.config.rate_calibration)
    assert table is not None and table.edge_columns == 2, "the base model's edge columns"
    none = finetune(tiny_generator, generator_dataset, tmp_path / "b", calibration_studies=0, **common)
    assert load_pipeline(none).config.rate_calibration is None
