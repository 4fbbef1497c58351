"""Custom attributes of contacts: an account's admin defines them (a key, a label, a kind — text,
number, date or a list of options), agents fill them in beside a conversation. Values are checked
by their kind and kept on the contact (exported and erased with it)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

KINDS = ("text", "number", "date", "list")
MAX_ATTRIBUTES = 30
MAX_TEXT = 500
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class FieldError(ValueError):
    """A definition or a value that cannot be kept; the message says which and why."""


@dataclass(frozen=True)
class Attribute:
    key: str
    label: str
    kind: str
    options: tuple[str, ...] = ()

    def to_doc(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "kind": self.kind, "options": list(self.options)}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Attribute:
        return cls(str(doc["key"]), str(doc["label"]), str(doc["kind"]), tuple(map(str, doc.get("options") or ())))

    def value_of(self, raw: str) -> str | float | None:
        """The value as kept (``None``: cleared); ``FieldError`` when it is not of this kind."""
        text = raw.strip()
        if not text:
            return None
        if self.kind == "number":
            try:
                return float(text)
            except ValueError:
                raise FieldError(f"{self.label}: a number, such as 42 or 3.5") from None
        if self.kind == "date":
            try:
                return date.fromisoformat(text).isoformat()
            except ValueError:
                raise FieldError(f"{self.label}: a date as YYYY-MM-DD") from None
        if self.kind == "list" and text not in self.options:
            raise FieldError(f"{self.label}: one of {', '.join(self.options)}")
        return text[:MAX_TEXT]


def defined(raw: Any) -> list[Attribute]:
    """The account's attributes as stored (``contact_attributes`` on the account)."""
    return [Attribute.from_doc(doc) for doc in raw or () if isinstance(doc, Mapping)]


def new_attribute(existing: list[Attribute], key: str, label: str, kind: str, options: str) -> Attribute:
    """A definition checked against the account's others."""
    key, label = key.strip().lower(), label.strip()[:60]
    if not _KEY.match(key):
        raise FieldError("the key is 1-32 of a-z, 0-9 and _, starting with a letter")
    if any(a.key == key for a in existing):
        raise FieldError(f"there is an attribute {key} already")
    if len(existing) >= MAX_ATTRIBUTES:
        raise FieldError(f"at most {MAX_ATTRIBUTES} attributes")
    if kind not in KINDS:
        raise FieldError(f"the kind is one of {', '.join(KINDS)}")
    choices = tuple(dict.fromkeys(o.strip()[:60] for o in options.split(",") if o.strip()))
    if kind == "list" and not choices:
        raise FieldError("a list needs its options, separated by commas")
    return Attribute(key, label or key, kind, choices if kind == "list" else ())


def values_from(attributes: list[Attribute], form: Mapping[str, Any]) -> dict[str, str | float]:
    """Every defined attribute's value from a form (``attr_<key>``), checked; cleared ones left out."""
    values: dict[str, str | float] = {}
    for attribute in attributes:
        value = attribute.value_of(str(form.get(f"attr_{attribute.key}", "")))
        if value is not None:
            values[attribute.key] = value
    return values
