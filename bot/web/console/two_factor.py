"""Two-factor sign-in, the parts the login's second step and the agent's own page share: the
half-done login (a challenge, not a session), checking a code, setting an authenticator up, and
finishing a login.

After a right password, an agent with an authenticator gets a challenge instead of a session: a
random token in its own cookie (``HttpOnly; SameSite=Strict``, path ``/login``), kept hashed in
the store for five minutes. It opens nothing but the second step's pages: ``auth.current`` reads
sessions only, so a console page asked for with it is asked for by nobody. An agent whose account
requires two-factor sign-in and who has none gets a ``setup`` challenge and sets it up first.
The secret being set up belongs to the one challenge (or session) it was made for: another login
of the same agent — someone else who knows the password — gets a fresh one and never sees it.
Codes go through the login throttle like passwords.
"""

from __future__ import annotations

import secrets
import time

from aiohttp import web

from bot import audit
from bot.keys import STORE
from bot.web.console import auth, login_throttle, totp
from bot.web.pages import redirect
from bot.web.proxies import client_address
from conversations.agent_models import Agent, LoginChallenge, SecondFactor, Session
from conversations.tenant_models import Account

CHALLENGE_COOKIE = "omnirouter_2fa"
CHALLENGE_SECONDS = 300
ISSUER = "omnirouter"


def _now_ms() -> int:
    return int(time.time() * 1000)


def challenge_owner(challenge: LoginChallenge) -> str:
    """Whose a secret set up at the login's second step is: that half-done login's."""
    return f"challenge:{challenge.id}"


def session_owner(session: Session) -> str:
    """Whose a secret set up on the agent's own page is: that session's."""
    return f"session:{session.id}"


async def begin_challenge(
    request: web.Request, agent: Agent, account: Account, factor: SecondFactor | None
) -> web.Response | None:
    """After a right password: the way to the second step (or to setting one up, where the account
    requires it), or ``None`` when the agent logs in with the password alone."""
    store = request.app[STORE]
    if factor is not None and factor.on:
        purpose, path = "verify", "/login/2fa"
    elif account.require_two_factor:
        purpose, path = "setup", "/login/2fa/setup"
    else:
        return None
    token = secrets.token_urlsafe(32)
    await store.sign_in.create_login_challenge(
        LoginChallenge(
            id=auth.token_digest(token),
            account_id=agent.account_id,
            agent_id=agent.id,
            purpose=purpose,
            csrf=secrets.token_urlsafe(24),
            expires_ms=_now_ms() + CHALLENGE_SECONDS * 1000,
        )
    )
    response = redirect(path)
    auth.set_cookie(response, request, CHALLENGE_COOKIE, token, max_age=CHALLENGE_SECONDS, path="/login")
    return response


async def pending(request: web.Request, purpose: str) -> tuple[LoginChallenge, Agent] | None:
    """The request's live challenge of ``purpose`` and its (still active) agent."""
    token = request.cookies.get(CHALLENGE_COOKIE)
    if not token:
        return None
    store = request.app[STORE]
    challenge = await store.sign_in.login_challenge(auth.token_digest(token), _now_ms())
    if challenge is None or challenge.purpose != purpose:
        return None
    agent = await store.agents.get_agent(challenge.agent_id)
    return (challenge, agent) if agent is not None and agent.active else None


async def finish_login(
    request: web.Request,
    response: web.StreamResponse,
    agent: Agent,
    challenge: LoginChallenge | None = None,
    **details: str,
) -> None:
    """The login is complete — with a second factor when it went through a challenge: its throttle
    count cleared, the challenge dropped, a session started, the browser's device cookie renewed."""
    store, address = request.app[STORE], client_address(request)
    await throttle_cleared(request, agent)
    if challenge is not None:
        await store.sign_in.end_login_challenge(challenge.id, _now_ms())
        response.del_cookie(CHALLENGE_COOKIE, path="/login")
    await auth.start_session(request, response, agent, second_factor=challenge is not None)
    await login_throttle.remember_device(request, response, agent.account_id, agent.login)
    await audit.record(store, agent.account_id, agent, "login", agent.id, address=address, **details)


async def throttled(request: web.Request, agent: Agent) -> int:
    """Count a code (or password) attempt of ``agent``'s like a login; the seconds to wait, or 0."""
    return await login_throttle.admit(request, agent.account_id, agent.login)


async def throttle_cleared(request: web.Request, agent: Agent) -> None:
    """A right code (or password) from a signed-in agent: their login's count starts again."""
    await login_throttle.succeeded(request, agent.account_id, agent.login)


async def check_code(request: web.Request, factor: SecondFactor, code: str) -> str | None:
    """Whether ``code`` is a current authenticator code (each time step taken once) or an unused
    recovery code (then used up): ``"totp"``, ``"recovery"`` or ``None``."""
    store = request.app[STORE]
    if factor.problem:  # a secret that does not open matches no code
        return None
    step = totp.matching_step(factor.secret, code)
    if step is not None:
        return "totp" if await store.sign_in.accept_totp_step(factor.id, step) else None
    code_hash = totp.recovery_hash(code)
    if code_hash is not None and await store.sign_in.spend_recovery_code(factor.id, code_hash):
        return "recovery"
    return None


def pending_for(factor: SecondFactor | None, owner: str) -> SecondFactor | None:
    """``factor`` if it is being set up for ``owner`` (and opens), else ``None``."""
    if factor is None or factor.on or factor.problem or factor.owner != owner:
        return None
    return factor


async def setup_secret(request: web.Request, agent: Agent, owner: str, fresh: bool = False) -> SecondFactor | None:
    """The authenticator ``owner`` (a challenge or a session) is setting up for the agent: the one
    pending for it, or a new one — when there is none, when the pending one is anybody else's, or
    when ``fresh``; ``None`` when one is on already."""
    store = request.app[STORE]
    factor = await store.sign_in.second_factor(agent.id)
    if factor is not None and factor.on:
        return None
    mine = pending_for(factor, owner)
    if mine is None or fresh:
        mine = SecondFactor(
            id=agent.id, account_id=agent.account_id, secret=totp.new_secret(), created_ms=_now_ms(), owner=owner
        )
        if not await store.sign_in.begin_second_factor(mine):
            return None
    return mine


async def confirm_setup(request: web.Request, factor: SecondFactor, code: str) -> list[str] | None:
    """Turn the authenticator pending for ``factor.owner`` on with its first code; the recovery
    codes to show once, or ``None`` when the code is wrong (or the secret was replaced meanwhile)."""
    step = totp.matching_step(factor.secret, code)
    if step is None:
        return None
    codes = totp.new_recovery_codes()
    hashes = [h for h in (totp.recovery_hash(c) for c in codes) if h is not None]
    confirmed = await request.app[STORE].sign_in.confirm_second_factor(factor.id, factor.owner, step, hashes)
    return codes if confirmed else None


def setup_context(factor: SecondFactor, qr_url: str) -> dict[str, str]:
    """What the set-up form shows: the QR code's address (served from this origin: the CSP allows
    no ``data:`` images) and the key in groups of four, to type in by hand."""
    return {"qr_url": qr_url, "secret_text": totp.spaced(factor.secret)}


def qr_response(agent: Agent, factor: SecondFactor) -> web.Response:
    """The QR code of ``factor``'s secret, for an ``<img>`` of the set-up page."""
    uri = totp.provisioning_uri(factor.secret, agent.login, f"{ISSUER} ({agent.account_id})")
    return web.Response(
        body=totp.qr_svg(uri),
        content_type="image/svg+xml",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
