"""The optional remote engine: a running Rasa server's ``POST /model/parse``.

Selected with ``nlu.engine = "rasa"``. A slow, failing or nonsensical server raises
:class:`NluUnavailable` within ``nlu.rasa_timeout`` seconds, and the dispatcher hands the
conversation to a human rather than leaving the customer waiting.

Requests go through the session the router gives (the egress guard's, ``bot.handlers.kit.egress``):
``nlu.rasa_url``'s host is allowed there because the operator named it, but a redirect from it to
any other host is checked like every other destination.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.logs import log_event
from bot.nlu.data import OUT_OF_SCOPE, Entity, Parse

log = logging.getLogger("omnirouter.nlu.remote")
RASA_FALLBACKS = {"nlu_fallback", "out_of_scope", OUT_OF_SCOPE}
# opens the HTTP session remote calls go through (with these options): the egress guard's
SessionFactory = Callable[..., aiohttp.ClientSession]


class NluUnavailable(Exception):
    """The NLU engine could not answer (remote down, timed out, or answered garbage)."""


class NluOverBudget(NluUnavailable):
    """The message took longer than ``nlu.parse_budget``: it goes to a human, not back to the NLU."""


class RasaClient:
    def __init__(
        self,
        url: str,
        timeout: float,
        open_session: SessionFactory,
        token: str = "",
        threshold: float = 0.5,
        ambiguity_margin: float = 0.1,
    ) -> None:
        self._open_session = open_session
        self._url = url.rstrip("/") + "/model/parse"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._params = {"token": token} if token else {}
        self._threshold = threshold
        self._margin = ambiguity_margin
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def parse(self, text: str) -> Parse:
        if self._session is None:
            self._session = self._open_session(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json={"text": text}, params=self._params) as response:
                if response.status != 200:
                    raise NluUnavailable(f"Rasa answered HTTP {response.status}")
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            refused = exc.os_error if isinstance(exc, aiohttp.ClientConnectorError) else None
            log_event(
                log, "nlu.remote_failed", logging.WARNING, error=type(exc).__name__, detail=str(refused or "")[:200]
            )
            raise NluUnavailable(f"Rasa server unreachable: {refused or type(exc).__name__}") from None
        return self._read(text, body)

    def _read(self, text: str, body: Any) -> Parse:
        try:
            intent = body["intent"] or {}
            name, confidence = str(intent.get("name") or OUT_OF_SCOPE), float(intent.get("confidence") or 0.0)
            ranking = tuple((str(r["name"]), float(r["confidence"])) for r in body.get("intent_ranking") or []) or (
                (name, confidence),
            )
            entities = tuple(
                Entity(
                    str(e["entity"]),
                    str(e.get("value", "")),
                    int(e["start"]),
                    int(e["end"]),
                    str(e.get("extractor") or "rasa"),
                    e.get("role"),
                    e.get("group"),
                )
                for e in body.get("entities") or []
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise NluUnavailable("Rasa answered something that is not a parse result") from None
        rejected = name in RASA_FALLBACKS or confidence < self._threshold
        second = ranking[1][1] if len(ranking) > 1 else 0.0
        return Parse(
            text=text,
            intent=OUT_OF_SCOPE if rejected else name,
            confidence=confidence,
            entities=entities,
            ranking=ranking,
            language=None,
            ambiguous=not rejected and confidence - second < self._margin,
            engine="rasa",
        )
