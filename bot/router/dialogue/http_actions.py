"""Declarative HTTP actions: the simple case of "look it up in our system" without an action
server of the business's own (``http_actions:`` in the domain, docs/dialogue.md).

Slot values go into the URL escaped and into headers and a JSON body as they are; ``{secret:NAME}``
in a header is a secret kept sealed in the store, never in the files: for the install's own files
an install secret (``omnirouter action-secret NAME``), for content an account's admins published
a secret the operator stored for that account (``--account ID``), so an account never sends the
install's secrets anywhere (an action its copy keeps exactly as the install's files have it stays
the install's: ``Dialogue.with_content``). The install's actions go through the actions egress
guard, an account's through a guard without the action server's host; with the action's timeout,
retried once only when the connection failed, counting towards the breaker of its account and
host (one account's failures never cut off another's actions, nor the install's). A 404 says the
action's ``not_found`` response when it has one; any other failure raises :class:`ActionFailed`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from bot.router.dialogue.actions import ActionFailed, Breaker, SessionFactory, request_json
from bot.router.dialogue.domain import HttpAction

Secrets = Callable[[str], Awaitable[str | None]]  # a stored secret by its full name (``action_secret``)
_FIELD = re.compile(r"\{(secret:)?([\w-]+)\}")


def action_secret(name: str, account_id: str | None = None) -> str:
    """The stored secret that ``{secret:NAME}`` names: the install's, or one account's."""
    return f"action-secret:{name}" if account_id is None else f"action-secret:{account_id}:{name}"


class HttpActions:
    """``open_session`` serves the install's own actions, ``open_account_session`` (the same when
    not given) those of content an account published."""

    def __init__(
        self, open_session: SessionFactory, secrets: Secrets, open_account_session: SessionFactory | None = None
    ) -> None:
        self._open = {False: open_session, True: open_account_session or open_session}
        self._secrets = secrets
        self._sessions: dict[bool, aiohttp.ClientSession] = {}
        self._breakers: dict[tuple[str | None, str], Breaker] = {}  # per account (None: the install) and host

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def run(
        self, action: HttpAction, slots: Mapping[str, Any], account_id: str | None = None
    ) -> tuple[dict[str, Any], str | None]:
        """The slots the answer sets and the response to say (the action's ``reply``, or its
        ``not_found`` after a 404); ``ActionFailed`` otherwise. ``account_id`` names the account
        whose published content holds the action (``None``: the install's files)."""
        url = _FIELD.sub(lambda m: _path_value(slots.get(m.group(2)), m.group(2)), action.url)
        breaker = self._breakers.setdefault((account_id, urlsplit(url).netloc), Breaker())
        breaker.check()
        headers = {name: await self._filled(value, slots, account_id) for name, value in action.headers.items()}
        body = _body(action.body, slots) if action.method == "POST" else None
        try:
            status, answer = await self._call(action, url, headers, body, account_id is not None)
        except ActionFailed:
            breaker.failed()
            raise
        if status == 404 and action.not_found:
            breaker.succeeded()
            return {}, action.not_found
        if status >= 300:  # redirects are not followed: a secret header must not travel on
            breaker.failed()
            raise ActionFailed(f"{urlsplit(url).netloc} answered {status}")
        breaker.succeeded()
        return {slot: _at(answer, path) for slot, path in action.slots.items()}, action.reply

    async def _filled(self, template: str, slots: Mapping[str, Any], account_id: str | None) -> str:
        parts, last = [], 0
        for m in _FIELD.finditer(template):
            if m.group(1):
                secret = await self._secrets(action_secret(m.group(2), account_id))
                if secret is None:
                    whose = "" if account_id is None else f" for account {account_id}"
                    command = f"omnirouter action-secret {m.group(2)}" + (f" --account {account_id}" if whose else "")
                    raise ActionFailed(f"no action secret {m.group(2)} is stored{whose} ({command})")
                value = secret
            else:
                value = str(slots.get(m.group(2)) or "")
            parts += [template[last : m.start()], value]
            last = m.end()
        return "".join([*parts, template[last:]])

    async def _call(
        self, action: HttpAction, url: str, headers: dict[str, str], body: Any, accounts: bool
    ) -> tuple[int, Any]:
        session = self._sessions.get(accounts)
        if session is None:
            session = self._sessions[accounts] = self._open[accounts]()
        timeout = aiohttp.ClientTimeout(total=action.timeout)
        options: dict[str, Any] = {"headers": headers, "json": body, "timeout": timeout}
        return await request_json(session, action.method, url, urlsplit(url).netloc, action.timeout, **options)


def _path_value(value: Any, slot: str) -> str:
    """A slot's value as one URL path segment; an empty one, or one that would climb the path
    (``.``, ``..``), is refused rather than sent to another endpoint with the secret headers."""
    text = str(value if value is not None else "")
    if text.strip() in ("", ".", ".."):
        raise ActionFailed(f"slot {slot} is {text.strip() or 'empty'}: not a value to put in the URL")
    return quote(text, safe="")


def _body(template: Any, slots: Mapping[str, Any]) -> Any:
    if isinstance(template, str):
        whole = _FIELD.fullmatch(template)
        if whole and not whole.group(1):
            return slots.get(whole.group(2))  # a slot alone keeps its type
        return _FIELD.sub(lambda m: "" if m.group(1) else str(slots.get(m.group(2)) or ""), template)
    if isinstance(template, Mapping):
        return {k: _body(v, slots) for k, v in template.items()}
    if isinstance(template, list):
        return [_body(v, slots) for v in template]
    return template


def _at(answer: Any, path: str) -> Any:
    """The value at a dotted path of a JSON answer (list items by number); ``None`` if absent."""
    for part in path.split("."):
        if isinstance(answer, Mapping):
            answer = answer.get(part)
        elif isinstance(answer, list) and part.isdigit() and int(part) < len(answer):
            answer = answer[int(part)]
        else:
            return None
    return answer
