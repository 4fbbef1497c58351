"""The inboxes page of an account's admin (``/admin/inboxes``): every channel instance the account
receives on — its first inbox of each channel (its channel settings, edited on the account page) and
its extra ones (Telegram bots, WhatsApp numbers, Twilio numbers, web chats, mailboxes) — with the
webhook URL and instructions each provider needs (a web chat's: its page and the tag that embeds
it; a mailbox's: how its mail comes in); adding, editing and disabling extra inboxes. The buttons that ask
the provider (Check, Set webhook, a test message) are in inbox_buttons.py.

A secret is never shown, only whether it is set; an empty secret field keeps the stored one."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot import audit
from bot.handlers.webchat.visitor_forms import BadPrechat, PrechatForm
from bot.keys import EGRESS, QUEUE, SETTINGS, STORE
from bot.services.accounts import refused_api_base
from bot.services.inbox_routes import NEW_INBOX, domain_of_another, install_route, number_elsewhere, route_of
from bot.services.inbox_routing import model_versions
from bot.services.inboxes import INBOX_FIELDS, is_inbox_name, refused_mail_server, unserved
from bot.services.mail_domains import claim_domain, take_back
from bot.services.teams import TEAM_FORM_PATTERN, TEAM_MAX_LENGTH
from bot.web.admin.inbox_rows import CONSOLE_CHANNELS, inbox_rows
from bot.web.i18n import N_, translate
from bot.web.pages import current_agent, page, plain, redirect, signed_in
from conversations.agent_models import Agent, Role
from conversations.models import utcnow
from conversations.tenant_models import Inbox

MAX_NAME = 80
# the channels whose settings the Check button tries against the provider
CHECKED_CHANNELS = ("telegram", "whatsapp", "sms", "email")
# what ``?saved=`` may report after a change
_DONE = {
    "added": N_("Inbox added."),
    "saved": N_("Saved."),
    "disabled": N_("Inbox disabled: its webhooks are refused and nothing is sent from it."),
    "enabled": N_("Inbox enabled."),
}


class FormProblem(Exception):
    """A form the admin must correct: the words to show and the HTTP status."""

    def __init__(self, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.text = text
        self.status = status


def _pinned(rows: list[dict[str, Any]]) -> set[str]:
    return {str(row["routing"]["model"]) for row in rows if (row.get("routing") or {}).get("model")}


async def show(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    agent = current_agent(request)
    account = await request.app[STORE].accounts.get_account(agent.account_id)
    assert account is not None
    rows = await inbox_rows(request, account)
    context: dict[str, Any] = {
        "account": account,
        "inboxes": rows,
        # nothing but the account's own web chat: the page says what an inbox is and opens its forms
        "no_channels": all(row["first"] and row["channel"] == "webchat" for row in rows),
        "fields": {channel: INBOX_FIELDS[channel] for channel in CONSOLE_CHANNELS},
        # what the Routing form may pin: the newest versions and every one an inbox is pinned to
        "models": await model_versions(request.app[STORE], account.id, _pinned(rows)),
        "https": request.app[SETTINGS].server.public_url.startswith("https://"),
        "team_rule": {"pattern": TEAM_FORM_PATTERN, "maxlength": TEAM_MAX_LENGTH},  # the Routing form's team
        "account_strategy": (await request.app[QUEUE].routing(account.id)).strategy,  # the Routing form's default
        "message": "",
        "problem": None,  # {"where": a form's id, "text": …}
        "typed": {},  # what the admin typed in that form (never its secrets)
        "result": None,  # {"id": an inbox's id, "ok": …, "text": …}: what a button found out
    }
    context.update(extra)
    return page(request, "inboxes.html", status=status, **context)


@signed_in(Role.ADMIN)
async def inboxes_page(request: web.Request) -> web.Response:
    saved, agent = request.query.get("saved", ""), current_agent(request)
    return await show(request, message=translate(agent.lang, _DONE[saved]) if saved in _DONE else "")


def _read_fields(admin: Agent, channel: str, form: Any, adding: bool) -> dict[str, str]:
    """The channel's fields of the form: a filled one checked against its pattern; an empty secret
    left out (it keeps its value); an empty optional one set empty (removed)."""
    values: dict[str, str] = {}
    for field in INBOX_FIELDS[channel]:
        raw = str(form.get(field.name, "")).strip()
        if raw and not re.fullmatch(field.pattern, raw):
            raise FormProblem(translate(admin.lang, "{field} has a wrong format.", field=field.name))
        if raw:
            values[field.name] = raw
        elif field.required and (adding or not field.secret):
            raise FormProblem(translate(admin.lang, "Fill in: {fields}.", fields=field.name))
        elif not field.required and not adding:
            values[field.name] = ""
    return values


def _read_prechat(admin: Agent, form: Any) -> dict[str, Any] | None:
    """A web chat's own pre-chat form (the account page's fields); ``None``: the account's."""
    if form.get("prechat_own") != "on":
        return None
    try:
        return PrechatForm.read({k: str(v) for k, v in form.items()}).to_doc()
    except BadPrechat:
        raise FormProblem(translate(admin.lang, "The privacy notice needs an https address (https://…).")) from None


def _read_name(admin: Agent, form: Any) -> str:
    name = str(form.get("name", "")).strip()
    if not 0 < len(name) <= MAX_NAME:
        raise FormProblem(translate(admin.lang, "An inbox needs a name (at most 80 characters)."))
    if not is_inbox_name(name):
        raise FormProblem(translate(admin.lang, "An inbox's name is one line: no line breaks or control characters."))
    return name


async def _check_egress(
    request: web.Request, admin: Agent, channel: str, values: dict[str, Any], stored: dict[str, Any] | None = None
) -> None:
    if channel == "email":
        if refused := await refused_mail_server(request.app[EGRESS].email, values, stored or {}):
            raise FormProblem(
                translate(
                    admin.lang, "A mail server this install does not let an account reach: {detail}", detail=refused
                )
            )
        return
    if not values.get("api_base"):  # the provider's own (a web chat has no provider)
        return
    guard = request.app[EGRESS].channel(channel)
    if refused := refused_api_base(guard, values):
        raise FormProblem(
            translate(
                admin.lang,
                "api_base: {host} is not a server this install allows. Leave it empty, use {provider}, or ask "
                "the install's operator to allow the host.",
                host=refused,
                provider=guard.provider_url,
            )
        )


def _taken(admin: Agent, route: str | None) -> FormProblem:
    channel, _, number = (route or "").partition(":")
    words = {
        "whatsapp": N_(
            "Another inbox already receives the WhatsApp number {number}: a number delivers into one inbox only."
        ),
        "sms": N_("Another inbox already receives the Twilio number {number}: a number delivers into one inbox only."),
        "email": N_("Another inbox already receives mail for {address}: an address delivers into one inbox only."),
    }
    return FormProblem(translate(admin.lang, words.get(channel, words["whatsapp"]), number=number, address=number), 409)


async def _check_route(request: web.Request, admin: Agent, route: str | None, here: str = NEW_INBOX) -> None:
    """The install's own Twilio number and mail address (its ``[sms]`` and ``[email]`` settings;
    for another account, its whole mail domain) are no inbox's to take, nor an address in a mail
    domain that is another account's (``domain_of_another``), nor a WhatsApp number that delivers
    elsewhere (``number_elsewhere``: ``here`` is the inbox being changed)."""
    if await number_elsewhere(request.app[STORE], request.app[SETTINGS], route, admin.account_id, here):
        raise _taken(admin, route)
    if domain := await domain_of_another(request.app[STORE], admin.account_id, route):
        words = N_("The mail domain {domain} is another account's: a domain's mail goes to one account.")
        raise FormProblem(translate(admin.lang, words, domain=domain), 409)
    if install_route(request.app[SETTINGS], route, admin.account_id):
        channel, _, number = (route or "").partition(":")
        words = (
            N_(
                "{address} is this install's own mail address, or in its mail domain: no inbox of this account may take it."
            )
            if channel == "email"
            else N_("{number} is this install's own Twilio number: no inbox may take it.")
        )
        raise FormProblem(translate(admin.lang, words, number=number, address=number), 409)


def _typed(channel: str, form: Any) -> dict[str, str]:
    """What the admin typed, to fill the form in again (never a secret)."""
    names = ["name", *(f.name for f in INBOX_FIELDS[channel] if not f.secret)]
    return {k: str(form.get(k, "")) for k in names}


@signed_in(Role.ADMIN)
async def add_inbox(request: web.Request) -> web.Response:
    """One more Telegram bot, WhatsApp number, Twilio number, web chat or mailbox of the account
    (secrets sealed for the inbox alone)."""
    admin, form, store = current_agent(request), await request.post(), request.app[STORE]
    channel = str(form.get("channel", ""))
    if channel not in CONSOLE_CHANNELS:
        return plain(400, "channel must be one of: " + ", ".join(CONSOLE_CHANNELS))
    try:
        if unserved(request.app[SETTINGS], channel):
            words = N_("This install does not serve Twilio numbers: its settings need sms.for_accounts = true.")
            raise FormProblem(translate(admin.lang, words), 422)
        name = _read_name(admin, form)
        values = _read_fields(admin, channel, form, adding=True)
        await _check_egress(request, admin, channel, values)
        route = route_of(channel, values)
        await _check_route(request, admin, route)
        await claim_domain(store, request.app[SETTINGS], admin.account_id, channel, values)
        inbox = await store.inboxes.create_inbox(admin.account_id, channel, name, values, utcnow(), route)
        if inbox is None and await take_back(store, admin.account_id, route):  # another account's unproven claim
            inbox = await store.inboxes.create_inbox(admin.account_id, channel, name, values, utcnow(), route)
        if inbox is None:
            raise _taken(admin, route)
    except FormProblem as problem:
        where = {"where": f"add-{channel}", "text": problem.text}
        return await show(request, problem.status, problem=where, typed=_typed(channel, form))
    await audit.record(
        store, admin.account_id, admin, "inbox.create", inbox.id, channel=channel, keys=",".join(sorted(values))
    )  # the names only: values are secrets
    return redirect("/admin/inboxes?saved=added")


async def own_inbox(request: web.Request, admin: Agent) -> Inbox | None:
    inbox = await request.app[STORE].inboxes.get_inbox(request.match_info["inbox_id"])
    return inbox if inbox is not None and inbox.account_id == admin.account_id else None


@signed_in(Role.ADMIN)
async def edit_inbox(request: web.Request) -> web.Response:
    """Rename an extra inbox and change its settings (an empty secret keeps its value)."""
    admin, form, store = current_agent(request), await request.post(), request.app[STORE]
    inbox = await own_inbox(request, admin)
    if inbox is None:
        return plain(404, "no such inbox in this account")
    try:
        name = _read_name(admin, form)
        values: dict[str, Any] = {**_read_fields(admin, inbox.channel, form, adding=False)}
        if inbox.channel == "webchat":
            values["prechat"] = _read_prechat(admin, form)
        await _check_egress(request, admin, inbox.channel, values, inbox.config)
        route = route_of(inbox.channel, values)
        await _check_route(request, admin, route, inbox.id)
        await claim_domain(store, request.app[SETTINGS], admin.account_id, inbox.channel, {**inbox.config, **values})
        changed = await store.inboxes.update_inbox(admin.account_id, inbox.id, values, route, name=name)
        if changed is False and await take_back(store, admin.account_id, route):  # another account's unproven claim
            changed = await store.inboxes.update_inbox(admin.account_id, inbox.id, values, route, name=name)
        if changed is False:
            raise _taken(admin, route)
    except FormProblem as problem:
        where = {"where": f"edit-{inbox.id}", "text": problem.text}
        return await show(request, problem.status, problem=where)
    if changed is None:
        return plain(404, "no such inbox in this account")
    keys = ",".join(sorted(["name", *values]))
    await audit.record(store, admin.account_id, admin, "inbox.change", inbox.id, keys=keys)
    return redirect("/admin/inboxes?saved=saved")


@signed_in(Role.ADMIN)
async def change_state(request: web.Request) -> web.Response:
    """Disable an extra inbox (its webhooks are refused, nothing is sent from it) or enable it again."""
    admin, form, store = current_agent(request), await request.post(), request.app[STORE]
    inbox = await own_inbox(request, admin)
    if inbox is None:
        return plain(404, "no such inbox in this account")
    action = form.get("action")
    if action not in ("disable", "enable"):
        return plain(400, "action must be disable or enable")
    disabled = action == "disable"
    if not disabled and inbox.released_domain:  # its address is the domain owner's now: a new one first
        words = N_(
            "This inbox's address is in {domain}, which another account has verified: give it an address in another domain (Edit) before enabling it."
        )
        text = translate(admin.lang, words, domain=inbox.released_domain)
        return await show(request, 409, problem={"where": f"state-{inbox.id}", "text": text})
    await store.inboxes.update_inbox(admin.account_id, inbox.id, {}, disabled=disabled)
    await audit.record(store, admin.account_id, admin, "inbox.change", inbox.id, keys="disabled", disabled=disabled)
    return redirect(f"/admin/inboxes?saved={action}d")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/inboxes", inboxes_page),
        web.post("/admin/inboxes", add_inbox),
        web.post("/admin/inboxes/{inbox_id}", edit_inbox),
        web.post("/admin/inboxes/{inbox_id}/state", change_state),
    ]
