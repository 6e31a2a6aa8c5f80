"""Shared test settings: headless plotting, no progress bars, a small thread budget."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")


import numpy as np
import pytest

GENERATOR_MATRIX = (128, 32)
DRAWN_DOWN_ROWS = 40
"""Binned rows :func:`draw_half_the_bodies_down` empties: the body then starts at native row 80."""


def draw_half_the_bodies_down(pipeline) -> None:
    """Make ``pipeline``'s decoder draw the body 80 rows down the image for half the latents (the first
    element above the second), without rate calibration so that the emptied rows stay empty."""
    decode = pipeline.decode_latents

    def drawn_down(latents):
        decoded = decode(latents).clone()
        decoded[latents.flatten(1)[:, 0] > latents.flatten(1)[:, 1], :, :DRAWN_DOWN_ROWS] = 0
        return decoded

    pipeline.decode_latents = drawn_down
    pipeline.register_to_config(rate_calibration=None)


def interrupt_after_the_first_checkpoint(monkeypatch, run) -> None:
    """``run()`` stopped as by Ctrl-C right after it saves its first training checkpoint."""
    from synthscan.generator import train

    original = train._save_checkpoint

    def save_then_stop(accelerator, folder, step):
        original(accelerator, folder, step)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "_save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(train, "_save_checkpoint", original)


GENERATOR_ROWS = [("normal", 0), ("metastasis", 0), ("amyloidosis", 1), ("amyloidosis", 3)] * 3


def write_generator_dataset(root):
    """Poisson studies with a condition-specific hot spot (128x32), for training tiny generators."""
    from synthscan.dataset import Dataset

    dataset = Dataset.create(root, matrix=GENERATOR_MATRIX)
    rng = np.random.default_rng(0)
    with dataset.writer() as writer:
        for i, (label, grade) in enumerate(GENERATOR_ROWS):
            rate = np.full((2, *GENERATOR_MATRIX), 4.0)
            rate[:, 10 + 30 * (i % 3) : 20 + 30 * (i % 3), 8:24] += 20 * (1 + i % 4)
            writer.add(
                rng.poisson(rate),
                study_id=f"s{i:02d}",
                patient_id=f"p{i:02d}",
                label=label,
                perugini_grade=grade,
                source="simulated",
                tracer="DPD",
            )
    return dataset


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    """A generator trained for a few steps with the ``tiny`` config (seconds on a CPU): its model folder."""
    from synthscan.config import builtin_config, load_config
    from synthscan.generator.config import GeneratorConfig
    from synthscan.generator.train import train

    root = tmp_path_factory.mktemp("tiny-generator")
    write_generator_dataset(root / "data")
    config = load_config(GeneratorConfig, builtin_config("generator", "tiny"))
    return train(root / "data", config, root / "run", progress=False)


@pytest.fixture
def generator_dataset(tmp_path):
    return write_generator_dataset(tmp_path / "generator-data")
