"""Custom actions: the business's own code, reached over Rasa's action server protocol.

The router POSTs ``{"next_action", "sender_id", "tracker", "domain", "version"}`` to the action
endpoint (``actions.endpoint``, Rasa's ``/webhook``) and applies what comes back: ``events`` (slots
set) and ``responses`` (texts, or names of domain responses). A server written with ``rasa-sdk``
works unchanged.

Every call goes through the egress guard's session, has a timeout, and is retried once only when the
request cannot have reached the server (the connection failed); a timeout or an error answer is not
retried, as the action may have done its work. After ``failures_to_open`` failures in a row the
endpoint's breaker opens: calls fail at once for ``open_seconds``, then one call tries again. A
failure raises :class:`ActionFailed` with a one-line reason; the dialogue hands the conversation to
a human with it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bot.handlers.kit.egress import refusal

SessionFactory = Callable[..., aiohttp.ClientSession]
RASA_VERSION = "3.6.0"  # the Rasa release whose protocol this speaks


class ActionFailed(Exception):
    """An action could not be run; ``str()`` says why in one line."""


@dataclass(frozen=True)
class ActionOutcome:
    slots: Mapping[str, Any] = field(default_factory=dict)  # slots the action set (None: cleared)
    texts: tuple[str, ...] = ()  # texts to send, in order
    responses: tuple[str, ...] = ()  # domain responses to send (the dialogue picks the language)


class Breaker:
    """A circuit breaker for one endpoint."""

    def __init__(self, failures_to_open: int = 5, open_seconds: float = 30.0) -> None:
        self._limit = failures_to_open
        self._open_seconds = open_seconds
        self._failures = 0
        self._opened_at: float | None = None

    def check(self) -> None:
        if self._opened_at is not None and time.monotonic() - self._opened_at < self._open_seconds:
            raise ActionFailed(f"the action server failed {self._failures} times in a row; not called for a while")

    def succeeded(self) -> None:
        self._failures, self._opened_at = 0, None

    def failed(self) -> None:
        self._failures += 1
        if self._failures >= self._limit:
            self._opened_at = time.monotonic()


class ActionServer:
    """One action endpoint (Rasa's ``action_endpoint``)."""

    def __init__(self, url: str, open_session: SessionFactory, timeout: float = 5.0) -> None:
        self.url = url
        self._open_session = open_session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self.breaker = Breaker()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(
        self, action: str, sender_id: str, tracker: Mapping[str, Any], domain: Mapping[str, Any]
    ) -> ActionOutcome:
        self.breaker.check()
        call = {
            "next_action": action,
            "sender_id": sender_id,
            "tracker": tracker,
            "domain": domain,
            "version": RASA_VERSION,
        }
        try:
            answer = await self._post(call)
        except ActionFailed:
            self.breaker.failed()
            raise
        self.breaker.succeeded()
        return outcome_of(answer)

    async def _post(self, call: Mapping[str, Any]) -> Any:
        if self._session is None:
            self._session = self._open_session(timeout=self._timeout)
        seconds = self._timeout.total or 0
        status, answer = await request_json(self._session, "POST", self.url, "the action server", seconds, json=call)
        if status >= 300:
            detail = str(answer.get("error", ""))[:200] if isinstance(answer, Mapping) else ""
            raise ActionFailed(f"the action server answered {status}" + (f": {detail}" if detail else ""))
        return answer


async def request_json(
    session: aiohttp.ClientSession, method: str, url: str, who: str, seconds: float, **options: Any
) -> tuple[int, Any]:
    """One call of an action: its status and JSON answer (``None`` for an error answer that is not
    JSON). Retried once only when the connection failed (the request cannot have arrived); never
    redirected. ``ActionFailed`` naming ``who`` when there is no answer to read."""
    for attempt in (1, 2):
        try:
            async with session.request(method, url, allow_redirects=False, **options) as response:
                if response.status < 300:
                    return response.status, await response.json(content_type=None)
                try:
                    return response.status, await response.json(content_type=None)
                except ValueError:
                    return response.status, None
        except aiohttp.ClientConnectorError as exc:
            if (blocked := refusal(exc)) is not None:
                raise ActionFailed(f"the egress guard refused {who}: {blocked}") from None
            if attempt == 2:
                raise ActionFailed(f"{who} is unreachable: {exc.os_error}") from None
        except TimeoutError:
            raise ActionFailed(f"{who} did not answer within {seconds:g} s") from None
        except (aiohttp.ClientError, ValueError) as exc:
            raise ActionFailed(f"{who}'s answer was unreadable: {type(exc).__name__}") from None
        await asyncio.sleep(0.2)
    raise AssertionError("unreachable")


def outcome_of(answer: Any) -> ActionOutcome:
    """The slots, texts and responses of an action server's answer; ``ActionFailed`` if it is not one."""
    if not isinstance(answer, Mapping):
        raise ActionFailed("the action server's answer was not a JSON object")
    events, responses = answer.get("events") or [], answer.get("responses") or []
    if not isinstance(events, list) or not isinstance(responses, list):
        raise ActionFailed("the action server's answer has events or responses that are not lists")
    slots = {
        str(e["name"]): e.get("value")
        for e in events
        if isinstance(e, Mapping) and e.get("event") == "slot" and isinstance(e.get("name"), str)
    }
    texts: list[str] = []
    named: list[str] = []
    for r in responses:
        if isinstance(r, Mapping) and isinstance(r.get("text"), str) and r["text"].strip():
            texts.append(r["text"])
        elif isinstance(r, Mapping) and isinstance(r.get("response") or r.get("template"), str):
            named.append(str(r.get("response") or r.get("template")))
    return ActionOutcome(slots, tuple(texts), tuple(named))
