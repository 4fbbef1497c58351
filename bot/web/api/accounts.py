"""The REST API for accounts: list and create them (the install-wide token), read and change one's
settings (its own token, or the install-wide one), and store its messenger channels' settings
(secrets sealed at rest, never returned: an account shows only whether each is set)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import audit
from bot.business_hours import BusinessHours
from bot.keys import EGRESS, QUEUE, SETTINGS, STORE
from bot.router.routing import STRATEGIES
from bot.services.accounts import (
    ACCOUNT_ID_PATTERN,
    CHANNEL_FIELDS,
    account_json,
    channel_schema,
    create_account,
    refused_api_base,
    set_disabled,
)
from bot.services.inbox_routes import FIRST_INBOX, number_elsewhere, route_of
from bot.web.admin.agents import LOGIN_PATTERN
from bot.web.api.kit import ApiRoutes, Call, api_error, reply
from bot.web.api.openapi import list_of, ref
from conversations.tenant_models import Account

API = ApiRoutes()


async def account_of(request: web.Request, call: Call) -> Account:
    account_id = request.match_info["account_id"]
    account = await request.app[STORE].accounts.get_account(account_id) if call.principal.may_see(account_id) else None
    if account is None:
        raise api_error(404, "not_found", f"no account {account_id}")
    return account


@API(
    "GET",
    "/api/accounts",
    "Accounts: every one for the install-wide token, the token's own otherwise",
    tag="accounts",
    response=list_of("Account"),
)
async def list_accounts(request: web.Request, call: Call) -> web.Response:
    store = request.app[STORE]
    if call.principal.superadmin:
        accounts = await store.accounts.list_accounts()
    else:
        assert call.principal.account_id is not None
        own = await store.accounts.get_account(call.principal.account_id)
        accounts = [own] if own else []
    return reply({"items": [account_json(a) for a in accounts]})


NEW_ACCOUNT = {
    "type": "object",
    "required": ["id", "name"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": ACCOUNT_ID_PATTERN},
        "name": {"type": "string", "minLength": 1, "maxLength": 80, "pattern": r"\S"},
        "admin": {
            "type": "object",
            "required": ["login"],
            "additionalProperties": False,
            "properties": {
                "login": {"type": "string", "pattern": LOGIN_PATTERN},
                "name": {"type": "string", "minLength": 1, "maxLength": 80},
                "password": {"type": "string", "minLength": 8, "maxLength": 256},
            },
        },
    },
}


@API(
    "POST",
    "/api/accounts",
    "Create an account, optionally with its first admin (whose generated password is returned once)",
    tag="accounts",
    superadmin=True,
    status=201,
    body=NEW_ACCOUNT,
    errors=(409,),
    response={
        "type": "object",
        "required": ["account"],
        "properties": {"account": ref("Account"), "admin": ref("Agent"), "password": {"type": "string"}},
    },
)
async def post_account(request: web.Request, call: Call) -> web.Response:
    body, admin = call.body, call.body.get("admin") or {}
    account, agent, password = await create_account(
        request.app[STORE],
        body["id"],
        body["name"].strip(),
        admin.get("login"),
        admin.get("name"),
        admin.get("password"),
    )
    if account is None:
        raise api_error(409, "account_exists", f"an account {body['id']} exists already")
    await audit.record(
        request.app[STORE],
        account.id,
        call.principal.audit_actor,
        "account.create",
        account.id,
        admin=admin.get("login"),
    )
    result: dict[str, Any] = {"account": account_json(account)}
    if agent is not None:
        result["admin"] = {k: v for k, v in agent.to_json().items() if k != "password_hash"}
        if "password" not in admin:
            result["password"] = password
    return reply(result, status=201)


@API(
    "GET",
    "/api/accounts/{account_id}",
    "An account with its settings (secrets shown only as set or not)",
    tag="accounts",
    response=ref("Account"),
)
async def get_account(request: web.Request, call: Call) -> web.Response:
    return reply(account_json(await account_of(request, call)))


ACCOUNT_CHANGES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 80, "pattern": r"\S"},
        "retention_days": {
            "type": ["integer", "null"],
            "minimum": 0,
            "maximum": 36500,
            "description": "messages older than this are deleted; 0: kept; null: the install's retention.days",
        },
        "reopen_days": {
            "type": "number",
            "minimum": 0,
            "maximum": 365,
            "description": "a customer writing again this soon reopens the resolved thread",
        },
        "strategy": {"type": "string", "enum": list(STRATEGIES)},
        "business_hours": {"type": "string", "maxLength": 500},
        "timezone": {"type": "string", "maxLength": 64},
        "out_of_hours_reply": {"type": "string", "maxLength": 1000},
        "greeting": {
            "type": "string",
            "maxLength": 300,
            "pattern": r"^[^\x00-\x1f\x7f]*$",
            "description": "sent once as the first message of every new conversation on Telegram, WhatsApp, SMS"
            " and e-mail (an inbox's own greeting first); empty: none",
        },
        "disabled": {"type": "boolean", "description": "install-wide token only"},
    },
}
_ROUTING = ("reopen_days", "strategy", "business_hours", "timezone", "out_of_hours_reply", "greeting")


@API(
    "PATCH",
    "/api/accounts/{account_id}",
    "Change an account's name, retention, reopen window, routing or "
    "business hours (and, for the install-wide token, disable or enable it)",
    tag="accounts",
    response=ref("Account"),
    body=ACCOUNT_CHANGES,
    errors=(409,),
)
async def patch_account(request: web.Request, call: Call) -> web.Response:
    account, body, store = await account_of(request, call), dict(call.body), request.app[STORE]
    if "disabled" in body:
        if not call.principal.superadmin:
            raise api_error(403, "forbidden", "only the install-wide token may disable an account")
        if account.id == request.app[SETTINGS].account.id and body["disabled"]:
            raise api_error(409, "own_account", "the install's own account (account.id) cannot be disabled")
        disabled = body.pop("disabled")
        await set_disabled(store, account.id, disabled)
        await audit.record(
            store,
            account.id,
            call.principal.audit_actor,
            "account.disable" if disabled else "account.enable",
            account.id,
        )
    routing = {k: body.pop(k) for k in _ROUTING if k in body}
    if routing:
        current = await request.app[QUEUE].routing(account.id)
        try:
            BusinessHours.parse(
                routing.get("business_hours", current.hours.spec), routing.get("timezone", current.hours.zone.key)
            )
        except (ValueError, KeyError) as exc:
            raise api_error(400, "bad_request", f"business hours: {exc}") from None
        await request.app[QUEUE].set_routing(account.id, **routing)
    if body:
        await store.accounts.update_account(account.id, **body)
    if routing or body:
        await audit.record(
            store,
            account.id,
            call.principal.audit_actor,
            "settings.account",
            account.id,
            fields=",".join(sorted([*routing, *body])),
        )
    return reply(account_json(await store.accounts.get_account(account.id) or account))


def _channel_route(channel: str) -> None:
    async def put_channel(request: web.Request, call: Call) -> web.Response:
        account = await account_of(request, call)
        guard = request.app[EGRESS].channel(channel)
        if refused := refused_api_base(guard, call.body):
            raise api_error(400, "api_base_not_allowed", guard.api_base_refusal(refused))
        route = route_of(channel, call.body)
        if await number_elsewhere(request.app[STORE], request.app[SETTINGS], route, account.id, FIRST_INBOX):
            raise api_error(409, "inbox_taken", f"another inbox already receives {route}")
        await request.app[STORE].accounts.set_account_channel(account.id, channel, call.body)
        await audit.record(
            request.app[STORE],
            account.id,
            call.principal.audit_actor,
            "settings.channel",
            account.id,
            channel=channel,
            keys=",".join(sorted(call.body)),
        )  # the names only: values are secrets
        return reply({"account": account.id, "channel": channel, "keys": sorted(call.body)})

    put_channel.__name__ = f"put_{channel}_channel"
    API(
        "PUT",
        f"/api/accounts/{{account_id}}/channels/{channel}",
        f"Store the account's own {channel} settings (secrets sealed at rest; a router process picks them up "
        "within seconds)",
        tag="accounts",
        body=channel_schema(channel),
        sanitize=False,
        errors=(409,),
        response={
            "type": "object",
            "required": ["account", "channel", "keys"],
            "properties": {
                "account": {"type": "string"},
                "channel": {"type": "string"},
                "keys": {"type": "array", "items": {"type": "string"}},
            },
        },
    )(put_channel)


for _channel in CHANNEL_FIELDS:
    _channel_route(_channel)


def routes() -> list[web.RouteDef]:
    return API.routes()
