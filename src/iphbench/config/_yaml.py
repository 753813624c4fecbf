"""A study YAML and the typed dataclasses of ``iphbench.config``: reading, checking types, plain data, hashes.

Unknown keys are errors (a typo never falls back to a default silently); each value is coerced to
the type its field declares, so a config built in Python and the same config read from YAML are
equal and hash alike.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml


class ConfigError(ValueError):
    """A study or preprocessing configuration is invalid."""


def load_yaml_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read a YAML file holding a mapping; ``what`` names the file in errors ("study file", ...)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of settings, got {type(data).__name__}")
    return data


def plain(obj: Any) -> dict[str, Any]:
    """A config dataclass as plain data in the types its fields declare.

    ``rotate_deg=0`` set in Python becomes ``0.0``, as it does when read from YAML, so a config
    built in code and the same config saved and loaded again hash alike (a study trained from
    Python is not refused when evaluated from its ``config.yaml``).
    """
    return dataclasses.asdict(from_mapping(type(obj), dataclasses.asdict(obj), type(obj).__name__))


def config_hash(obj: Any) -> str:
    """Stable short hash of a dataclass or plain structure (sorted JSON, SHA-256, 16 hex chars)."""
    data = plain(obj) if dataclasses.is_dataclass(obj) and not isinstance(obj, type) else obj
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


T = TypeVar("T")


def from_mapping(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting(s) {unknown} in {where}; valid settings are {sorted(fields)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        kwargs[name] = _coerce(tp, value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where)  # type: ignore[arg-type]
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} does not fit {tp}")
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return str(value)
    return value


__all__ = ["ConfigError", "config_hash", "from_mapping", "load_yaml_mapping", "plain"]
