"""The stored documents' common ground: times as epoch milliseconds, values as the store keeps
them, and ``Document``, the dataclass base every stored record round-trips through.

The records live with their aggregate: normalised traffic in ``traffic.py``; contacts, threads,
messages and the outbox in ``thread_models.py``; agents and their console records in
``agent_models.py``; accounts, API tokens, webhooks and the audit log in ``tenant_models.py``.
Every stored document carries ``account_id``: one deployment serves many businesses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Self

from conversations.traffic import Attachment, Identity


def utcnow() -> datetime:
    """Now, timezone-aware and truncated to milliseconds (what BSON dates can hold)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def epoch_ms(moment: datetime) -> int:
    """A moment as integer milliseconds since the epoch.

    Lease and schedule times are stored this way: the embedded server compares stored dates at
    one-second precision, integers it compares exactly (and so does MongoDB).
    """
    return int(moment.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def load_enum(kind: type[StrEnum]) -> Callable[[Any], Any]:
    """A loader of a stored enum value (``None`` stays ``None``)."""
    return lambda value: None if value is None else kind(value)


def load_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value or ())


def load_time(value: Any) -> datetime | None:
    """A stored time back as an aware datetime: epoch milliseconds (how we store every time), or
    a date or ISO string written by other tools."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return from_epoch_ms(int(value))
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise TypeError(f"not a stored time: {value!r}")


def stored(value: Any) -> Any:
    """A value as the store keeps it: times as epoch ms, enums as strings, records as documents.
    Wrap what goes into ``$set`` and into query comparisons with it."""
    return _dump(value)


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_ms(value)
    if isinstance(value, (Identity, Attachment)):
        return value.to_doc()
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    return value


class Document:
    """A dataclass stored as one MongoDB document; ``id`` is stored as ``_id``.

    ``None`` fields are left out of the stored document, so optional keys stay absent (partial
    unique indexes rely on that). Every time is stored as integer epoch milliseconds and read back
    as an aware ``datetime``: the embedded server stores a date written by ``$set`` as a string
    and compares dates at one-second precision, while integers behave the same everywhere and
    make durations plain subtraction in aggregation pipelines. Other fields that need converting
    on load name a loader in ``LOADERS``.
    """

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for name, key, _ in _fields_of(type(self)):
            value = getattr(self, name)
            if value is not None:
                doc[key] = _dump(value)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Self:
        kwargs: dict[str, Any] = {}
        for name, key, loader in _fields_of(cls):
            if key in doc:
                kwargs[name] = loader(doc[key]) if loader else doc[key]
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        """The record for the API: ``id`` instead of ``_id``, times as ISO 8601 strings."""
        doc: dict[str, Any] = {}
        for name, _, _ in _fields_of(type(self)):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value.isoformat() if isinstance(value, datetime) else _dump(value)
        return doc


_Fields = tuple[tuple[str, str, Callable[[Any], Any] | None], ...]
_FIELDS: dict[type, _Fields] = {}


def _fields_of(cls: type[Document]) -> _Fields:
    """A record class's fields as ``(attribute, stored key, loader)``, worked out once per class
    (``dataclasses.fields`` and the type checks cost more than the copying, per document)."""
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = _work_out_fields(cls)
    return found


def _work_out_fields(cls: type[Document]) -> _Fields:
    fields = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        loader = cls.LOADERS.get(f.name)
        if loader is None and "datetime" in str(f.type):
            loader = load_time
        elif loader is None and f.type == "bool":  # the embedded server returns a $set bool as 0/1
            loader = bool
        fields.append((f.name, "_id" if f.name == "id" else f.name, loader))
    return tuple(fields)
