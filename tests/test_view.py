"""Bone-scan display: inverted grey with a robust window, study and grid layout, the ``view`` command."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from synthscan.cli import main
from synthscan.dataset import Dataset, write_study_file
from synthscan.render import CAPTION_HEIGHT, GAP, display_image, render_grid, render_study
from synthscan.simulator import load_site, simulate_dataset

ROWS, COLS = 256, 64


def _view(seed: int = 0) -> np.ndarray:
    """A noisy body-like view: a faint ellipse, a bright column (spine) and one very hot spot (bladder)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ROWS, :COLS]
    body = ((yy - 128) / 110) ** 2 + ((xx - 32) / 24) ** 2 < 1
    expected = np.where(body, 4.0, 0.0)
    expected[40:200, 30:34] = 30.0
    expected[181:185, 30:34] = 400.0
    return rng.poisson(expected).astype(np.uint16)


def test_display_is_inverted_grey_with_saturating_hot_spots():
    image = display_image(_view())
    assert image.dtype == np.uint8 and image.shape == (ROWS, COLS)
    assert image[0, 0] == 255  # empty background is white
    assert image[183, 32] == 0  # the bladder saturates
    assert image[100, 31] < 128  # the spine is dark, not washed out by the bladder
    assert image[128, 10] > image[100, 31]  # soft tissue lighter than bone


def test_display_of_an_empty_view_is_white():
    assert (display_image(np.zeros((ROWS, COLS), np.uint16)) == 255).all()


def test_render_study_puts_views_side_by_side_with_a_caption():
    counts = np.stack([_view(1), _view(2)])
    image = render_study(counts, "normal  centre_a  MDP  seed 1")
    assert image.size == (2 * COLS + GAP, ROWS + CAPTION_HEIGHT)
    pixels = np.asarray(image)
    assert np.array_equal(pixels[:ROWS, :COLS], display_image(counts[0]))
    assert np.array_equal(pixels[:ROWS, COLS + GAP :], display_image(counts[1]))  # posterior as stored
    assert (pixels[ROWS:] < 128).any()  # caption text drawn


def test_render_grid_layout():
    counts = np.stack([_view(1), _view(2)])
    grid = render_grid([(counts, f"study {i}") for i in range(5)], columns=2)
    tile_w, tile_h = 2 * COLS + GAP, ROWS + CAPTION_HEIGHT
    assert grid.size == (2 * tile_w + GAP, 3 * tile_h + 2 * GAP)
    with pytest.raises(ValueError, match="shape"):
        render_study(counts[0], "one view")
    with pytest.raises(ValueError, match="at least one"):
        render_grid([], columns=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    config = load_site("centre_a", {"matrix": [ROWS, COLS], "pixel_spacing_mm": 9.6})
    return simulate_dataset(config, 3, tmp_path_factory.mktemp("sim") / "ds", workers=1, progress=False)


def test_view_renders_a_dataset_sample(dataset, tmp_path):
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(
        main, ["view", str(dataset.root), "--out", str(out), "--n", "2", "--columns", "2"]
    )
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (2 * (2 * COLS + GAP) + GAP, ROWS + CAPTION_HEIGHT)


def test_view_renders_one_study_of_a_dataset_or_a_file(dataset, tmp_path):
    record = dataset.records[1]
    for args in (
        [str(dataset.root), "--study", record.study_id],
        [str(dataset.root / record.path)],
    ):
        out = tmp_path / "one.png"
        result = CliRunner().invoke(main, ["view", *args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        with Image.open(out) as image:
            assert image.size == (2 * COLS + GAP, ROWS + CAPTION_HEIGHT)
        out.unlink()


def test_view_rejects_unknown_studies_and_non_datasets(dataset, tmp_path):
    result = CliRunner().invoke(
        main, ["view", str(dataset.root), "--study", "nope", "--out", str(tmp_path / "x.png")]
    )
    assert result.exit_code != 0 and "no study 'nope'" in result.output
    result = CliRunner().invoke(main, ["view", str(tmp_path), "--out", str(tmp_path / "x.png")])
    assert result.exit_code != 0 and "not a synthscan dataset" in result.output
    assert not (tmp_path / "x.png").exists()


def test_view_of_a_foreign_study_file_without_meta(tmp_path):
    path = tmp_path / "study.npz"
    write_study_file(path, np.stack([_view(3), _view(4)]), {})
    result = CliRunner().invoke(main, ["view", str(path), "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.png").is_file()
