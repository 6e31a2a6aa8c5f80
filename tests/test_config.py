"""Config values are type-checked and bounded at load, naming the field and where the value came from."""

from __future__ import annotations

import pytest

from synthscan.classifier.config import ClassifierConfig
from synthscan.config import ConfigError, builtin_config, load_config
from synthscan.generator.config import GeneratorConfig


def _generator(overrides=None, path=None):
    return load_config(GeneratorConfig, path or builtin_config("generator", "tiny"), overrides)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"diffusion.steps": "abc"}, "--set: diffusion.steps must be an integer, got 'abc'"),
        ({"diffusion.steps": -3}, "--set: diffusion.steps must be >= 1, got -3"),
        ({"diffusion.steps": 2.5}, "diffusion.steps must be an integer"),
        ({"diffusion.steps": True}, "diffusion.steps must be an integer"),
        ({"diffusion.learning_rate": 0}, "diffusion.learning_rate must be > 0"),
        ({"diffusion.cond_drop_prob": 1.5}, "diffusion.cond_drop_prob must be in [0, 1]"),
        ({"diffusion.low_noise_portion": 0}, "diffusion.low_noise_portion must be in (0, 1], got 0"),
        ({"diffusion.snr_gamma": -1}, "diffusion.snr_gamma must be > 0, got -1.0"),
        ({"autoencoder.block_out_channels": [8, "x"]}, "block_out_channels[1] must be an integer"),
        ({"unet.attention_levels": "yes"}, "unet.attention_levels must be a list"),
        ({"sampling.guidance_scale": 0}, "sampling.guidance_scale must be > 0"),
        ({"sampling.label_guidance": {"normal": "high"}}, "sampling.label_guidance.normal must be a number"),
        ({"diffusion": 3}, "diffusion is a section"),
    ],
)
def test_bad_generator_overrides_name_the_field_and_blame_set(overrides, message):
    with pytest.raises(ConfigError) as error:
        _generator(overrides)
    assert message in str(error.value)


def test_a_bad_value_in_the_file_blames_the_file_not_set(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("diffusion:\n  steps: many\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: diffusion\.steps must be an integer, got 'many'"):
        _generator({"seed": 1}, path)


def test_integers_become_floats_and_valid_overrides_apply():
    config = _generator({"diffusion.learning_rate": 1, "diffusion.steps": 7})
    assert config.diffusion.learning_rate == 1.0 and isinstance(config.diffusion.learning_rate, float)
    assert config.diffusion.steps == 7


def test_classifier_values_are_checked_too():
    default = builtin_config("classifier", "default")
    with pytest.raises(ConfigError, match=r"--set: train\.max_steps must be an integer, got 'abc'"):
        load_config(ClassifierConfig, default, {"train.max_steps": "abc"})
    with pytest.raises(ConfigError, match=r"augment\.blur_prob must be in \[0, 1\]"):
        load_config(ClassifierConfig, default, {"augment.blur_prob": 2})
