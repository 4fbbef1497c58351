"""``GET /api/openapi.json``: the OpenAPI 3.1 document of the REST API, built from the operations
the application serves (so it cannot drift from the routes) and from the stored records' own
dataclasses (so a response schema follows its model).

Adding API routes: write them in a module with an ``ApiRoutes`` table (``bot/web/api/kit.py``) and
list that table in ``API_TABLES`` of ``bot/web/__init__.py``; the routes, their checks and their
documentation all come from it. The intents of the NLU layer plug in that way (tag ``intents``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from datetime import datetime
from enum import StrEnum
from typing import Any

from aiohttp import web

from bot.web.api.kit import Operation
from bot.web.keys import API_OPERATIONS
from conversations.agent_models import Agent
from conversations.tenant_models import EVENT_TYPES, SCOPES, Account, ApiToken, WebhookDelivery, WebhookSubscription
from conversations.thread_models import Contact, Message, OutboxItem, Thread, TimelineEntry
from conversations.traffic import Attachment, Identity

OPENAPI_PATH = "/api/openapi.json"
TAGS = [
    {"name": "threads", "description": "conversations: list, read, reply, note, label, assign, resolve"},
    {"name": "messages", "description": "messages and their attachments"},
    {"name": "contacts", "description": "the people an account talks to, with their identities"},
    {"name": "agents", "description": "console logins of an account"},
    {"name": "outbox", "description": "outbound sends and dead letters"},
    {"name": "accounts", "description": "accounts (tenants), their settings and channels"},
    {"name": "webhooks", "description": "signed outbound webhooks for thread events"},
    {"name": "campaigns", "description": "an account's campaigns: one message to each contact of an audience"},
    {"name": "reports", "description": "an account's reports: the figures of a period, of every inbox or of one"},
    {"name": "intents", "description": "NLU intents and training: added by the NLU layer through an ApiRoutes table"},
]


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(name: str, key: str = "items") -> dict[str, Any]:
    return {"type": "object", "properties": {key: {"type": "array", "items": ref(name)}}, "required": [key]}


def _type_schema(kind: Any) -> dict[str, Any]:
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _type_schema(inner[0]) if len(inner) == 1 else {}
    if origin in (list, tuple):
        return {"type": "array", "items": _type_schema(args[0]) if args else {}}
    if origin is dict or kind is dict:
        return {"type": "object"}
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return {"type": "string", "enum": [str(v) for v in kind]}
    if kind is Identity:
        return {"type": "object", "properties": {"channel": {"type": "string"}, "address": {"type": "string"}}}
    if kind is Attachment:
        return {"type": "object", "properties": {"kind": {"type": "string"}}, "required": ["kind"]}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if kind is datetime:
        return {"type": "string", "format": "date-time"}
    return {"type": simple[kind]} if kind in simple else {}


def record_schema(cls: type[Any], drop: tuple[str, ...] = (), **extra: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema of ``cls.to_json()``: a field is required unless it can be ``None`` (then
    it is left out)."""
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required = []
    for f in dataclasses.fields(cls):
        if f.name in drop:
            continue
        properties[f.name] = _type_schema(hints[f.name])
        optional = type(None) in typing.get_args(hints[f.name]) or f.default is None
        if not optional:
            required.append(f.name)
    properties.update(extra)
    return {"type": "object", "properties": properties, "required": required}


ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error", "detail"],
}
SCHEMAS: dict[str, Any] = {
    "Error": ERROR,
    "Thread": record_schema(Thread, drop=("open_key",)),
    "Message": record_schema(Message),
    "Contact": record_schema(Contact),
    "TimelineEntry": record_schema(TimelineEntry),
    "Agent": record_schema(
        Agent, drop=("password_hash",), inboxes={"type": ["array", "null"], "items": {"type": "string"}}
    ),
    "OutboxItem": record_schema(OutboxItem, drop=("due_ms",), due_at={"type": "string", "format": "date-time"}),
    "Account": record_schema(Account, drop=("channels", "sealing_problems")),
    "ApiToken": record_schema(ApiToken, drop=("token_hash",)),
    "WebhookSubscription": record_schema(WebhookSubscription, drop=("secret",)),
    "WebhookDelivery": record_schema(WebhookDelivery, drop=("body", "lease_owner", "due_ms")),
    "Scope": {"type": "string", "enum": list(SCOPES)},
    "EventType": {"type": "string", "enum": list(EVENT_TYPES)},
}
_ERRORS = {
    400: "the request is malformed (the detail says how)",
    401: "no token, or an unknown one",
    403: "the token may not do this (scope, account, or superadmin only)",
    404: "no such record in the token's account",
    409: "the record is not in a state that allows this",
    413: "too large",
    422: "well-formed, but not something this can be done with (the detail says why)",
    502: "the channel's provider failed",
    503: "the store is unreachable; retry after Retry-After seconds",
}


def _operation(op: Operation) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}} for name in op.path_params
    ]
    parameters += [
        {"name": p.name, "in": "query", "required": False, "schema": p.schema, "description": p.description}
        for p in op.query
    ]
    if op.response is None:
        content = {"*/*": {"schema": {"type": "string", "format": "binary"}}}
    else:
        content = {"application/json": {"schema": op.response}}
    responses: dict[str, Any] = {str(op.status): {"description": op.summary, "content": content}}
    for status in sorted({400, 401, 403, 404, 503, *op.errors}):
        responses[str(status)] = {
            "description": _ERRORS[status],
            "content": {"application/json": {"schema": ref("Error")}},
        }
    doc: dict[str, Any] = {
        "operationId": op.handler.__name__,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
        "x-omnirouter-scope": "superadmin" if op.superadmin else op.scope,
    }
    if op.description:
        doc["description"] = op.description
    if parameters:
        doc["parameters"] = parameters
    if op.body is not None:
        doc["requestBody"] = {"required": True, "content": {"application/json": {"schema": op.body}}}
    return doc


def document(operations: list[Operation]) -> dict[str, Any]:
    paths: dict[str, Any] = {
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "this document",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "the OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        }
    }
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "omnirouter",
            "version": "1",
            "description": "The REST API of omnirouter: what the agent console does, for one account per token. "
            "Authenticate with `Authorization: Bearer <token>`: an account's API token (created by its "
            "admin under Account → API tokens) or the install-wide token (`api.token`, or the one the "
            "router made on its first start, in `var/api.token`). Nothing else authenticates.",
        },
        "tags": [*TAGS, {"name": "meta", "description": "about the API itself"}],
        "paths": paths,
        "components": {"schemas": SCHEMAS, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document(request.app[API_OPERATIONS]), headers={"Access-Control-Allow-Origin": "*"})


def routes() -> list[web.RouteDef]:
    return [web.get(OPENAPI_PATH, openapi_json, allow_head=False)]
