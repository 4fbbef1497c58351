"""The login's second step (``/login/2fa``): a code from the authenticator app or a recovery code
after the password; and, where the account requires two-factor sign-in and the agent has none,
setting it up before anything else (``/login/2fa/setup``). Open without a session, like ``/login``:
each page needs the half-done login's challenge cookie and its form's token, and only a right code
starts a session."""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from bot import audit
from bot.keys import STORE
from bot.logs import log_event
from bot.web.console import auth, two_factor
from bot.web.i18n import translate
from bot.web.pages import language, page, plain, redirect, render
from bot.web.proxies import client_address
from conversations.agent_models import Agent, LoginChallenge

log = logging.getLogger("omnirouter.web.login")


def _again(request: web.Request) -> web.Response:
    """Back to the password: the challenge is missing or expired."""
    return redirect("/login?expired=1&lang=" + language(request))


async def _posted(request: web.Request, purpose: str) -> tuple[LoginChallenge, Agent, str] | web.Response:
    """The challenge, agent and code of a second-step post, or the answer refusing it."""
    if auth.cross_site(request):
        return plain(403, translate(language(request), "Logins from another site's page are refused."))
    found = await two_factor.pending(request, purpose)
    if found is None:
        return _again(request)
    challenge, agent = found
    form = await request.post()
    if not hmac.compare_digest(str(form.get("csrf_token", "")).encode(), challenge.csrf.encode()):
        return plain(403, translate(language(request), "The form expired: reload the page."))
    return challenge, agent, str(form.get("code", ""))[:64]


def _code_page(
    request: web.Request, challenge: LoginChallenge, agent: Agent, status: int = 200, error: str = ""
) -> web.Response:
    return page(
        request, "login_code.html", status=status, error=error, form_csrf=challenge.csrf, login_name=agent.login
    )


async def code_form(request: web.Request) -> web.Response:
    found = await two_factor.pending(request, "verify")
    return _code_page(request, *found) if found else _again(request)


async def check_code(request: web.Request) -> web.StreamResponse:
    posted = await _posted(request, "verify")
    if isinstance(posted, web.Response):
        return posted
    challenge, agent, code = posted
    lang, store = language(request), request.app[STORE]
    wait = await two_factor.throttled(request, agent)
    if wait:
        response = _code_page(
            request, challenge, agent, 429, translate(lang, "Too many attempts. Try again in {s} s.", s=wait)
        )
        response.headers["Retry-After"] = str(wait)
        return response
    factor = await store.sign_in.second_factor(agent.id)
    used = await two_factor.check_code(request, factor, code) if factor is not None and factor.on else None
    if used is None:
        log_event(log, "login.code_failed", logging.WARNING, agent=agent.id)
        await audit.record(
            store,
            agent.account_id,
            "unknown",
            "login.failed",
            agent.login,
            address=client_address(request),
            second_factor="wrong code",
        )
        return _code_page(
            request, challenge, agent, 401, translate(lang, "That code is not right, or was already used.")
        )
    response = redirect("/console")
    await two_factor.finish_login(request, response, agent, challenge, second_factor=used)
    log_event(log, "login.ok", agent=agent.id, second_factor=used)
    return response


async def _setup_page(
    request: web.Request, challenge: LoginChallenge, agent: Agent, status: int = 200, error: str = ""
) -> web.Response:
    factor = await two_factor.setup_secret(request, agent, two_factor.challenge_owner(challenge))
    if factor is None:  # set up meanwhile (another tab): log in with a code instead
        return _again(request)
    return page(
        request,
        "two_factor_setup.html",
        status=status,
        error=error,
        form_csrf=challenge.csrf,
        action="/login/2fa/setup",
        required=True,
        **two_factor.setup_context(factor, "/login/2fa/qr.svg"),
    )


async def setup_form(request: web.Request) -> web.Response:
    found = await two_factor.pending(request, "setup")
    return await _setup_page(request, *found) if found else _again(request)


async def setup_qr(request: web.Request) -> web.Response:
    found = await two_factor.pending(request, "setup")
    factor = await request.app[STORE].sign_in.second_factor(found[1].id) if found else None
    mine = two_factor.pending_for(factor, two_factor.challenge_owner(found[0])) if found else None
    if found is None or mine is None:
        return plain(
            404,
            translate(
                language(request), "No authenticator is being set up here: start setting up two-factor sign-in first."
            ),
        )
    return two_factor.qr_response(found[1], mine)


async def confirm_setup(request: web.Request) -> web.StreamResponse:
    posted = await _posted(request, "setup")
    if isinstance(posted, web.Response):
        return posted
    challenge, agent, code = posted
    lang, store = language(request), request.app[STORE]
    wait = await two_factor.throttled(request, agent)
    if wait:
        return await _setup_page(
            request, challenge, agent, 429, translate(lang, "Too many attempts. Try again in {s} s.", s=wait)
        )
    mine = two_factor.pending_for(await store.sign_in.second_factor(agent.id), two_factor.challenge_owner(challenge))
    codes = await two_factor.confirm_setup(request, mine, code) if mine is not None else None
    if codes is None:
        return await _setup_page(
            request, challenge, agent, 401, translate(lang, "That code is not right, or was already used.")
        )
    await audit.record(store, agent.account_id, agent, "agent.second_factor_on", agent.id)
    html = render(request.app, "recovery_codes.html", agent.lang, agent=None, csrf="", codes=codes, next_url="/console")
    response = web.Response(text=html, content_type="text/html")
    await two_factor.finish_login(request, response, agent, challenge, second_factor="setup")
    log_event(log, "login.ok", agent=agent.id, second_factor="setup")
    return response


def routes() -> list[web.RouteDef]:
    return [
        web.get("/login/2fa", code_form),
        web.post("/login/2fa", check_code),
        web.get("/login/2fa/setup", setup_form),
        web.post("/login/2fa/setup", confirm_setup),
        web.get("/login/2fa/qr.svg", setup_qr),
    ]
