"""One dataclass config per stage, loaded from YAML with CLI overrides.

Configs are plain data (no ``_target_`` strings, no code). Unknown keys are refused with the
list of valid ones, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or override does not match its dataclass."""


def builtin_config(group: str, name: str) -> Path:
    """Path of a YAML shipped in ``configs/<group>/<name>.yaml`` (installed as ``synthscan.configs``)."""
    folder = resources.files("synthscan.configs") / group
    path = folder / f"{name}.yaml"
    if not path.is_file():
        available = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
        raise ConfigError(f"no {group} config named {name!r}; available: {', '.join(available)}")
    return Path(str(path))


def builtin_names(group: str) -> list[str]:
    folder = resources.files("synthscan.configs") / group
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclass fields."""
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(value, Mapping):
        return from_dict(hint, value, where=where)
    origin = typing.get_origin(hint)
    if origin in (tuple,) and isinstance(value, list | tuple):
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if origin in (typing.Union, types.UnionType):
        return value
    if hint is float and isinstance(value, int):
        return float(value)
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Dataclass → plain YAML-friendly dict (tuples become lists)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def load_config(
    cls: type[T], path: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> T:
    """Load ``cls`` from YAML ``path`` (or defaults), then apply ``overrides``.

    Override keys may be dotted (``"autoencoder.steps": 10``); ``None`` values are ignored so
    unset CLI flags leave the file's value alone.
    """
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        node = data
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return from_dict(cls, data, where=str(path) if path else cls.__name__)


def dump_config(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
