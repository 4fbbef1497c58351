"""An agent's own sign-in security page (``/console/security``): turning two-factor sign-in on
(a QR code and the key in text, confirmed with a first code; ten recovery codes shown once) and off
again (with the password or a code, and only where the account does not require it). A secret
being set up is shown to, and confirmed by, only the session that started it; confirming it counts
as this session passing a second factor."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import audit
from bot.keys import STORE
from bot.services.agents import verify_password
from bot.web.console import two_factor
from bot.web.i18n import N_, translate
from bot.web.pages import SESSION, current_agent, page, plain, redirect, signed_in
from conversations.agent_models import SecondFactor

_DONE = {
    "two_factor_disabled": N_("Two-factor sign-in is off now."),
    "two_factor_kept": N_("Your account requires two-factor sign-in, so it stays on."),
}


def _mine(request: web.Request, factor: SecondFactor | None) -> SecondFactor | None:
    """``factor`` if this session is setting it up."""
    return two_factor.pending_for(factor, two_factor.session_owner(request[SESSION]))


async def _show(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    factor = await store.sign_in.second_factor(agent.id)
    account = await store.accounts.get_account(agent.account_id)
    setting_up = _mine(request, factor)
    if factor is not None and not factor.on and setting_up is None:
        factor = None  # another session's set-up (or one that does not open) is not shown here
    context: dict[str, Any] = {
        "factor": factor,
        "required": bool(account and account.require_two_factor),
        "message": "",
        "error": "",
        "setting_up": setting_up is not None,
        "form_csrf": request[SESSION].csrf,
        "action": "/console/security/confirm",
        "unreadable": translate(
            agent.lang,
            "Your two-factor sign-in cannot be read on this server (its key was changed or its record "
            "altered): ask an admin to reset it.",
        )
        if factor is not None and factor.problem
        else "",
    }
    if setting_up is not None:
        context.update(two_factor.setup_context(setting_up, "/console/security/qr.svg"))
    context.update(extra)
    return page(request, "security.html", status=status, **context)


@signed_in()
async def security_page(request: web.Request) -> web.Response:
    done = request.query.get("done", "")
    return await _show(request, message=translate(current_agent(request).lang, _DONE[done]) if done in _DONE else "")


@signed_in()
async def start_setup(request: web.Request) -> web.Response:
    agent = current_agent(request)
    if await two_factor.setup_secret(request, agent, two_factor.session_owner(request[SESSION]), fresh=True) is None:
        return plain(409, translate(agent.lang, "Two-factor sign-in is on already: turn it off first."))
    return redirect("/console/security")


@signed_in()
async def setup_qr(request: web.Request) -> web.Response:
    agent = current_agent(request)
    factor = _mine(request, await request.app[STORE].sign_in.second_factor(agent.id))
    if factor is None:
        return plain(
            409,
            translate(agent.lang, "No authenticator is being set up here: start setting up two-factor sign-in first."),
        )
    return two_factor.qr_response(agent, factor)


@signed_in()
async def confirm(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    code = str((await request.post()).get("code", ""))[:64]
    factor = _mine(request, await store.sign_in.second_factor(agent.id))
    if factor is None:
        return plain(
            409,
            translate(agent.lang, "No authenticator is being set up here: start setting up two-factor sign-in first."),
        )
    wait = await two_factor.throttled(request, agent)
    if wait:
        return await _show(request, 429, error=translate(agent.lang, "Too many attempts. Try again in {s} s.", s=wait))
    codes = await two_factor.confirm_setup(request, factor, code)
    if codes is None:
        return await _show(request, 400, error=translate(agent.lang, "That code is not right, or was already used."))
    await two_factor.throttle_cleared(request, agent)
    await store.sign_in.passed_second_factor(request[SESSION].id)
    await audit.record(store, agent.account_id, agent, "agent.second_factor_on", agent.id)
    return page(request, "recovery_codes.html", codes=codes, next_url="/console/security")


@signed_in()
async def disable(request: web.Request) -> web.Response:
    agent, store = current_agent(request), request.app[STORE]
    proof = str((await request.post()).get("proof", ""))[:256]
    factor = await store.sign_in.second_factor(agent.id)
    if factor is None:
        return redirect("/console/security")
    account = await store.accounts.get_account(agent.account_id)
    if account is not None and account.require_two_factor and factor.on:
        return redirect("/console/security?done=two_factor_kept")
    if not proof:
        return await _show(request, 400, error=translate(agent.lang, "Wrong password or code."))
    wait = await two_factor.throttled(request, agent)
    if wait:
        return await _show(request, 429, error=translate(agent.lang, "Too many attempts. Try again in {s} s.", s=wait))
    proven = await verify_password(agent.password_hash, proof) or (
        factor.on and await two_factor.check_code(request, factor, proof) is not None
    )
    if not proven:
        return await _show(request, 401, error=translate(agent.lang, "Wrong password or code."))
    await two_factor.throttle_cleared(request, agent)
    await store.sign_in.remove_second_factor(agent.id)
    await audit.record(store, agent.account_id, agent, "agent.second_factor_off", agent.id)
    return redirect("/console/security?done=two_factor_disabled")


def routes() -> list[web.RouteDef]:
    return [
        web.get("/console/security", security_page),
        web.post("/console/security/setup", start_setup),
        web.get("/console/security/qr.svg", setup_qr),
        web.post("/console/security/confirm", confirm),
        web.post("/console/security/disable", disable),
    ]
