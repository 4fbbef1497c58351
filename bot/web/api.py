"""The REST API (first part): threads with their messages, and the outbox with its dead letters.

Authentication: ``Authorization: Bearer <api.token>`` when ``api.token`` is set; without a token
configured, only clients on the loopback interface are served.
"""

from __future__ import annotations

import json
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot.handlers.signatures import same_secret
from bot.keys import OUTBOX, SETTINGS, STORE
from bot.web.errors import json_error
from conversations.models import Message, OutboxItem, OutboxState, Thread, from_epoch_ms, utcnow

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _authorised(request: web.Request) -> web.Response | None:
    token = request.app[SETTINGS].api.token
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not same_secret(given, token):
            return json_error(401, "unauthorized", "send Authorization: Bearer <api.token>")
        return None
    try:
        loopback = ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return json_error(403, "forbidden", "set api.token to use the API from other hosts")
    return None


def guarded(handler: Handler) -> Handler:
    async def wrapper(request: web.Request) -> web.StreamResponse:
        return _authorised(request) or await handler(request)

    return wrapper


def _limit(request: web.Request, default: int = 100, most: int = 1000) -> int:
    value = small_int(request.query.get("limit", str(default)))
    if value is None or not 1 <= value <= most:
        raise web.HTTPBadRequest(text=f"limit must be an integer from 1 to {most}")
    return value


def small_int(raw: str) -> int | None:
    """``raw`` as a non-negative integer of ASCII digits (``"²"`` is a digit to ``str.isdigit``
    but not to ``int``), or ``None``."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


def outbox_json(item: OutboxItem) -> dict[str, Any]:
    doc = item.to_json()
    doc["due_at"] = from_epoch_ms(doc.pop("due_ms")).isoformat()
    return doc


def message_json(message: Message) -> dict[str, Any]:
    return message.to_json()


def thread_json(thread: Thread) -> dict[str, Any]:
    doc = thread.to_json()
    doc.pop("open_key", None)
    return doc


@guarded
async def list_outbox(request: web.Request) -> web.Response:
    state_name = request.query.get("state")
    states = {s.value: s for s in OutboxState}
    if state_name is not None and state_name not in states:
        raise web.HTTPBadRequest(text=f"state must be one of {', '.join(states)}")
    items = await request.app[STORE].list_outbox(
        states[state_name] if state_name else None, request.query.get("account"), _limit(request)
    )
    return web.json_response({"items": [outbox_json(i) for i in items]}, dumps=_dumps)


@guarded
async def get_outbox(request: web.Request) -> web.Response:
    item = await request.app[STORE].get_outbox(request.match_info["item_id"])
    if item is None:
        raise web.HTTPNotFound(text=f"no outbox item {request.match_info['item_id']}")
    return web.json_response(outbox_json(item), dumps=_dumps)


@guarded
async def retry_outbox(request: web.Request) -> web.Response:
    """Send a dead-lettered item again (after fixing what made it fail)."""
    item_id = request.match_info["item_id"]
    item = await request.app[STORE].revive_outbox(item_id, utcnow())
    if item is None:
        if await request.app[STORE].get_outbox(item_id) is None:
            raise web.HTTPNotFound(text=f"no outbox item {item_id}")
        return json_error(409, "not_dead", f"outbox item {item_id} is not dead-lettered")
    request.app[OUTBOX].wake()
    return web.json_response(outbox_json(item), dumps=_dumps)


@guarded
async def get_thread(request: web.Request) -> web.Response:
    store = request.app[STORE]
    thread = await store.get_thread(request.match_info["thread_id"])
    if thread is None:
        raise web.HTTPNotFound(text=f"no thread {request.match_info['thread_id']}")
    messages = await store.thread_messages(thread.id, _limit(request, default=200))
    return web.json_response(
        {"thread": thread_json(thread), "messages": [message_json(m) for m in messages]}, dumps=_dumps
    )


@guarded
async def get_message(request: web.Request) -> web.Response:
    """One message with its dispatch decision and delivery status (``say`` follows it here)."""
    message = await request.app[STORE].get_message(request.match_info["message_id"])
    if message is None:
        raise web.HTTPNotFound(text=f"no message {request.match_info['message_id']}")
    return web.json_response(message_json(message), dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/outbox", list_outbox),
        web.get("/api/outbox/{item_id}", get_outbox),
        web.post("/api/outbox/{item_id}/retry", retry_outbox),
        web.get("/api/threads/{thread_id}", get_thread),
        web.get("/api/messages/{message_id}", get_message),
    ]
