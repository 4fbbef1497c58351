"""The one way a provider webhook is handled, whatever the channel.

verify the signature (401/403, nothing stored) -> parse every entry of the payload (400 with a
one-line reason if malformed; a well-formed event we do not handle is acknowledged and logged) ->
record each message and apply each status report -> only then answer 200. A store outage answers
503 so the provider retries; entries recorded before the outage are deduplicated on the retry.
"""

from __future__ import annotations

import logging

from aiohttp import web

from bot.handlers.base import ChannelAdapter, UnsupportedEvent
from bot.keys import PIPELINE
from bot.logs import log_event
from conversations.models import StatusUpdate

log = logging.getLogger("omnirouter.handlers.webhook")


async def receive_webhook(request: web.Request, adapter: ChannelAdapter) -> web.Response:
    body = await request.read()
    await adapter.verify(request, body)
    try:
        items = adapter.parse(body, request.headers)
    except UnsupportedEvent as exc:
        log_event(log, "webhook.unsupported", channel=adapter.name, reason=str(exc)[:200])
        return web.json_response({"ok": True, "ignored": str(exc)})
    pipeline = request.app[PIPELINE]
    recorded = duplicates = statuses = 0
    for item in items:
        if isinstance(item, StatusUpdate):
            await pipeline.apply_status(item)
            statuses += 1
            continue
        result, _ = await pipeline.receive(item)
        if result.duplicate:
            duplicates += 1
        else:
            recorded += 1
    return web.json_response(
        {"ok": True, "recorded": recorded, "duplicates": duplicates, "statuses": statuses}
    )
