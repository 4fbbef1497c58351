"""The REST API for threads: list an account's conversations, and the console's actions on one —
private notes, labels, assignment (to an agent or a team), resolution — plus its timeline. Actions
go through the same queue as the console's, named in the timeline as ``API: <token name>``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.keys import STORE
from bot.router.queue import QueueError
from bot.router.webhooks.events import public_thread
from bot.services.teams import TEAM_PATTERN
from bot.web.api.kit import ACCOUNT, BEFORE, BEFORE_ID, LIMIT, ApiRoutes, Call, Param, api_error, reply, visible_thread
from bot.web.api.openapi import list_of, ref
from bot.web.keys import SERVICES
from conversations.thread_models import Thread, ThreadStatus

API = ApiRoutes()
_ID = {"type": "string", "minLength": 1, "maxLength": 64}


async def _thread(request: web.Request, call: Call) -> Thread:
    thread_id = request.match_info["thread_id"]
    return visible_thread(call.principal, await request.app[STORE].threads.get_thread(thread_id), thread_id)


async def _after(request: web.Request, thread: Thread) -> web.Response:
    return reply(public_thread(await request.app[STORE].threads.get_thread(thread.id) or thread))


def _refused(exc: QueueError) -> web.HTTPException:
    return api_error(exc.status if exc.status in (400, 403, 404, 409) else 409, exc.code, str(exc))


@API(
    "GET",
    "/api/threads",
    "The account's threads, most recently active first",
    tag="threads",
    agents=True,
    response=list_of("Thread"),
    query=(
        Param("status", {"type": "string", "enum": [s.value for s in ThreadStatus]}, "only threads in this status"),
        Param("channel", _ID, "only threads on this channel"),
        Param("assignee", _ID, "only threads assigned to this agent id"),
        Param("contact", _ID, "only this contact's threads"),
        ACCOUNT,
        LIMIT,
        BEFORE,
        BEFORE_ID,
    ),
)
async def list_threads(request: web.Request, call: Call) -> web.Response:
    names = {"status": "status", "channel": "channel", "assignee": "assignee", "contact": "contact_id"}
    match = {field: str(call.query[name]) for name, field in names.items() if name in call.query}
    assert call.account_id is not None
    threads = await request.app[STORE].threads.list_threads(
        call.account_id,
        limit=call.query["limit"],
        before=call.query.get("before"),
        before_id=call.query.get("before_id"),
        within=call.principal.thread_match(),  # an agent's token: their inboxes' threads
        **match,
    )
    return reply({"items": [public_thread(t) for t in threads]})


@API(
    "GET",
    "/api/threads/{thread_id}/timeline",
    "What happened to a thread: notes, queueing, assignments, transfers, resolution",
    tag="threads",
    agents=True,
    response=list_of("TimelineEntry"),
)
async def thread_timeline(request: web.Request, call: Call) -> web.Response:
    thread = await _thread(request, call)
    entries = await request.app[STORE].queue.contact_timeline(thread.contact_id)
    return reply({"items": [e.to_json() for e in entries if e.thread_id == thread.id]})


@API(
    "POST",
    "/api/threads/{thread_id}/notes",
    "Add a private note (agents see it, the customer never does)",
    tag="threads",
    agents=True,
    response=ref("Thread"),
    errors=(409,),
    body={
        "type": "object",
        "required": ["text"],
        "additionalProperties": False,
        "properties": {"text": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": r"\S"}},
    },
)
async def add_note(request: web.Request, call: Call) -> web.Response:
    thread = await _thread(request, call)
    try:
        await request.app[SERVICES].threads.note(
            thread.id, call.principal.actor(thread.account_id), call.body["text"].strip()
        )
    except QueueError as exc:
        raise _refused(exc) from None
    return await _after(request, thread)


@API(
    "PUT",
    "/api/threads/{thread_id}/labels",
    "Set the thread's labels",
    tag="threads",
    agents=True,
    response=ref("Thread"),
    errors=(409,),
    body={
        "type": "object",
        "required": ["labels"],
        "additionalProperties": False,
        "properties": {
            "labels": {
                "type": "array",
                "maxItems": 10,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": r"^[\w][\w .:-]{0,31}$"},
            }
        },
    },
)
async def set_labels(request: web.Request, call: Call) -> web.Response:
    thread = await _thread(request, call)
    try:
        await request.app[SERVICES].threads.set_labels(
            thread.id, call.principal.actor(thread.account_id), call.body["labels"]
        )
    except QueueError as exc:
        raise _refused(exc) from None
    return await _after(request, thread)


ASSIGN_BODY: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "anyOf": [{"required": ["agent"]}, {"required": ["team"]}],
    "properties": {
        "agent": {**_ID, "description": "the agent's id: they get it if they are on shift with a free slot"},
        "team": {"type": "string", "pattern": TEAM_PATTERN, "description": "else (or instead) this team's queue"},
        "note": {"type": "string", "maxLength": 1000},
    },
}


@API(
    "POST",
    "/api/threads/{thread_id}/assign",
    "Assign a queued or assigned thread to an agent, or move it to a team's queue",
    tag="threads",
    agents=True,
    response=ref("Thread"),
    errors=(409,),
    body=ASSIGN_BODY,
)
async def assign(request: web.Request, call: Call) -> web.Response:
    thread, body = await _thread(request, call), call.body
    try:
        moved = await request.app[SERVICES].threads.transfer(
            thread.id,
            call.principal.actor(thread.account_id),
            to_agent=body.get("agent"),
            to_team=body.get("team"),
            note=body.get("note", ""),
        )
    except QueueError as exc:
        raise _refused(exc) from None
    return await _after(request, moved)


@API(
    "POST",
    "/api/threads/{thread_id}/resolve",
    "Resolve a queued or assigned thread",
    tag="threads",
    agents=True,
    response=ref("Thread"),
    errors=(409,),
)
async def resolve(request: web.Request, call: Call) -> web.Response:
    thread = await _thread(request, call)
    try:
        await request.app[SERVICES].threads.resolve(thread.id, call.principal.actor(thread.account_id))
    except QueueError as exc:
        raise _refused(exc) from None
    return await _after(request, thread)


def routes() -> list[web.RouteDef]:
    return API.routes()
