"""WhatsApp opt-outs: a customer's STOP and START, and Meta's refusal to deliver marketing to a
customer who stopped it in WhatsApp (error 131050).

WhatsApp has no carrier keywords; the words are the SMS ones a conversation does not use otherwise
(``YES``, ``END``, ``CANCEL``, ``HELP`` are ordinary answers in a chat, not keywords here), and the
same in Latvian and Russian. Matched on the whole message, any case. The router records them as
it records SMS STOP and START (``meta["keyword"]``): a campaign on WhatsApp skips a customer who
said STOP until they say START. Replies to the customer's own messages are not affected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from conversations.traffic import Inbound, ProviderEvent

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "OPTOUT", "ATRAKSTĪTIES", "СТОП", "ОТПИСАТЬСЯ"})
START_WORDS = frozenset({"START", "UNSTOP", "PIERAKSTĪTIES", "СТАРТ", "ПОДПИСАТЬСЯ"})
# Cloud API: "this user has chosen to stop receiving marketing messages from your business"
STOPPED_MARKETING = 131050


def keyword_of(inbound: Inbound) -> str | None:
    """``stop`` or ``start`` when a text message is one of the words, else ``None``."""
    if inbound.meta.get("type") != "text" or inbound.attachments:
        return None
    word = inbound.text.strip().upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None


def mark_keywords(events: Sequence[ProviderEvent], replies: Mapping[str, str]) -> list[ProviderEvent]:
    """``events`` with every STOP or START message marked for the router (``meta["keyword"]``),
    with the configured answer to it (empty: none)."""
    marked: list[ProviderEvent] = []
    for event in events:
        if isinstance(event, Inbound) and (keyword := keyword_of(event)):
            event = dataclasses.replace(
                event, meta={**event.meta, "keyword": {"kind": keyword, "reply": replies.get(keyword, "")}}
            )
        marked.append(event)
    return marked
