"""Untrusted provider JSON, read through a validating view.

Every access names the field and the type it expects, so a payload that is not what the provider
documents becomes one ``MalformedPayload`` naming the path (``entry[0].changes[1].value: expected
an object``), never a ``KeyError`` deep in a handler and never a 500.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.handlers.kit.protocol import MalformedPayload

_MISSING = object()
INT64 = (-(2**63), 2**63 - 1)  # what a stored integer can hold (BSON int64)


def load_json(body: bytes | str) -> Any:
    """Untrusted JSON text as Python values; ``MalformedPayload`` for anything that is not JSON a
    router can handle: invalid UTF-8 or syntax, nesting too deep for the decoder (``RecursionError``),
    integers too long to convert (``ValueError``)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayload(f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedPayload("body is not acceptable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise MalformedPayload(f"body is not acceptable JSON: {str(exc)[:120]}") from None


def json_or_none(body: bytes | str) -> Any:
    """A provider's answer as :func:`load_json` reads it, or ``None`` when it is not JSON (an error
    page, an empty body): the caller says what it expected instead."""
    try:
        return load_json(body)
    except MalformedPayload:
        return None


class Payload:
    """A JSON object at ``path`` inside a provider payload."""

    __slots__ = ("path", "raw")

    def __init__(self, raw: dict[str, Any], path: str = "$") -> None:
        self.raw = raw
        self.path = path

    @classmethod
    def parse(cls, body: bytes) -> Payload:
        """The body as a JSON object; ``MalformedPayload`` if it is not one."""
        value = load_json(body)
        if not isinstance(value, dict):
            raise MalformedPayload("body must be a JSON object")
        return cls(value)

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def _get(self, key: str, kinds: tuple[type, ...], what: str, required: bool) -> Any:
        value = self.raw.get(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise MalformedPayload(f"{self.path}.{key} is missing")
            return None
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise MalformedPayload(f"{self.path}.{key}: expected {what}, got {type(value).__name__}")
        if isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
            raise MalformedPayload(f"{self.path}.{key}: integer out of range")
        return value

    def string(self, key: str) -> str:
        value: str = self._get(key, (str,), "a string", True)
        return value

    def identifier(self, key: str) -> str:
        """A provider id (message, media, sender): a required string with something in it."""
        value = self.string(key).strip()
        if not value or len(value) > 512:
            raise MalformedPayload(f"{self.path}.{key}: expected an id, got {'nothing' if not value else 'too long'}")
        return value

    def opt_string(self, key: str) -> str | None:
        value: str | None = self._get(key, (str,), "a string", False)
        return value

    def integer(self, key: str) -> int:
        value: int = self._get(key, (int,), "an integer", True)
        return value

    def opt_integer(self, key: str) -> int | None:
        value: int | None = self._get(key, (int,), "an integer", False)
        return value

    def opt_number(self, key: str) -> float | None:
        value: float | None = self._get(key, (int, float), "a number", False)
        return value

    def timestamp(self, key: str) -> datetime:
        """A required Unix time in seconds, as a number or a numeric string (providers send both)."""
        at = unix_time(self._get(key, (str, int), "a Unix time", True))
        assert at is not None  # a required value is never None
        return at

    def obj(self, key: str) -> Payload:
        return Payload(self._get(key, (dict,), "an object", True), f"{self.path}.{key}")

    def opt_obj(self, key: str) -> Payload | None:
        value = self._get(key, (dict,), "an object", False)
        return None if value is None else Payload(value, f"{self.path}.{key}")

    def objects(self, key: str, required: bool = False) -> list[Payload]:
        """A list of objects (empty when absent and not ``required``)."""
        items = self._get(key, (list,), "a list", required) or []
        out = []
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                raise MalformedPayload(f"{self.path}.{key}[{n}]: expected an object, got {type(item).__name__}")
            out.append(Payload(item, f"{self.path}.{key}[{n}]"))
        return out


def unix_time(value: int | str | None) -> datetime | None:
    """A Unix timestamp (seconds, as a number or a numeric string) as an aware datetime."""
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise MalformedPayload(f"timestamp {value!r} is not a Unix time") from None


def e164(number: str) -> str | None:
    """A phone number as E.164 (``+`` and digits), or ``None`` if it has too few digits."""
    digits = "".join(c for c in number if c.isdigit())
    return f"+{digits}" if 7 <= len(digits) <= 15 else None
