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
from typing import Annotated, Any, TypeVar

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


@dataclasses.dataclass(frozen=True)
class Range:
    """Bounds of a numeric config field, attached with ``Annotated[int, Range(min=1)]``."""

    min: float | None = None
    max: float | None = None
    min_open: bool = False

    def check(self, value: float, field: str) -> None:
        low_ok = self.min is None or (value > self.min if self.min_open else value >= self.min)
        if not low_ok or (self.max is not None and value > self.max):
            raise ConfigError(f"{field} must be {self.describe()}, got {value!r}")

    def describe(self) -> str:
        if self.max is not None:
            return f"in {'(' if self.min_open else '['}{self.min:g}, {self.max:g}]"
        return f"{'>' if self.min_open else '>='} {self.min:g}"


PositiveInt = Annotated[int, Range(min=1)]
NonNegativeInt = Annotated[int, Range(min=0)]
PositiveFloat = Annotated[float, Range(min=0, min_open=True)]
NonNegativeFloat = Annotated[float, Range(min=0)]
Fraction = Annotated[float, Range(min=0, max=1)]


def from_dict(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping, recursing into nested dataclass fields.

    Every value is checked against its field's type and bounds here, at load, so a bad value fails
    with the field's dotted name and ``where`` it came from instead of deep inside a run.
    """
    try:
        return _build(cls, data, "")
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _build(cls: type[T], data: Mapping[str, Any] | None, prefix: str) -> T:
    data = dict(data or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        section = f" in section {prefix}" if prefix else ""
        raise ConfigError(f"unknown keys {unknown}{section}; valid keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    return cls(**kwargs)


_KINDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _coerce(hint: Any, value: Any, field: str) -> Any:
    """``value`` as type ``hint`` (ints become floats where a float is expected); else ConfigError."""
    bounds = None
    if typing.get_origin(hint) is Annotated:
        hint, *extras = typing.get_args(hint)
        bounds = next((e for e in extras if isinstance(e, Range)), None)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{field} is a section; give it as a mapping, got {value!r}")
        return _build(hint, value, f"{field}.")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        if len(members) == 1:  # an optional value: its own type's message (bounds included)
            return _coerce(members[0], value, field)
        for arg in members:
            try:
                return _coerce(arg, value, field)
            except ConfigError:
                continue
        raise ConfigError(f"{field} must be one of {args}, got {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{field} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{field} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{field}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{field} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(a, v, f"{field}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{field} must be a list, got {value!r}")
        return [_coerce(args[0], v, f"{field}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{field} must be a mapping, got {value!r}")
        if not args:
            return dict(value)
        return {_coerce(args[0], k, field): _coerce(args[1], v, f"{field}.{k}") for k, v in value.items()}
    if hint in _KINDS:
        value = _scalar(hint, value, field)
        if bounds is not None:
            bounds.check(value, field)
    return value


def _scalar(hint: type, value: Any, field: str) -> Any:
    ok = isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise ConfigError(f"{field} must be {_KINDS[hint]}, got {value!r}")
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
    unset CLI flags leave the file's value alone. The file is checked on its own first, so an
    error names the file only when the file is wrong, and ``--set`` when an override is.
    """
    data: dict[str, Any] = {}
    where = cls.__name__
    if path is not None:
        path = Path(path)
        where = str(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    config = from_dict(cls, data, where=where)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not overrides:
        return config
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {parent} is not a section")
        node[leaf] = value
    return from_dict(cls, data, where="--set")


def dump_config(config: Any) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)
