"""What a channel does to the events of an account's extra inbox (``conversations/inboxes.py``).

Every message of an extra inbox names the inbox, so its conversation is the inbox's. Where the
provider's ids are only unique per bot (a Telegram message id counts up in each chat of each bot),
the message's external id is scoped to the inbox, so two bots' first messages from one person are
two messages, not one and a duplicate. A file id is only good with the bot that received it: its
reference names the inbox, and :func:`file_of` tells the adapter which client fetches it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from conversations.traffic import Inbound, MessageEdit, ProviderEvent

_MARK = "inbox:"


def in_inbox(items: Sequence[ProviderEvent], inbox_id: str | None, scope_ids: bool) -> list[ProviderEvent]:
    """``items`` as events of ``inbox_id`` (unchanged for the account's first inbox)."""
    if inbox_id is None:
        return list(items)
    return [_in_inbox(item, inbox_id, scope_ids) for item in items]


def _in_inbox(item: ProviderEvent, inbox_id: str, scope_ids: bool) -> ProviderEvent:
    if isinstance(item, MessageEdit):
        return dataclasses.replace(item, message=_inbound(item.message, inbox_id, scope_ids))
    if isinstance(item, Inbound):
        return _inbound(item, inbox_id, scope_ids)
    return item


def _inbound(inbound: Inbound, inbox_id: str, scope_ids: bool) -> Inbound:
    attachments = tuple(
        dataclasses.replace(a, provider_ref=f"{_MARK}{inbox_id}/{a.provider_ref}")
        if a.provider_ref and a.kind not in ("location", "contact")
        else a
        for a in inbound.attachments
    )
    external_id = f"{inbox_id}/{inbound.external_id}" if scope_ids else inbound.external_id
    return dataclasses.replace(inbound, inbox_id=inbox_id, external_id=external_id, attachments=attachments)


def file_of(ref: str) -> tuple[str | None, str]:
    """The inbox a file reference was received in (``None``: the account's first) and the
    provider's own file id."""
    if ref.startswith(_MARK) and "/" in ref:
        inbox_id, _, file_id = ref[len(_MARK) :].partition("/")
        return inbox_id, file_id
    return None, ref
