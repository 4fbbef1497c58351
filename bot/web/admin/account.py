"""The account page of an account's admin (``/admin/account``): the addresses to give providers,
its own messenger channels (a secret is never shown again after saving — only that it is set —
and an empty secret field keeps it), the reopen window and retention, the rating question, API tokens (shown once) and
webhook subscriptions (their secret shown once, replaceable)."""

from __future__ import annotations

import dataclasses
import re
import secrets
from typing import Any

from aiohttp import web

from bot import audit
from bot.handlers.webchat.embedding import identity_secret_name
from bot.handlers.webchat.visitor_forms import BadPrechat, PrechatForm
from bot.keys import ADAPTERS, EGRESS, EVENTS, QUEUE, SETTINGS, STORE
from bot.router.satisfaction import DEFAULT_TEXTS, LANGUAGES, TEXT_KINDS, SatisfactionSettings
from bot.router.webhooks.subscriptions import BadSubscription, new_secret, subscribe
from bot.services.accounts import CHANNEL_FIELDS, channel_summary, refused_api_base, webhook_urls
from bot.services.contact_fields import KINDS, FieldError, defined, new_attribute
from bot.services.inbox_routes import FIRST_INBOX, number_elsewhere, route_of
from bot.web.api.kit import issue_token
from bot.web.chat.widget import BadWidget, WidgetLook, read_look
from bot.web.i18n import N_, translate
from bot.web.pages import current_agent, page, plain, redirect, signed_in
from conversations.agent_models import Agent, Role
from conversations.tenant_models import EVENT_TYPES, SCOPES, DeliveryState

MAX_CSAT_TEXT = 500
_TOKEN_NAME = re.compile(r"^[\w .:@-]{1,60}$")
# what ``?saved=`` may report after a change
_DONE = {"saved": N_("Saved."), "removed": N_("Removed."), "revoked": N_("Revoked.")}


async def _context(request: web.Request, agent: Agent) -> dict[str, Any]:
    app, store = request.app, request.app[STORE]
    account = await store.accounts.get_account(agent.account_id)
    assert account is not None
    routing = await app[QUEUE].routing(agent.account_id)
    webhooks = []
    for subscription in await store.webhooks.list_webhooks(agent.account_id):
        recent = await store.webhooks.list_deliveries(subscription.id, limit=1)
        dead = await store.webhooks.count_deliveries(subscription.id, DeliveryState.DEAD)
        webhooks.append({"s": subscription, "last": recent[0] if recent else None, "dead": dead})
    return {
        "account": account,
        "own_channels": account.id != app[SETTINGS].account.id,
        "channels": channel_summary(account.channels, account.sealing_problems),
        "fields": CHANNEL_FIELDS,
        "served": set(app[ADAPTERS].keys()),
        "urls": webhook_urls(app[SETTINGS], f"{request.scheme}://{request.host}", account.id),
        "reopen_days": f"{routing.reopen_days:g}",
        "tokens": await store.accounts.list_api_tokens(agent.account_id),
        "agents": {a.id: a for a in await store.agents.list_agents(agent.account_id) if a.active},
        "scopes": SCOPES,
        "event_types": EVENT_TYPES,
        "webhooks": webhooks,
        "attributes": defined(account.contact_attributes),
        "attribute_kinds": KINDS,
        "csat": SatisfactionSettings.of(account),
        "csat_defaults": DEFAULT_TEXTS,
        "widget": WidgetLook.of(account),
        "widget_snippet": _snippet(request, account.id),
        "widget_secret_set": await store.secrets.read_sealed_secret(identity_secret_name(account.id)) is not None,
        "message": "",
        "revealed": None,
    }


def _snippet(request: web.Request, account_id: str) -> str:
    public = request.app[SETTINGS].server.public_url.rstrip("/") or f"{request.scheme}://{request.host}"
    return f'<script src="{public}/widget.js" data-account="{account_id}" async></script>'


async def _show(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    context = await _context(request, current_agent(request))
    context.update(extra)
    return page(request, "account.html", status=status, **context)


def _back(message_key: str) -> web.Response:
    return redirect(f"/admin/account?saved={message_key}")


@signed_in(Role.ADMIN)
async def account_page(request: web.Request) -> web.Response:
    saved = request.query.get("saved", "")
    agent = current_agent(request)
    return await _show(request, message=translate(agent.lang, _DONE[saved]) if saved in _DONE else "")


@signed_in(Role.ADMIN)
async def save_channel(request: web.Request) -> web.Response:
    """Merge the form into the channel's settings: a filled field replaces, an empty secret keeps
    the stored one, an empty optional field removes it."""
    admin, channel = current_agent(request), request.match_info["channel"]
    if channel not in CHANNEL_FIELDS or admin.account_id == request.app[SETTINGS].account.id:
        return plain(404, "no such channel set-up for this account")
    form, store = await request.post(), request.app[STORE]
    account = await store.accounts.get_account(admin.account_id)
    stored = dict((account.channels if account else {}).get(channel) or {})
    values, remove = {}, []
    for field in CHANNEL_FIELDS[channel]:
        raw = str(form.get(field.name, "")).strip()
        if raw and not re.fullmatch(field.pattern, raw):
            return await _show(
                request, 400, error=translate(admin.lang, "{field} has a wrong format.", field=field.name)
            )
        if raw:
            values[field.name] = raw
        elif not field.secret and field.name in stored:
            remove.append(field.name)
    merged = {**{k: v for k, v in stored.items() if k not in remove}, **values}
    guard = request.app[EGRESS].channel(channel)
    if refused := refused_api_base(guard, values):
        return await _show(
            request,
            400,
            error=translate(
                admin.lang,
                "api_base: {host} is not a server this install allows. Leave it empty, use {provider}, or ask "
                "the install's operator to allow the host.",
                host=refused,
                provider=guard.provider_url,
            ),
        )
    missing = [f.name for f in CHANNEL_FIELDS[channel] if f.required and not merged.get(f.name)]
    if missing:
        return await _show(request, 400, error=translate(admin.lang, "Fill in: {fields}.", fields=", ".join(missing)))
    route = route_of(channel, merged)
    if await number_elsewhere(store, request.app[SETTINGS], route, admin.account_id, FIRST_INBOX):
        words = N_(
            "Another inbox already receives the WhatsApp number {number}: a number delivers into one inbox only."
        )
        return await _show(request, 409, error=translate(admin.lang, words, number=str(route).partition(":")[2]))
    await store.accounts.merge_account_channel(admin.account_id, channel, values, tuple(remove))
    await audit.record(
        store,
        admin.account_id,
        admin,
        "settings.channel",
        admin.account_id,
        channel=channel,
        keys=",".join(sorted(values)),
        removed=",".join(remove) or None,
    )  # names only: values are secrets
    return _back("saved")


@signed_in(Role.ADMIN)
async def remove_channel(request: web.Request) -> web.Response:
    admin, channel = current_agent(request), request.match_info["channel"]
    if channel not in CHANNEL_FIELDS:
        return plain(404, "no such channel")
    await request.app[STORE].accounts.remove_account_channel(admin.account_id, channel)
    await audit.record(
        request.app[STORE],
        admin.account_id,
        admin,
        "settings.channel",
        admin.account_id,
        channel=channel,
        removed="all",
    )
    return _back("removed")


@signed_in(Role.ADMIN)
async def save_conversations(request: web.Request) -> web.Response:
    admin, form = current_agent(request), await request.post()
    try:
        reopen_days = float(str(form.get("reopen_days", "")).strip())
    except ValueError:
        reopen_days = -1.0
    if not 0 <= reopen_days <= 365:
        return await _show(request, 400, error=translate(admin.lang, "Reopen window: 0–365 days."))
    await request.app[QUEUE].set_routing(admin.account_id, reopen_days=reopen_days)
    await audit.record(
        request.app[STORE], admin.account_id, admin, "settings.reopen", admin.account_id, days=reopen_days
    )
    return _back("saved")


@signed_in(Role.ADMIN)
async def save_satisfaction(request: web.Request) -> web.Response:
    """Whether customers are asked to rate resolved conversations, how often, and the words (an
    empty text: the default of its language)."""
    admin, form = current_agent(request), await request.post()
    try:
        quiet_days = float(str(form.get("quiet_days", "")).strip())
    except ValueError:
        quiet_days = -1.0
    if not 0 <= quiet_days <= 365:
        return await _show(request, 400, error=translate(admin.lang, "Ask again after: 0–365 days."))
    texts: dict[str, dict[str, str]] = {}
    for lang in LANGUAGES:
        for kind in TEXT_KINDS:
            text = str(form.get(f"{kind}_{lang}", "")).strip()
            if len(text) > MAX_CSAT_TEXT:
                return await _show(request, 400, error=translate(admin.lang, "A text is at most 500 characters."))
            if text:
                texts.setdefault(lang, {})[kind] = text
    chosen = SatisfactionSettings(form.get("enabled") == "on", quiet_days, texts)
    await request.app[STORE].accounts.update_account(admin.account_id, satisfaction=chosen.to_doc())
    await audit.record(
        request.app[STORE],
        admin.account_id,
        admin,
        "settings.satisfaction",
        admin.account_id,
        enabled=chosen.enabled,
        quiet_days=quiet_days,
    )
    return _back("saved")


@signed_in(Role.ADMIN)
async def save_two_factor(request: web.Request) -> web.Response:
    """Require two-factor sign-in of every agent (the admin must use it first), or stop requiring
    it. Requiring it logs out at once whoever is logged in without it: the requirement is set first,
    so a session that a password-only login starts meanwhile is refused too (``auth.current``)."""
    admin, store = current_agent(request), request.app[STORE]
    required = (await request.post()).get("require") == "on"
    if required and admin.id not in await store.sign_in.agents_with_second_factor(admin.account_id):
        return await _show(
            request,
            409,
            error=translate(admin.lang, "Turn on two-factor sign-in for yourself first (Sign-in security)."),
        )
    await store.accounts.update_account(admin.account_id, require_two_factor=required)
    if required:
        await store.sign_in.end_sessions_without_second_factor(admin.account_id)
    await audit.record(store, admin.account_id, admin, "settings.two_factor", admin.account_id, required=required)
    return _back("saved")


@signed_in(Role.ADMIN)
async def save_widget(request: web.Request) -> web.Response:
    """The website widget: the sites allowed to embed the chat (one a line), colour, title, greeting,
    and the pre-chat form (its fields, and consent to a privacy notice at an https address)."""
    admin, form, store = current_agent(request), await request.post(), request.app[STORE]
    try:
        look = read_look(*(str(form.get(k, "")) for k in ("sites", "color", "title", "greeting")))
        prechat = PrechatForm.read({k: str(v) for k, v in form.items()})
    except BadWidget as exc:
        return await _show(request, 400, error=translate(admin.lang, "Not a site or colour: {value}", value=str(exc)))
    except BadPrechat:
        return await _show(
            request, 400, error=translate(admin.lang, "The privacy notice needs an https address (https://…).")
        )
    look = dataclasses.replace(look, prechat=prechat)
    await store.accounts.set_account_fields(admin.account_id, widget=look.to_doc())
    await audit.record(store, admin.account_id, admin, "settings.widget", admin.account_id, sites=",".join(look.sites))
    return _back("saved")


@signed_in(Role.ADMIN)
async def new_widget_secret(request: web.Request) -> web.Response:
    """A new secret for identity verification (shown once); the one before stops verifying at once."""
    admin, store = current_agent(request), request.app[STORE]
    secret = secrets.token_urlsafe(32)
    await store.secrets.replace_sealed_secret(identity_secret_name(admin.account_id), secret)
    await audit.record(store, admin.account_id, admin, "settings.widget_secret", admin.account_id)
    return await _show(request, revealed={"what": "widget", "name": admin.account_id, "value": secret})


@signed_in(Role.ADMIN)
async def create_token(request: web.Request) -> web.Response:
    admin, form = current_agent(request), await request.post()
    name = str(form.get("name", "")).strip()
    scopes = [s for s in SCOPES if form.get(f"scope_{s}") == "on"]
    if not _TOKEN_NAME.match(name) or not scopes:
        return await _show(
            request,
            400,
            error=translate(admin.lang, "A token needs a name (letters, digits, space . : @ -) and a scope."),
        )
    acts_for = None
    if form.get("agent"):  # a token that acts for one agent: their inboxes, the conversation routes only
        acts_for = await request.app[STORE].agents.get_agent(str(form.get("agent")))
        if acts_for is None or acts_for.account_id != admin.account_id or not acts_for.active:
            return plain(400, "no such agent in this account")
    token = await issue_token(request.app[STORE], admin.account_id, name, scopes, admin, acts_for)
    return await _show(request, revealed={"what": "token", "name": name, "value": token})


@signed_in(Role.ADMIN)
async def revoke_token(request: web.Request) -> web.Response:
    admin, token_id = current_agent(request), request.match_info["token_id"]
    if not await request.app[STORE].accounts.revoke_api_token(admin.account_id, token_id):
        return plain(404, "no such token")
    await audit.record(request.app[STORE], admin.account_id, admin, "token.revoke", token_id)
    return _back("revoked")


@signed_in(Role.ADMIN)
async def create_webhook(request: web.Request) -> web.Response:
    admin, form, app = current_agent(request), await request.post(), request.app
    kinds = [e for e in EVENT_TYPES if form.get(f"event_{e}") == "on"]
    try:
        subscription, secret = await subscribe(
            app[STORE],
            app[EVENTS],
            admin.account_id,
            str(form.get("url", "")),
            kinds,
            str(form.get("description", "")),
            app[EGRESS].webhooks,
        )
    except BadSubscription as exc:
        return await _show(request, 400, error=str(exc))
    await audit.record(app[STORE], admin.account_id, admin, "webhook.create", subscription.id, url=subscription.url)
    return await _show(request, revealed={"what": "webhook", "name": subscription.url, "value": secret})


@signed_in(Role.ADMIN)
async def change_webhook(request: web.Request) -> web.Response:
    admin, form, app = current_agent(request), await request.post(), request.app
    store, subscription_id = app[STORE], request.match_info["subscription_id"]
    subscription = await store.webhooks.get_webhook(subscription_id)
    if subscription is None or subscription.account_id != admin.account_id:
        return plain(404, "no such webhook")
    action = form.get("action")
    if action not in ("delete", "toggle", "rotate"):
        return plain(400, "action must be delete, toggle or rotate")
    app[EVENTS].forget(admin.account_id)
    await audit.record(store, admin.account_id, admin, f"webhook.{action}", subscription.id)
    if action == "delete":
        await store.webhooks.delete_webhook(admin.account_id, subscription.id)
        return _back("removed")
    if action == "toggle":
        await store.webhooks.update_webhook(admin.account_id, subscription.id, active=not subscription.active)
        return _back("saved")
    secret = new_secret()  # rotate
    await store.webhooks.update_webhook(admin.account_id, subscription.id, secret=secret)
    return await _show(request, revealed={"what": "webhook", "name": subscription.url, "value": secret})


@signed_in(Role.ADMIN)
async def add_attribute(request: web.Request) -> web.Response:
    """A custom attribute of the account's contacts (key, label, kind, a list's options)."""
    admin, form, store = current_agent(request), await request.post(), request.app[STORE]
    account = await store.accounts.get_account(admin.account_id)
    existing = defined(account.contact_attributes if account else [])
    try:
        added = new_attribute(existing, *(str(form.get(k, "")) for k in ("key", "label", "kind", "options")))
    except FieldError as exc:
        return await _show(request, 400, error=str(exc))
    docs = [a.to_doc() for a in (*existing, added)]
    await store.accounts.set_account_fields(admin.account_id, contact_attributes=docs)
    await audit.record(store, admin.account_id, admin, "settings.attributes", added.key)
    return _back("saved")


@signed_in(Role.ADMIN)
async def remove_attribute(request: web.Request) -> web.Response:
    """Stop asking for an attribute (values already kept on contacts stay, and are exported)."""
    admin, store, key = current_agent(request), request.app[STORE], request.match_info["key"]
    account = await store.accounts.get_account(admin.account_id)
    kept = [a.to_doc() for a in defined(account.contact_attributes if account else []) if a.key != key]
    await store.accounts.set_account_fields(admin.account_id, contact_attributes=kept)
    await audit.record(store, admin.account_id, admin, "settings.attributes", key, removed=True)
    return _back("saved")


def routes() -> list[web.RouteDef]:
    return [
        web.post("/admin/account/attributes", add_attribute),
        web.post("/admin/account/attributes/{key}/remove", remove_attribute),
        web.get("/admin/account", account_page),
        web.post("/admin/account/channels/{channel}", save_channel),
        web.post("/admin/account/channels/{channel}/remove", remove_channel),
        web.post("/admin/account/conversations", save_conversations),
        web.post("/admin/account/two-factor", save_two_factor),
        web.post("/admin/account/satisfaction", save_satisfaction),
        web.post("/admin/account/widget", save_widget),
        web.post("/admin/account/widget/secret", new_widget_secret),
        web.post("/admin/account/tokens", create_token),
        web.post("/admin/account/tokens/{token_id}/revoke", revoke_token),
        web.post("/admin/account/webhooks", create_webhook),
        web.post("/admin/account/webhooks/{subscription_id}", change_webhook),
    ]
