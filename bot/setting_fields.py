"""How a setting is declared: the helpers every settings section uses, the core's and the channels'.

A setting is a dataclass field with a default, an optional check (which returns what is wrong, or
None), an optional short environment name (``alias``) and a one-line description (``doc``) from
which the configuration reference is generated. This module imports nothing of the project, so
``bot/settings.py`` and each channel's settings section (``bot/handlers/<channel>/settings.py``)
share it without a circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
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
