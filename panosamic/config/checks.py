"""Reading config values: one error line naming the field, the value and what is allowed."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config value of the wrong type, out of range, or an unknown key."""


def is_comment_key(key: str) -> bool:
    return key.startswith(("//", "_comment"))


def coerce_config(cls: Any, config: Any) -> Any:
    """``config`` as a ``cls``: itself, built from a dict (``cls.from_dict``) or read from a JSON
    path (``cls.from_json``)."""
    if isinstance(config, cls):
        return config
    if isinstance(config, Mapping):
        return cls.from_dict(config)
    if isinstance(config, (str, os.PathLike)):
        return cls.from_json(config)
    raise TypeError(f"config must be a {cls.__name__}, a dict or a JSON path, got {type(config).__name__}")


def check_counts(settings: Any, names: Sequence[str], optional: Sequence[str] = ()) -> None:
    """Raise ``ValueError`` unless each attribute ``names`` of ``settings``, and each of ``optional``
    that is not None, is an integer >= 1 (booleans are not counts)."""
    for name in (*names, *optional):
        v = getattr(settings, name)
        if v is None and name in optional:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}")


def strip_keys(where: str, d: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(d, Mapping):
        raise ConfigError(f"{where}: expected a JSON object, got {type(d).__name__} {d!r}")
    d = {k: v for k, v in d.items() if not is_comment_key(k)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return d


def as_bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value


def as_int(where: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def as_number(where: str, value: Any, *, minimum: float = 0.0, strict: bool = False, maximum: float | None = None) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > minimum if strict else value >= minimum
        ok = ok and (maximum is None or value <= maximum)
    if not ok:
        rng = f"{'>' if strict else '>='} {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ConfigError(f"{where}: expected a number {rng}, got {value!r}")
    return float(value)


def as_choice(where: str, value: Any, allowed: Sequence[Any]) -> Any:
    if value not in allowed:
        raise ConfigError(f"{where}: expected one of {list(allowed)}, got {value!r}")
    return value


def field_names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid JSON: {e}") from None
