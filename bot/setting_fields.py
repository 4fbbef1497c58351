"""How a setting is declared: the helpers every settings section uses, the core's and the channels'.

A setting is a dataclass field with a default, an optional check (which returns what is wrong, or
None), an optional short environment name (``alias``) and a one-line description (``doc``) from
which the configuration reference is generated. Reading a TOML file and converting a value (from
TOML, or an environment variable's text) to its field's type, with the field's check, are here too. This module imports nothing of the project, so
``bot/settings.py`` and each channel's settings section (``bot/handlers/<channel>/settings.py``)
share it without a circle.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(Exception):
    """A setting is missing, unknown or has a bad value; the message is one line for the user."""


Check = Callable[[Any], str | None]  # returns what is wrong, or None


def setting(default: Any, *, check: Check | None = None, alias: str | None = None, doc: str = "") -> Any:
    return field(default=default, metadata={"check": check, "alias": alias, "doc": doc})


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be from {low:g} to {high:g}"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def url(value: str) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    return None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc.strerror}") from None


@dataclass(frozen=True)
class EnvValue:
    """A string from the environment, converted to the key's type when applied."""

    name: str
    text: str


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "dict[str, Any] | None": "a table (JSON in the environment)",
}


def convert(value: Any, f: dataclasses.Field[Any], where: str) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    if isinstance(value, EnvValue):
        value = _parse_text(value.text, kind)
    ok = (
        (kind == "int" and isinstance(value, int) and not isinstance(value, bool))
        or (kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool))
        or (kind == "str" and isinstance(value, str))
        or (kind == "bool" and isinstance(value, bool))
        or (kind.startswith("dict") and isinstance(value, dict))
    )
    if not ok:
        raise SettingsError(f"bad setting {where}: expected {_TYPE_NAMES[kind]}, got {value!r}")
    if kind == "float":
        value = float(value)
    check: Check | None = f.metadata.get("check")
    problem = check(value) if check else None
    if problem:
        raise SettingsError(f"bad setting {where}: {problem}, got {value!r}")
    return value


def _parse_text(text: str, kind: str) -> Any:
    """Environment values are strings: read them as the key's type, or leave them to fail."""
    stripped = text.strip()
    if kind.startswith("dict"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text
    try:
        if kind == "int":
            return int(stripped)
        if kind == "float":
            return float(stripped)
    except ValueError:
        return text
    if kind == "bool":
        lowered = stripped.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
    return text
