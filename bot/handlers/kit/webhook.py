"""The one way a provider webhook is handled, whatever the channel.

verify the signature (401/403, nothing stored) -> parse every entry of the payload (400 with a
one-line reason if malformed; a well-formed event we do not handle is acknowledged and logged) ->
record each message and apply each status report -> only then answer 200. A store outage answers
503 so the provider retries; entries recorded before the outage are deduplicated on the retry.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from bot.handlers.kit.protocol import UnsupportedEvent
from bot.keys import PIPELINE
from bot.logs import log_event
from bot.router.sanitize import checked_event
from conversations.traffic import MessageEdit, ProviderEvent, StatusUpdate

if TYPE_CHECKING:
    from bot.router.inbound import InboundPipeline

log = logging.getLogger("omnirouter.handlers.webhook")


class WebhookSource(Protocol):
    """The part of a channel adapter the webhook flow uses."""

    name: str

    async def verify(self, request: web.Request, body: bytes) -> None: ...

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]: ...


async def receive_webhook(request: web.Request, adapter: WebhookSource) -> web.Response:
    body = await request.read()
    await adapter.verify(request, body)
    try:
        items = adapter.parse(body, request.headers)
    except UnsupportedEvent as exc:
        log_event(log, "webhook.unsupported", channel=adapter.name, reason=str(exc)[:200])
        return web.json_response({"ok": True, "ignored": str(exc)})
    items = [checked_event(item) for item in items]  # a bad entry refuses the payload before any is stored
    counts = await record_events(request.app[PIPELINE], items)
    return web.json_response({"ok": True, **counts})


async def record_events(pipeline: InboundPipeline, items: Iterable[ProviderEvent]) -> dict[str, int]:
    """Record messages, apply edits and status reports, in order; the counts of each outcome.

    Raises ``StoreUnavailable`` on an outage: whatever was recorded before it is deduplicated when
    the provider delivers the payload again.
    """
    counts = Counter(recorded=0, duplicates=0, statuses=0)
    for item in items:
        if isinstance(item, StatusUpdate):
            await pipeline.apply_status(item)
            counts["statuses"] += 1
        elif isinstance(item, MessageEdit):
            counts["edits"] += 1
            if await pipeline.apply_edit(item) is not None:
                counts["recorded"] += 1
        else:
            result, _ = await pipeline.receive(item)
            counts["duplicates" if result.duplicate else "recorded"] += 1
    return dict(counts)
