"""Admin pages for personal data: find a contact, download everything held about them as JSON,
erase them (after typing their id to confirm), and set how long messages are kept."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import NLU, SETTINGS, STORE
from bot.services.contacts import ContactNotFound, erase_contact, export_contact, find_contact
from bot.services.retention import retention_days
from bot.web.i18n import translate, translate_plural
from bot.web.pages import current_agent, page, plain, redirect, signed_in
from conversations.agent_models import Role

MAX_RETENTION_DAYS = 36_500


def _back(path: str, message: str) -> web.Response:
    return redirect(f"{path}?message=" + re.sub(r"[^\w .,:;'()@+-]", "", message).replace(" ", "+")[:300])


@signed_in(Role.ADMIN)
async def contacts_page(request: web.Request) -> web.Response:
    """Search by contact id, ``channel:address``, an address, or part of a name."""
    agent, store = current_agent(request), request.app[STORE]
    q = request.query.get("q", "").strip()[:200]
    scope, named = None, []
    if q:
        try:
            scope = await find_contact(store, agent.account_id, q)
        except ContactNotFound:
            named = await store.contacts.contacts_named(agent.account_id, q)
    contact = await store.contacts.get_contact(scope.contact_id) if scope else None
    return page(
        request,
        "contacts.html",
        q=q,
        scope=scope,
        contact=contact,
        named=named,
        message=request.query.get("message", "")[:300],
    )


async def retention_context(request: web.Request) -> dict[str, Any]:
    """What the settings page shows about retention: the account's own limit (``None``: the
    install's default), the default, and the limit in force."""
    account = await request.app[STORE].accounts.get_account(current_agent(request).account_id)
    settings = request.app[SETTINGS].retention
    return {
        "retention_own": account.retention_days if account else None,
        "retention_default": settings.days,
        "retention_days": retention_days(account, settings),
    }


@signed_in(Role.ADMIN)
async def contact_export(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    try:
        scope = await find_contact(store, agent.account_id, request.match_info["contact_id"])
    except ContactNotFound as exc:
        return plain(404, str(exc))
    document = await export_contact(store, scope, agent)
    return web.Response(
        text=json.dumps(document, ensure_ascii=False, indent=1),
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="contact-{scope.contact_id}.json"'},
    )


@signed_in(Role.ADMIN)
async def contact_erase(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    form = await request.post()
    contact_id = request.match_info["contact_id"]
    if str(form.get("confirm", "")).strip() != contact_id:
        return plain(400, f"type the contact id ({contact_id}) to confirm the erasure")
    try:
        scope = await find_contact(store, agent.account_id, contact_id)
    except ContactNotFound as exc:
        return plain(404, str(exc))
    result = await erase_contact(store, scope, agent, retrain=request.app[NLU].settings.engine == "embedded")
    message = translate_plural(
        agent.lang,
        "Contact erased ({n} record). Receipt: {receipt}",
        "Contact erased ({n} records). Receipt: {receipt}",
        result.total,
        receipt=result.receipt,
    )
    if result.models.retired:
        message += ". " + translate_plural(
            agent.lang,
            "{n} NLU model version trained on their messages retired.",
            "{n} NLU model versions trained on their messages retired.",
            len(result.models.retired),
        )
    if result.models.replaced:
        message += " " + (
            translate(
                agent.lang,
                "The active model was one of them: version {version} answers now, and a new one is being trained.",
                version=result.models.active,
            )
            if result.models.active
            else translate(
                agent.lang,
                "The active model was one of them: the bot hands conversations to people until a new one is trained.",
            )
        )
    return _back("/admin/contacts", message)


@signed_in(Role.ADMIN)
async def set_retention(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    raw = str((await request.post()).get("days", "")).strip()
    if raw and not (raw.isdigit() and int(raw) <= MAX_RETENTION_DAYS):
        return plain(400, f"days: empty (the install's default) or a whole number from 0 to {MAX_RETENTION_DAYS}")
    days = int(raw) if raw else None
    await store.accounts.set_account_fields(agent.account_id, retention_days=days)
    await audit.record(
        store,
        agent.account_id,
        agent,
        "settings.retention",
        agent.account_id,
        days=days if days is not None else "default",
    )
    return _back("/admin", translate(agent.lang, "Saved."))


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/contacts", contacts_page),
        web.get("/admin/contacts/{contact_id}/export.json", contact_export),
        web.post("/admin/contacts/{contact_id}/erase", contact_erase),
        web.post("/admin/retention", set_retention),
    ]
