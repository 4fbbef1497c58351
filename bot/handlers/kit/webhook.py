"""The one way a provider webhook is handled, whatever the channel.

verify the signature (401/403, nothing stored) -> parse every entry of the payload (400 with a
one-line reason if malformed; a well-formed event we do not handle is acknowledged and logged) ->
hand them to the channel's sink (which checks every entry is storable before storing any, then
records each message and applies each status report) -> only then answer 200. A store outage answers
503 so the provider retries; entries recorded before the outage are deduplicated on the retry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from bot.handlers.kit.protocol import UnsupportedEvent
from bot.handlers.kit.sink import InboundSink
from bot.logs import log_event
from conversations.traffic import ProviderEvent

log = logging.getLogger("omnirouter.handlers.webhook")


class WebhookSource(Protocol):
    """The part of a channel adapter the webhook flow uses."""

    name: str

    async def verify(self, request: web.Request, body: bytes) -> None: ...

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]: ...


async def receive_webhook(request: web.Request, adapter: WebhookSource, sink: InboundSink) -> web.Response:
    body = await request.read()
    await adapter.verify(request, body)
    try:
        items = adapter.parse(body, request.headers)
    except UnsupportedEvent as exc:
        log_event(log, "webhook.unsupported", channel=adapter.name, reason=str(exc)[:200])
        return web.json_response({"ok": True, "ignored": str(exc)})
    counts = await sink.record(items)  # a bad entry refuses the payload before any is stored
    return web.json_response({"ok": True, **counts})
