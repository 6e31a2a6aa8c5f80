"""Option helpers shared by the commands: ``--set KEY=VALUE`` overrides and ``--config NAME_OR_YAML``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from synthscan.config import builtin_names


def parse_overrides(values: tuple[str, ...]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as YAML (``matrix=[256,64]``, ``tracer_weights={DPD: 1}``)."""
    overrides = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--set")
        try:
            overrides[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise click.BadParameter(
                f"{item!r}: value is not valid YAML ({error})", param_hint="--set"
            ) from None
    return overrides


class ConfigParam(click.ParamType):
    """A config shipped in ``configs/<group>/`` (by name), or the path of a ``.yaml`` file."""

    name = "config"

    def __init__(self, group: str):
        self.group = group

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return f"[{'|'.join(builtin_names(self.group))}|FILE.yaml]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        value = str(value)
        if value in builtin_names(self.group):
            return value
        if value.endswith((".yaml", ".yml")):
            if Path(value).is_file():
                return value
            self.fail(f"config file {value} does not exist", param, ctx)
        self.fail(
            f"unknown {self.group} config {value!r}; valid: {', '.join(builtin_names(self.group))} "
            "(or the path of a .yaml file)",
            param,
            ctx,
        )


class GeneratorParam(click.ParamType):
    """A generator folder, or the name of a model shipped with synthscan (``synthscan/models/<name>``)."""

    name = "generator"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        from synthscan.generator.storage import shipped_models

        return f"[{'|'.join(shipped_models())}|DIR]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        from synthscan.generator.storage import model_dir, shipped_models

        value = str(value)
        if model_dir(value).is_dir():  # the library's rule: a folder, else a shipped model's name
            return value
        self.fail(
            f"{value} is neither a generator folder nor a shipped model's name "
            f"({', '.join(shipped_models())})",
            param,
            ctx,
        )


def config_path(group: str, value: str) -> Path:
    """Path of a :class:`ConfigParam` value."""
    from synthscan.config import builtin_config

    return Path(value) if value.endswith((".yaml", ".yml")) else builtin_config(group, value)


RANDOM_STATE = click.IntRange(0, 2**32 - 1)
"""A seed handed to scikit-learn (``random_state`` must fit in 32 bits)."""

guidance_option = click.option(
    "--guidance",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Classifier-free guidance scale for every condition: 1 = the conditional model alone (no "
    "guidance), above 1 = pushed further towards the condition; it must be > 0, since 0 would be the "
    "unconditional model, which ignores the condition [default: the model's scale for each condition, "
    "for a metastasis study its burden's and for an amyloidosis study its Perugini grade's where the "
    "model has one].",
)
steps_option = click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Sampler steps [default: the model's]."
)
device_option = click.option(
    "--device",
    default=None,
    help="Torch device of the networks, e.g. cpu, cuda, cuda:1 [default: this process's device: its own "
    "GPU under `accelerate launch`, else the GPU if there is one, else the CPU].",
)
precision_option = click.option(
    "--precision",
    type=click.Choice(("fp32", "bf16", "fp16")),
    default="fp32",
    show_default=True,
    help="Arithmetic of the UNet and decoder: fp32, or autocast to bf16/fp16 (for GPUs; the counts' "
    "statistics match fp32, the exact counts do not). Recorded with every study.",
)


def studies(n: int, kind: str = "") -> str:
    """``"1 study"``, ``"3 synthetic studies"``: the count and noun of a command's summary line."""
    return " ".join([str(n), *([kind] if kind else []), "study" if n == 1 else "studies"])
