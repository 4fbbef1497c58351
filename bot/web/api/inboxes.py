"""The REST API for an account's extra inboxes: list them, add one (a second Telegram bot, a second
WhatsApp number, a Twilio number, a web chat, a mailbox), rename, re-key or disable one. Secrets are sealed at rest for the inbox alone and
never returned; each inbox shows the webhook URL its provider must be given."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator

from bot import audit
from bot.handlers.email.domain_proof import Found
from bot.handlers.kit.protocol import SendError
from bot.handlers.webchat.visitor_forms import BadPrechat
from bot.keys import ADAPTERS, EGRESS, QUEUE, SETTINGS, STORE
from bot.services.accounts import refused_api_base
from bot.services.inbox_mail import send_mailbox_test
from bot.services.inbox_routes import NEW_INBOX, domain_of_another, install_route, number_elsewhere, route_of
from bot.services.inbox_routing import model_problem, routing_changes, routing_problem
from bot.services.inboxes import (
    INBOX_CHANGES,
    TEST_TEXT,
    BadRecipient,
    inbox_json,
    inbox_webhook_url,
    new_inbox_schema,
    refused_mail_server,
    send_test_message,
    settings_change_schema,
    test_recipient,
    test_target,
    unserved,
    with_prechat,
)
from bot.services.mail_domains import (
    OUTCOMES,
    TAKEN,
    claim_domain,
    proof_needed,
    release_notice,
    take_back,
    verification,
    verify_domain,
)
from bot.web.api.accounts import account_of
from bot.web.api.kit import ApiRoutes, Call, api_error, reply
from conversations.models import utcnow
from conversations.tenant_models import Inbox

API = ApiRoutes()
INBOX = {
    "type": "object",
    "required": ["id", "channel", "name", "webhook_url", "model_available"],
    "properties": {
        "model_available": {
            "type": ["boolean", "null"],
            "readOnly": True,
            "description": "whether routing.model, the version the inbox is pinned to, can still answer it"
            " (false: retired or deleted, the account's active model answers it); null: none pinned",
        }
    },
}


async def _shown(request: web.Request, inbox: Inbox) -> dict[str, Any]:
    """The inbox as the API shows it: a listener-fed mailbox with its domain's verification, and
    whether its pinned model version (if any) can still answer it."""
    base, settings = f"{request.scheme}://{request.host}", request.app[SETTINGS]
    shown = inbox_json(inbox, inbox_webhook_url(settings, base, inbox))
    if proof := await verification(request.app[STORE], settings, inbox):
        shown["verification"] = proof
    if released := release_notice(inbox):
        shown["released"] = released
    pinned = (inbox.routing or {}).get("model")
    usable = await request.app[STORE].nlu.usable_nlu_version(inbox.account_id, pinned) if pinned else None
    return {**shown, "model_available": usable}


async def _check_servers(
    request: web.Request, channel: str, settings: dict[str, Any], stored: Mapping[str, Any] | None = None
) -> None:
    """The servers an inbox names pass the install's egress guard of its channel, or a 400."""
    if channel == "email":
        if refused := await refused_mail_server(request.app[EGRESS].email, settings, stored or {}):
            raise api_error(400, "host_not_allowed", refused)
        return
    if not settings.get("api_base"):  # the provider's own (a web chat has no provider)
        return
    guard = request.app[EGRESS].channel(channel)
    if refused := refused_api_base(guard, settings):
        raise api_error(400, "api_base_not_allowed", guard.api_base_refusal(refused))


def _prechat_kept(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with a web chat's own pre-chat form checked and as kept, or a 400 in words."""
    try:
        return with_prechat(settings)
    except BadPrechat as bad:
        raise api_error(400, "bad_request", str(bad)) from None


async def _check_route(request: web.Request, account_id: str, route: str | None, here: str = NEW_INBOX) -> None:
    """A 409 for a route the install's own settings receive, or a mailbox in a mail domain that
    another account's mailboxes are in."""
    if install_route(request.app[SETTINGS], route, account_id):
        raise api_error(409, "inbox_taken", f"the install's own settings already receive {route}")
    if await number_elsewhere(request.app[STORE], request.app[SETTINGS], route, account_id, here):
        raise api_error(409, "inbox_taken", f"another inbox already receives {route}")
    if domain := await domain_of_another(request.app[STORE], account_id, route):
        raise api_error(409, "domain_taken", f"the mail domain {domain} is another account's")


async def _checked_routing(
    request: web.Request,
    account_id: str,
    routing: dict[str, Any],
    changed: Iterable[str],
    stored: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``routing`` when it can be the inbox's (its team one name, its hours read in its time zone,
    or the account's; its model one of the account's trained versions). ``changed``: the keys this
    call sets (a pinned version retired meanwhile may stay while other settings change);
    ``stored``: the inbox's routing now."""
    zone = (await request.app[QUEUE].routing(account_id)).hours.zone.key
    if problem := routing_problem(routing, zone, stored):
        raise api_error(400, "bad_request", str(problem))
    if "model" in changed and (
        problem_text := await model_problem(request.app[STORE], account_id, routing.get("model"))
    ):
        raise api_error(400, "bad_request", problem_text)
    return routing


async def _audit(
    request: web.Request, call: Call, action: str, inbox: Inbox, keys: Iterable[str], **details: str
) -> None:
    """The audit log's line: the names of the settings given, never their values (secrets)."""
    actor = call.principal.audit_actor
    await audit.record(
        request.app[STORE], inbox.account_id, actor, action, inbox.id, keys=",".join(sorted(keys)), **details
    )


@API(
    "GET",
    "/api/accounts/{account_id}/inboxes",
    "The account's extra inboxes (its channel settings are its first inbox of each channel)",
    tag="inboxes",
    response={"type": "object", "properties": {"items": {"type": "array", "items": INBOX}}},
)
async def list_inboxes(request: web.Request, call: Call) -> web.Response:
    account = await account_of(request, call)
    inboxes = await request.app[STORE].inboxes.list_inboxes(account.id)
    return reply({"items": [await _shown(request, inbox) for inbox in inboxes]})


@API(
    "POST",
    "/api/accounts/{account_id}/inboxes",
    "Add an inbox: one more Telegram bot, WhatsApp number, Twilio number (SMS and calls), web chat or mailbox"
    " of the account (secrets sealed at rest)",
    tag="inboxes",
    body=new_inbox_schema(),
    sanitize=False,
    response=INBOX,
    status=201,
    errors=(409, 422),
)
async def create_inbox(request: web.Request, call: Call) -> web.Response:
    account = await account_of(request, call)
    channel, settings = call.body["channel"], _prechat_kept(dict(call.body["settings"]))
    if why := unserved(request.app[SETTINGS], channel):
        raise api_error(422, "channel_not_served", why)
    if settings.get("prechat", 0) is None:
        del settings["prechat"]  # the account's form, as when left out
    await _check_servers(request, channel, settings)
    store = request.app[STORE]
    asked = call.body.get("routing") or {}
    routing = await _checked_routing(request, account.id, asked, asked)
    route = route_of(channel, settings)
    await _check_route(request, account.id, route)
    await claim_domain(store, request.app[SETTINGS], account.id, channel, settings)
    name = call.body["name"].strip()
    inbox = await store.inboxes.create_inbox(account.id, channel, name, settings, utcnow(), route, routing)
    if inbox is None and await take_back(store, account.id, route):  # held by another account's unproven claim
        inbox = await store.inboxes.create_inbox(account.id, channel, name, settings, utcnow(), route, routing)
    if inbox is None:
        raise api_error(409, "inbox_taken", f"another inbox already receives {route}")
    request.app[QUEUE].inbox_routing_changed(account.id, inbox.id)
    await _audit(request, call, "inbox.create", inbox, settings, channel=channel)
    return reply(await _shown(request, inbox), status=201)


@API(
    "PATCH",
    "/api/accounts/{account_id}/inboxes/{inbox_id}",
    "Rename an inbox, change some of its settings (a secret left out keeps its value) or disable it",
    tag="inboxes",
    body=INBOX_CHANGES,
    sanitize=False,
    response=INBOX,
    errors=(409,),
)
async def patch_inbox(request: web.Request, call: Call) -> web.Response:
    account, store = await account_of(request, call), request.app[STORE]
    inbox = await store.inboxes.get_inbox(request.match_info["inbox_id"])
    if inbox is None or inbox.account_id != account.id:
        raise api_error(404, "not_found", f"no inbox {request.match_info['inbox_id']} in account {account.id}")
    settings = dict(call.body.get("settings") or {})
    problem = next(iter(Draft202012Validator(settings_change_schema(inbox.channel)).iter_errors(settings)), None)
    if problem is not None:
        where = ".".join(["settings", *(str(p) for p in problem.path)])
        raise api_error(400, "bad_request", f"{where}: {problem.message[:200]}")
    settings = _prechat_kept(settings)
    await _check_servers(request, inbox.channel, settings, inbox.config)
    asked = call.body.get("routing", {})
    stored = dict(inbox.routing or {})
    routing = await _checked_routing(request, account.id, {**stored, **asked}, asked, stored)
    fields = {k: call.body[k] for k in ("name", "disabled") if k in call.body}
    fields.update(routing_changes({k: routing.get(k) for k in call.body.get("routing", {})}))
    route = route_of(inbox.channel, settings)
    await _check_route(request, account.id, route, inbox.id)
    if inbox.released_domain and fields.get("disabled") is False and route is None:
        raise api_error(409, "inbox_released", str((release_notice(inbox) or {}).get("reason")))
    await claim_domain(store, request.app[SETTINGS], account.id, inbox.channel, {**inbox.config, **settings})
    changed = await store.inboxes.update_inbox(account.id, inbox.id, settings, route, **fields)
    if changed is False and await take_back(store, account.id, route):  # another account's unproven claim
        changed = await store.inboxes.update_inbox(account.id, inbox.id, settings, route, **fields)
    if changed is False:
        raise api_error(409, "inbox_taken", f"another inbox already receives {route}")
    if changed is None:
        raise api_error(404, "not_found", f"no inbox {inbox.id} in account {account.id}")
    assert isinstance(changed, Inbox)
    request.app[QUEUE].inbox_routing_changed(account.id, inbox.id)
    await _audit(request, call, "inbox.change", changed, [*settings, *fields])  # routing.<key> by name
    return reply(await _shown(request, changed))


@API(
    "POST",
    "/api/accounts/{account_id}/inboxes/{inbox_id}/test",
    "Send \"omnirouter test message from <inbox>\" through the inbox (an extra inbox's id, or a channel's"
    " name for the account's first inbox of it) to a Telegram chat id, a number in E.164 or, from a mailbox"
    " (through its own SMTP server), an e-mail address; no conversation is made of it",
    tag="inboxes",
    body={
        "type": "object",
        "required": ["to"],
        "properties": {"to": {"type": "string", "minLength": 1, "maxLength": 254}},
        "additionalProperties": False,
    },
    response={"type": "object", "required": ["sent"], "properties": {"sent": {"type": "boolean"}}},
    errors=(422, 502),
)
async def test_inbox(request: web.Request, call: Call) -> web.Response:
    account, app = await account_of(request, call), request.app
    ref = request.match_info["inbox_id"]
    target = await test_target(app[STORE], app[SETTINGS], account, ref)
    if target is None:
        raise api_error(404, "not_found", f"no inbox {ref} in account {account.id}")
    channel, inbox = target
    to = call.body["to"]
    try:
        test_recipient(channel, to)
    except BadRecipient as bad:
        raise api_error(422, "bad_recipient", str(bad)) from None
    if inbox is not None and inbox.disabled:
        raise api_error(422, "inbox_disabled", f"the inbox {inbox.id} is disabled")
    adapter = app[ADAPTERS].get(channel)
    if adapter is None and channel != "email":  # a mailbox sends through its own SMTP server
        raise api_error(
            422,
            "channel_not_served",
            f"this install does not serve {channel} (its settings need {channel}.for_accounts = true)",
        )
    name = inbox.name if inbox is not None else f"{account.name} ({channel})"
    try:
        if adapter is None or channel == "email":
            await send_mailbox_test(app[SETTINGS], app[EGRESS], account, inbox, name, to, TEST_TEXT.format(name=name))
        else:
            await send_test_message(adapter, account.id, inbox.id if inbox else None, name, to)
    except SendError as failed:
        await audit.record(app[STORE], account.id, call.principal.audit_actor, "inbox.test", ref, to=to, sent=False)
        raise api_error(502, "provider_refused", str(failed)[:300]) from None
    await audit.record(app[STORE], account.id, call.principal.audit_actor, "inbox.test", ref, to=to, sent=True)
    return reply({"sent": True})


@API(
    "POST",
    "/api/accounts/{account_id}/inboxes/{inbox_id}/verify",
    "Verify the domain of a mailbox the SMTP listener feeds: look up the domain's TXT record"
    " omnirouter-verification=<token> (the token is the inbox's verification.record); until its domain is"
    " verified, the listener refuses the mailbox's mail",
    tag="inboxes",
    response={"type": "object", "required": ["verified", "outcome", "reason"]},
    errors=(409, 422),
)
async def verify_inbox_domain(request: web.Request, call: Call) -> web.Response:
    account, app = await account_of(request, call), request.app
    inbox = await app[STORE].inboxes.get_inbox(request.match_info["inbox_id"])
    if inbox is None or inbox.account_id != account.id:
        raise api_error(404, "not_found", f"no inbox {request.match_info['inbox_id']} in account {account.id}")
    if proof_needed(app[SETTINGS], inbox) is None:
        raise api_error(422, "no_verification_needed", "only a mailbox the SMTP listener feeds verifies its domain")
    taken = await domain_of_another(app[STORE], account.id, route_of(inbox.channel, inbox.config)) is not None
    outcome = await verify_domain(app[STORE], app[SETTINGS], inbox, taken)
    if outcome == TAKEN:
        raise api_error(409, "domain_taken", OUTCOMES[TAKEN])
    await audit.record(app[STORE], account.id, call.principal.audit_actor, "inbox.verify", inbox.id, outcome=outcome)
    proof = await verification(app[STORE], app[SETTINGS], inbox) or {}
    return reply({**proof, "verified": outcome == Found.PROVEN, "outcome": outcome, "reason": OUTCOMES[outcome]})


def routes() -> list[web.RouteDef]:
    return API.routes()
