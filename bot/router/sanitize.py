"""The last check before untrusted provider data is stored: every value must be storable.

Channel parsers validate what they read, but the strings and numbers they pass on come from
outside: JSON may carry lone UTF-16 surrogates (``"\\ud800"``), mail headers carry the
``surrogateescape`` of raw 8-bit bytes, and providers may send integers larger than a stored
integer can hold. The driver refuses to encode those, which would fail the request after
verification and parsing succeeded. So every event is made storable here, once, for every channel:
a lone surrogate becomes U+FFFD, NUL characters are dropped (a key with one cannot be stored at all),
and integers beyond 64 bits are kept as their decimal string.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

_SURROGATE = re.compile("[\ud800-\udfff]")
_INT64 = (-(2**63), 2**63 - 1)

T = TypeVar("T")


def storable_text(value: str) -> str:
    """``value`` without lone surrogates (as U+FFFD) and NUL characters."""
    if value.isascii():
        return value.replace("\x00", "") if "\x00" in value else value
    return _SURROGATE.sub("\ufffd", value).replace("\x00", "")


def storable(value: T) -> T:
    """``value`` (an event dataclass, or anything inside one) with every part made storable;
    the same object when nothing needed changing."""
    return _clean(value)  # type: ignore[no-any-return]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, bool) or value is None or isinstance(value, (float, datetime)):
        return value
    if isinstance(value, int):
        return value if _INT64[0] <= value <= _INT64[1] else str(value)
    if isinstance(value, Mapping):
        cleaned = {storable_text(str(k)): _clean(v) for k, v in value.items()}
        same = len(cleaned) == len(value) and all(k in value and cleaned[k] is value[k] for k in cleaned)
        return value if same else cleaned
    if isinstance(value, (list, tuple)):
        items = [_clean(v) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else type(value)(items)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            old = getattr(value, f.name)
            new = _clean(old)
            if new is not old:
                changes[f.name] = new
        return dataclasses.replace(value, **changes) if changes else value
    return value


def checked_event(event: T) -> T:
    """``event`` made storable, refused (``MalformedPayload``) when what identifies it is empty
    once cleaned — an id of NUL characters would make every such message one dedup key."""
    from bot.handlers.kit.protocol import MalformedPayload
    from conversations.traffic import CallEvent, ConsentChange, Inbound, MessageEdit, StatusUpdate

    event = storable(event)
    inner = event.message if isinstance(event, MessageEdit) else event
    if isinstance(inner, (Inbound, StatusUpdate, CallEvent)) and not inner.external_id.strip():
        raise MalformedPayload(f"the {inner.channel} message id is empty")
    if isinstance(inner, Inbound) and not inner.sender.address.strip():
        raise MalformedPayload(f"the {inner.channel} sender is empty")
    if isinstance(inner, CallEvent) and not inner.customer.strip():
        raise MalformedPayload(f"the {inner.channel} caller is empty")
    if isinstance(inner, ConsentChange) and not inner.address.strip():
        raise MalformedPayload(f"the {inner.channel} customer of a preference is empty")
    return event
