"""``/login`` and ``/logout``: with the second step (``bot/web/console/login_code.py``), the only
console routes open without a session."""

from __future__ import annotations

import logging

from aiohttp import web

from bot import audit
from bot.keys import SETTINGS, STORE
from bot.logs import log_event
from bot.services.agents import verify_password
from bot.web.console import auth, login_throttle, two_factor
from bot.web.i18n import translate
from bot.web.pages import current_agent, language, page, plain, redirect, signed_in
from bot.web.proxies import client_address

log = logging.getLogger("omnirouter.web.login")


def _login_page(
    request: web.Request, status: int = 200, error: str = "", login: str = "", account: str = ""
) -> web.Response:
    token = auth.login_csrf(request)
    account = account or request.query.get("account", "")[:32] or request.app[SETTINGS].account.id
    response = page(
        request, "login.html", status=status, error=error, login_name=login, login_csrf=token, account_id=account
    )
    auth.set_cookie(response, request, auth.LOGIN_COOKIE, token, max_age=3600)
    return response


async def login_form(request: web.Request) -> web.Response:
    if await auth.current(request) is not None:
        raise web.HTTPSeeOther("/console")
    expired = (
        translate(language(request), "The sign-in took too long. Log in again.") if request.query.get("expired") else ""
    )
    return _login_page(request, error=expired)


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    login_name = str(form.get("login", "")).strip()[:64]
    password = str(form.get("password", ""))[:256]
    expected = request.cookies.get(auth.LOGIN_COOKIE, "")
    lang = language(request)
    if auth.cross_site(request):
        return plain(403, translate(lang, "Logins from another site's page are refused."))
    if not expected or not await auth.csrf_ok(request, expected):
        return plain(403, translate(lang, "The login form expired: reload the page."))
    account_id = str(form.get("account", "")).strip().lower()[:32] or request.app[SETTINGS].account.id
    address, store = client_address(request), request.app[STORE]
    wait = await login_throttle.admit(request, account_id, login_name)
    if wait:
        log_event(log, "login.rate_limited", logging.WARNING, login=login_name, address=address)
        response = _login_page(
            request, 429, translate(lang, "Too many attempts. Try again in {s} s.", s=wait), login_name, account_id
        )
        response.headers["Retry-After"] = str(wait)
        return response
    agent = await store.agents.agent_by_login(account_id, login_name) if login_name else None
    if not await verify_password(agent.password_hash if agent else None, password) or agent is None or not agent.active:
        log_event(log, "login.failed", logging.WARNING, login=login_name, address=address)
        await audit.record(store, account_id, "unknown", "login.failed", login_name, address=address)
        return _login_page(request, 401, translate(lang, "Wrong login or password."), login_name, account_id)
    account = await store.accounts.get_account(account_id)
    if account is None or account.disabled:
        log_event(log, "login.account_disabled", logging.WARNING, login=login_name, account=account_id)
        return _login_page(request, 403, translate(lang, "This account is disabled."), login_name, account_id)
    factor = await store.sign_in.second_factor(agent.id)
    if factor is not None and factor.on and factor.problem:  # no code could be checked: say so, not 500
        log_event(log, "login.second_factor_unreadable", logging.ERROR, agent=agent.id, problem=factor.problem)
        return _login_page(
            request,
            409,
            translate(
                lang,
                "Your two-factor sign-in cannot be read on this server (its key was changed or its record altered): "
                "ask an admin to reset it.",
            ),
            login_name,
            account_id,
        )
    second_step = await two_factor.begin_challenge(request, agent, account, factor)
    if second_step is not None:  # no session yet: the password alone opens nothing
        log_event(log, "login.second_step", agent=agent.id)
        return second_step
    response = redirect("/console")
    await two_factor.finish_login(request, response, agent)
    log_event(log, "login.ok", agent=agent.id)
    return response


@signed_in()
async def logout(request: web.Request) -> web.StreamResponse:
    response = redirect("/login")
    await auth.end_session(request, response)
    agent = current_agent(request)
    await audit.record(request.app[STORE], agent.account_id, agent, "logout", agent.id)
    return response


def routes() -> list[web.RouteDef]:
    return [web.get("/login", login_form), web.post("/login", login), web.post("/logout", logout)]
