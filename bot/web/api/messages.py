"""The REST API (first part): a thread with its messages, one message, and the outbox with its
dead letters. Authentication and account scoping: ``bot/web/api/kit.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import OUTBOX, STORE
from bot.router.webhooks.events import public_thread
from bot.web.access import Access, mark
from bot.web.api.kit import (
    LIMIT,
    ApiRoutes,
    Call,
    Param,
    api_error,
    authenticate,
    reply,
    visible,
    visible_message,
    visible_thread,
)
from bot.web.api.openapi import list_of, ref
from conversations.models import from_epoch_ms, utcnow
from conversations.thread_models import Message, OutboxItem, OutboxState, Thread

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
API = ApiRoutes()
PRINCIPAL = web.RequestKey("api_principal", object) if hasattr(web, "RequestKey") else "omnirouter.api_principal"


def guarded(handler: Handler) -> Handler:
    """For a route outside an ``ApiRoutes`` table: any valid token (the principal is in
    ``request[PRINCIPAL]``; the handler scopes by account itself). Prefer an ``ApiRoutes`` table:
    it checks, scopes and documents the route."""

    async def wrapper(request: web.Request) -> web.StreamResponse:
        request[PRINCIPAL] = await authenticate(request)
        return await handler(request)

    return mark(wrapper, Access("token"))


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
    return public_thread(thread)


_STATE = Param("state", {"type": "string", "enum": [s.value for s in OutboxState]}, "only items in this state")
_OUTBOX_ACCOUNT = Param(
    "account",
    {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{1,31}$"},
    "install-wide tokens: only this account's items (default: every account's)",
)


@API(
    "GET",
    "/api/outbox",
    "List outbound sends, newest first (state=dead: the dead letters)",
    tag="outbox",
    response=list_of("OutboxItem"),
    query=(_STATE, _OUTBOX_ACCOUNT, LIMIT),
)
async def list_outbox(request: web.Request, call: Call) -> web.Response:
    principal, named = call.principal, call.query.get("account")
    if not principal.superadmin and named not in (None, principal.account_id):
        raise api_error(403, "forbidden", f"this token belongs to account {principal.account_id}")
    state = call.query.get("state")
    items = await request.app[STORE].outbox.list_outbox(
        OutboxState(state) if state else None, principal.account_id or named, call.query["limit"]
    )
    return reply({"items": [outbox_json(i) for i in items]})


@API("GET", "/api/outbox/{item_id}", "One outbound send", tag="outbox", response=ref("OutboxItem"))
async def get_outbox(request: web.Request, call: Call) -> web.Response:
    item_id = request.match_info["item_id"]
    item = visible(call.principal, await request.app[STORE].outbox.get_outbox(item_id), "outbox item", item_id)
    return reply(outbox_json(item))


@API(
    "POST",
    "/api/outbox/{item_id}/retry",
    "Send a dead-lettered item again (after fixing what made it fail)",
    tag="outbox",
    response=ref("OutboxItem"),
    errors=(409,),
)
async def retry_outbox(request: web.Request, call: Call) -> web.Response:
    item_id, store = request.match_info["item_id"], request.app[STORE]
    visible(call.principal, await store.outbox.get_outbox(item_id), "outbox item", item_id)
    item = await store.outbox.revive_outbox(item_id, utcnow())
    if item is None:
        raise api_error(409, "not_dead", f"outbox item {item_id} is not dead-lettered")
    request.app[OUTBOX].wake()
    await audit.record(store, item.account_id, call.principal.audit_actor, "outbox.retry", item.id)
    return reply(outbox_json(item))


_THREAD_WITH_MESSAGES = {
    "type": "object",
    "required": ["thread", "messages"],
    "properties": {"thread": ref("Thread"), "messages": {"type": "array", "items": ref("Message")}},
}
_MESSAGES_LIMIT = Param(
    "limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200}, "how many of the newest messages"
)


@API(
    "GET",
    "/api/threads/{thread_id}",
    "A thread with its newest messages, oldest first",
    tag="threads",
    agents=True,
    response=_THREAD_WITH_MESSAGES,
    query=(_MESSAGES_LIMIT,),
)
async def get_thread(request: web.Request, call: Call) -> web.Response:
    store, thread_id = request.app[STORE], request.match_info["thread_id"]
    thread = visible_thread(call.principal, await store.threads.get_thread(thread_id), thread_id)
    messages = await store.messages.thread_messages(thread.id, call.query["limit"])
    return reply({"thread": thread_json(thread), "messages": [message_json(m) for m in messages]})


@API(
    "GET",
    "/api/messages/{message_id}",
    "One message with its dispatch decision and delivery status",
    tag="messages",
    agents=True,
    response=ref("Message"),
)
async def get_message(request: web.Request, call: Call) -> web.Response:
    message_id = request.match_info["message_id"]
    return reply(message_json(await visible_message(request, call.principal, message_id)))


def routes() -> list[web.RouteDef]:
    return API.routes()
