"""The superadmin's page of accounts (``/admin/accounts``): every account of the install, a new
one with its first admin (whose password is shown once), and disabling or enabling one — a
disabled account's agents are logged out at once and cannot log in, its API tokens are refused,
its channels stop being served and its webhooks wait; its data stays."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import SETTINGS, STORE
from bot.services.accounts import ACCOUNT_ID_PATTERN, create_account, set_disabled, webhook_urls
from bot.web.admin.agents import LOGIN_PATTERN
from bot.web.i18n import translate
from bot.web.pages import current_agent, page, plain, redirect, signed_in
from conversations.agent_models import Role

_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)
_LOGIN = re.compile(LOGIN_PATTERN)


async def _show(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    store = request.app[STORE]
    accounts = await store.accounts.list_accounts()
    rows = [{"a": a, "agents": await store.agents.count_agents(a.id)} for a in accounts]
    context = {
        "rows": rows,
        "default_account": request.app[SETTINGS].account.id,
        "created": None,
        "error": "",
        "message": "",
    }
    context.update(extra)
    return page(request, "accounts.html", status=status, **context)


@signed_in(Role.SUPERADMIN)
async def accounts_page(request: web.Request) -> web.Response:
    done = request.query.get("done", "")
    return await _show(request, message=translate(current_agent(request).lang, "Saved.") if done == "saved" else "")


@signed_in(Role.SUPERADMIN)
async def create(request: web.Request) -> web.Response:
    form, me = await request.post(), current_agent(request)
    account_id = str(form.get("id", "")).strip().lower()
    name, login = str(form.get("name", "")).strip()[:80], str(form.get("admin", "")).strip().lower()
    if not _ACCOUNT_ID.match(account_id) or not name or not _LOGIN.match(login):
        return await _show(
            request,
            400,
            error=translate(me.lang, "ID: 2–32 of a-z 0-9 _ -; a name; the first admin's login: 2–32 of a-z 0-9 _ . -"),
        )
    account, _admin, password = await create_account(request.app[STORE], account_id, name, login)
    if account is None:
        return await _show(request, 409, error=translate(me.lang, "An account {id} exists already.", id=account_id))
    await audit.record(request.app[STORE], account_id, me, "account.create", account_id, admin=login)
    base = f"{request.scheme}://{request.host}"
    return await _show(
        request,
        created={
            "account": account,
            "login": login,
            "password": password,
            "url": webhook_urls(request.app[SETTINGS], base, account_id)["console"],
        },
    )


@signed_in(Role.SUPERADMIN)
async def change(request: web.Request) -> web.Response:
    form, account_id = await request.post(), request.match_info["account_id"]
    action = form.get("action")
    if action not in ("disable", "enable"):
        return plain(400, "action must be disable or enable")
    if account_id == request.app[SETTINGS].account.id and action == "disable":
        return plain(409, "the install's own account cannot be disabled")
    if await set_disabled(request.app[STORE], account_id, action == "disable") is None:
        return plain(404, "no such account")
    await audit.record(request.app[STORE], account_id, current_agent(request), f"account.{action}", account_id)
    return redirect("/admin/accounts?done=saved")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/admin/accounts", accounts_page),
        web.post("/admin/accounts", create),
        web.post("/admin/accounts/{account_id}", change),
    ]
