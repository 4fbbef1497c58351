"""The REST API for people: an account's contacts (with their identities and threads) and its
agents (list, add — the password is returned once —, change teams, capacity, role, deactivate)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import STORE
from bot.router.webhooks.events import public_thread
from bot.services.agents import add_agent, change_agent, chosen_inboxes
from bot.services.contact_merge import UNDO_DAYS, MergeRefused, merge, undo_until, unmerge
from bot.services.teams import TEAM_PATTERN
from bot.web.admin.agents import LOGIN_PATTERN
from bot.web.api.kit import ACCOUNT, BEFORE, BEFORE_ID, LIMIT, ApiRoutes, Call, api_error, reply, visible
from bot.web.api.openapi import list_of, ref
from conversations.agent_models import Agent, Role
from conversations.contact_merges import ContactMerge

API = ApiRoutes()


def agent_json(agent: Agent) -> dict[str, Any]:
    doc = agent.to_json()
    doc.pop("password_hash", None)
    doc.setdefault("inboxes", None)  # said, not left out: null is every inbox
    return doc


@API(
    "GET",
    "/api/contacts",
    "The account's contacts, most recently active first",
    tag="contacts",
    response=list_of("Contact"),
    query=(ACCOUNT, LIMIT, BEFORE, BEFORE_ID),
)
async def list_contacts(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    contacts = await request.app[STORE].contacts.list_contacts(
        call.account_id,
        limit=call.query["limit"],
        before=call.query.get("before"),
        before_id=call.query.get("before_id"),
    )
    return reply({"items": [c.to_json() for c in contacts]})


@API(
    "GET",
    "/api/contacts/{contact_id}",
    "A contact with their identities and threads",
    tag="contacts",
    response={
        "type": "object",
        "required": ["contact", "threads"],
        "properties": {"contact": ref("Contact"), "threads": {"type": "array", "items": ref("Thread")}},
    },
)
async def get_contact(request: web.Request, call: Call) -> web.Response:
    store, contact_id = request.app[STORE], request.match_info["contact_id"]
    contact = visible(call.principal, await store.contacts.get_contact(contact_id), "contact", contact_id)
    threads = await store.threads.contact_threads(contact.account_id, contact.id)
    return reply({"contact": contact.to_json(), "threads": [public_thread(t) for t in threads]})


_MERGE = {
    "type": "object",
    "required": ["id", "keep_id", "gone_id", "state", "at", "undo_until", "threads"],
    "properties": {
        "id": {"type": "string"},
        "keep_id": {"type": "string", "description": "the contact kept"},
        "gone_id": {"type": "string", "description": "the contact merged into it"},
        "state": {"type": "string", "enum": ["planned", "done", "undoing", "undone"]},
        "at": {"type": "string", "format": "date-time"},
        "undo_until": {"type": "string", "format": "date-time"},
        "threads": {"type": "array", "items": {"type": "string"}, "description": "the conversations moved"},
        "attributes": {"type": "array", "items": {"type": "string"}, "description": "attributes filled in"},
    },
}
_CONTACT_ID = {"type": "string", "pattern": "^con_[0-9a-f]{24}$"}


def merge_json(record: ContactMerge) -> dict[str, Any]:
    return {
        "id": record.id,
        "keep_id": record.keep_id,
        "gone_id": record.gone_id,
        "state": record.state,
        "at": record.at,
        "undo_until": undo_until(record),
        "threads": list(record.threads),
        "attributes": list(record.attributes),
    }


@API(
    "POST",
    "/api/contacts/{contact_id}/merge",
    "Merge another contact (`from`) into this one: its identities, conversations and the attributes this one lacks",
    tag="contacts",
    body={"type": "object", "required": ["from"], "additionalProperties": False, "properties": {"from": _CONTACT_ID}},
    errors=(400, 404, 409),
    response=_MERGE,
    description=f"Undo within {UNDO_DAYS} days with `POST /api/contact-merges/{{merge_id}}/undo`.",
)
async def merge_contacts(request: web.Request, call: Call) -> web.Response:
    store, contact_id = request.app[STORE], request.match_info["contact_id"]
    keep = visible(call.principal, await store.contacts.get_contact(contact_id), "contact", contact_id)
    try:
        record = await merge(store, keep.account_id, keep.id, call.body["from"], call.principal.audit_actor)
    except MergeRefused as exc:
        raise api_error(exc.status, "not_found" if exc.status == 404 else "refused", exc.reason) from None
    return reply(merge_json(record))


@API(
    "POST",
    "/api/contact-merges/{merge_id}/undo",
    f"Undo a merge of contacts (within {UNDO_DAYS} days)",
    tag="contacts",
    errors=(404, 409),
    response=_MERGE,
)
async def undo_merge(request: web.Request, call: Call) -> web.Response:
    store, merge_id = request.app[STORE], request.match_info["merge_id"]
    record = visible(call.principal, await store.merges.get_merge(merge_id), "merge", merge_id)
    try:
        undone = await unmerge(store, record.account_id, record.id, call.principal.audit_actor)
    except MergeRefused as exc:
        raise api_error(exc.status, "not_found" if exc.status == 404 else "refused", exc.reason) from None
    return reply(merge_json(undone))


@API("GET", "/api/agents", "The account's agents", tag="agents", response=list_of("Agent"), query=(ACCOUNT,))
async def list_agents(request: web.Request, call: Call) -> web.Response:
    assert call.account_id is not None
    return reply({"items": [agent_json(a) for a in await request.app[STORE].agents.list_agents(call.account_id)]})


_ROLE = {"type": "string", "enum": [Role.AGENT.value, Role.SUPERVISOR.value, Role.ADMIN.value]}
_TEAMS = {"type": "array", "maxItems": 20, "uniqueItems": True, "items": {"type": "string", "pattern": TEAM_PATTERN}}
_CAPACITY = {"type": "integer", "minimum": 1, "maximum": 100}
_INBOXES = {
    "type": ["array", "null"],
    "maxItems": 200,
    "uniqueItems": True,
    "items": {"type": "string", "pattern": "^(inb_[0-9a-f]{24}|first:[a-z]{1,20})$"},
    "description": "the keys of the inboxes whose conversations the agent sees (an inbox's id, or "
    "first:<channel> for the account's first inbox of a channel); null: every inbox",
}
_NAME = {"type": "string", "minLength": 1, "maxLength": 80}
NEW_AGENT = {
    "type": "object",
    "required": ["login"],
    "additionalProperties": False,
    "properties": {
        "login": {"type": "string", "pattern": LOGIN_PATTERN},
        "name": _NAME,
        "role": _ROLE,
        "teams": _TEAMS,
        "capacity": _CAPACITY,
        "inboxes": _INBOXES,
        "password": {
            "type": "string",
            "minLength": 8,
            "maxLength": 256,
            "description": "omitted: one is generated and returned once",
        },
    },
}


@API(
    "POST",
    "/api/agents",
    "Add an agent (a generated password is returned once)",
    tag="agents",
    status=201,
    query=(ACCOUNT,),
    body=NEW_AGENT,
    errors=(409, 422),
    response={
        "type": "object",
        "required": ["agent"],
        "properties": {"agent": ref("Agent"), "password": {"type": "string"}},
    },
)
async def create_agent(request: web.Request, call: Call) -> web.Response:
    body = call.body
    assert call.account_id is not None
    inboxes = await _inboxes(request, call.account_id, body.get("inboxes"))
    agent, password = await add_agent(
        request.app[STORE],
        call.account_id,
        body["login"],
        name=body.get("name"),
        role=Role(body.get("role", "agent")),
        teams=body.get("teams", []),
        capacity=body.get("capacity", 5),
        password=body.get("password"),
        inboxes=inboxes,
    )
    if agent is None:
        raise api_error(409, "login_taken", f"an agent {body['login']!r} already exists in account {call.account_id}")
    await audit.record(
        request.app[STORE], call.account_id, call.principal.audit_actor, "agent.create", agent.id, role=agent.role
    )
    result: dict[str, Any] = {"agent": agent_json(agent)}
    if "password" not in body:
        result["password"] = password
    return reply(result, status=201)


async def _inboxes(request: web.Request, account_id: str, keys: list[str] | None) -> list[str] | None:
    try:
        return await chosen_inboxes(request.app[STORE], account_id, keys)
    except ValueError as exc:
        raise api_error(422, "unknown_inbox", str(exc)) from None


async def _agent(request: web.Request, call: Call) -> Agent:
    agent_id = request.match_info["agent_id"]
    agent: Agent = visible(call.principal, await request.app[STORE].agents.get_agent(agent_id), "agent", agent_id)
    return agent


@API("GET", "/api/agents/{agent_id}", "One agent", tag="agents", response=ref("Agent"))
async def get_agent(request: web.Request, call: Call) -> web.Response:
    return reply(agent_json(await _agent(request, call)))


@API(
    "PATCH",
    "/api/agents/{agent_id}",
    "Change an agent's name, role, teams, capacity, inboxes or whether they may log in",
    tag="agents",
    response=ref("Agent"),
    errors=(422,),
    body={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": _NAME,
            "role": _ROLE,
            "teams": _TEAMS,
            "capacity": _CAPACITY,
            "inboxes": _INBOXES,
            "active": {"type": "boolean"},
        },
    },
)
async def update_agent(request: web.Request, call: Call) -> web.Response:
    store, agent = request.app[STORE], await _agent(request, call)
    if agent.role == Role.SUPERADMIN and not call.principal.superadmin:
        raise api_error(403, "forbidden", "a superadmin is changed by the install-wide token or in the console")
    changes = dict(call.body)
    if "inboxes" in changes:
        changes["inboxes"] = await _inboxes(request, agent.account_id, changes["inboxes"])
    changed = await change_agent(store, agent, call.principal.audit_actor, changes, fields=",".join(sorted(call.body)))
    return reply(agent_json(changed))


def routes() -> list[web.RouteDef]:
    return API.routes()
