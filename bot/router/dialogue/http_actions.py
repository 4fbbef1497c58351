"""Declarative HTTP actions: the simple case of "look it up in our system" without an action
server of the business's own (``http_actions:`` in the domain, docs/dialogue.md).

Slot values go into the URL escaped and into headers and a JSON body as they are; ``{secret:NAME}``
in a header is an install secret kept sealed in the store (``omnirouter action-secret NAME``), never
in the files. The call goes through the actions egress guard with the action's timeout, is retried
once only when the connection failed, and counts towards the breaker of its host. A 404 says the
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

Secrets = Callable[[str], Awaitable[str | None]]
_FIELD = re.compile(r"\{(secret:)?([\w-]+)\}")


def action_secret(name: str) -> str:
    """The install secret that ``{secret:NAME}`` names."""
    return f"action-secret:{name}"


class HttpActions:
    def __init__(self, open_session: SessionFactory, secrets: Secrets) -> None:
        self._open_session = open_session
        self._secrets = secrets
        self._session: aiohttp.ClientSession | None = None
        self._breakers: dict[str, Breaker] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self, action: HttpAction, slots: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The slots the answer sets and the response to say (the action's ``reply``, or its
        ``not_found`` after a 404); ``ActionFailed`` otherwise."""
        url = _FIELD.sub(lambda m: _path_value(slots.get(m.group(2)), m.group(2)), action.url)
        breaker = self._breakers.setdefault(urlsplit(url).netloc, Breaker())
        breaker.check()
        headers = {name: await self._filled(value, slots) for name, value in action.headers.items()}
        body = _body(action.body, slots) if action.method == "POST" else None
        try:
            status, answer = await self._call(action, url, headers, body)
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

    async def _filled(self, template: str, slots: Mapping[str, Any]) -> str:
        parts, last = [], 0
        for m in _FIELD.finditer(template):
            if m.group(1):
                secret = await self._secrets(m.group(2))
                if secret is None:
                    raise ActionFailed(
                        f"no action secret {m.group(2)} is stored (omnirouter action-secret {m.group(2)})"
                    )
                value = secret
            else:
                value = str(slots.get(m.group(2)) or "")
            parts += [template[last : m.start()], value]
            last = m.end()
        return "".join([*parts, template[last:]])

    async def _call(self, action: HttpAction, url: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        if self._session is None:
            self._session = self._open_session()
        timeout = aiohttp.ClientTimeout(total=action.timeout)
        options: dict[str, Any] = {"headers": headers, "json": body, "timeout": timeout}
        return await request_json(self._session, action.method, url, urlsplit(url).netloc, action.timeout, **options)


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
