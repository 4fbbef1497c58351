"""How one WhatsApp number talks to the Graph API: pywa's async client for everything with protocol
work in it (templates, buttons and lists, media uploads, media downloads), and a plain text message
sent without it, one JSON POST to ``/{phone_number_id}/messages`` — the send that most replies are,
where pywa and httpx added only cost (about two thirds of a WhatsApp send's CPU, ``bench/sends.py``).
The direct send takes a phone number or WhatsApp id (what webhooks name customers by); any other
recipient (a business-scoped user id, a group) goes through pywa, which knows how to address it.

Both go over one aiohttp session, the egress guard's (opened on the first request), so every
connection is checked and a refusal is an error whose cause :func:`refusal` finds. A Graph API
error is pywa's ``WhatsAppError`` either way (``WhatsAppError.from_dict``), so both paths are
classified alike.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from pywa.types.sent_update import RecipientType
from pywa_async.client import WhatsApp
from pywa_async.errors import WhatsAppError

from bot.handlers.kit.egress import Egress
from bot.handlers.kit.payload import json_or_none
from bot.handlers.kit.protocol import PermanentSendError

# httpx-aiohttp builds a TLS context when constructed even when given a session, whose own it never
# uses: loading the CA bundle cost ~0.3 s of CPU per number. This one has no CAs: unused, and were it
# ever used it would fail closed (the guard's session verifies with aiohttp's default context).
_UNUSED_TLS = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
TIMEOUT = 30.0
_ADDRESSED_BY_NUMBER = (RecipientType.WA_ID, RecipientType.PHONE_NUMBER)  # "to", an individual


class GraphSession:
    """The egress guard's aiohttp session, opened on first use and shared by pywa's httpx client
    (through ``httpx-aiohttp``) and the plain text send."""

    def __init__(self, egress: Egress, timeout: float = TIMEOUT) -> None:
        self._egress = egress
        self.timeout = timeout
        self.deadline = aiohttp.ClientTimeout(total=timeout)  # a direct send's, made once
        self._session: aiohttp.ClientSession | None = None
        self.httpx = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), transport=AiohttpTransport(client=self.aiohttp, verify=_UNUSED_TLS)
        )

    def aiohttp(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self._egress.session(limit=100)
        return self._session

    async def close(self) -> None:
        await self.httpx.aclose()  # closes the aiohttp session too, once httpx has used it
        if self._session is not None:
            await self._session.close()


def graph_session(egress: Egress, timeout: float = TIMEOUT) -> httpx.AsyncClient:
    """An httpx client over the egress guard's aiohttp session (``httpx-aiohttp``): httpcore's own
    pool cost CPU on every request (a WhatsApp send cost three times a Telegram one)."""
    return GraphSession(egress, timeout).httpx


@dataclass
class GraphClient:
    """One number's Graph API: ``pywa`` for what has protocol work in it, :meth:`send_text` for a
    plain text message."""

    pywa: WhatsApp
    session: GraphSession
    base_url: str  # ``{api_base}/v{version}``
    phone_number_id: str
    token: str = field(repr=False)

    async def send_text(self, to: str, body: str) -> str:
        """Send ``body`` as a text message (no link preview, as pywa sends it); the message id.
        Raises ``WhatsAppError`` for an answer with an error, aiohttp's (or httpx's, through pywa)
        errors for no answer."""
        if RecipientType.from_recipient(to) not in _ADDRESSED_BY_NUMBER:
            return str((await self.pywa.send_message(to, body)).id)
        message = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"body": body, "preview_url": False},
        }
        async with self.session.aiohttp().post(
            f"{self.base_url}/{self.phone_number_id}/messages",
            json=message,
            headers={"Authorization": f"Bearer {self.token}"},
            allow_redirects=False,
            timeout=self.session.deadline,
        ) as response:
            status, raw = response.status, await response.read()
            retry_after = response.headers.get("Retry-After")
        answer = json_or_none(raw)
        if status >= 400:
            raise graph_error(answer, status, raw, retry_after)
        sent = answer.get("messages") if isinstance(answer, Mapping) else None
        if not isinstance(sent, list) or not sent or not isinstance(sent[0], Mapping) or not sent[0].get("id"):
            # taken, perhaps: sending again could write twice
            raise PermanentSendError(f"whatsapp: the Graph API answered {status} without a message id; not retried")
        return str(sent[0]["id"])

    async def close(self) -> None:
        await self.session.close()


def make_client(config: Mapping[str, Any], api_base: str, api_version: str, egress: Egress) -> GraphClient:
    """A number's Graph API client whose calls go to ``api_base`` (Meta's, or a fake)."""
    session = GraphSession(egress)
    token = str(config["access_token"])
    pywa = WhatsApp(
        phone_id=str(config["phone_number_id"]), token=token, session=session.httpx, api_version=api_version
    )
    base_url = f"{api_base.rstrip('/')}/v{float(api_version)}"
    session.httpx.base_url = base_url  # pywa set Meta's; ours wins
    return GraphClient(pywa, session, base_url, str(config["phone_number_id"]), token)


def graph_error(answer: Any, status: int, raw: bytes, retry_after: str | None) -> WhatsAppError:
    """A Graph API error answer as pywa's ``WhatsAppError`` (as pywa would have raised it: an answer
    without Meta's error shape becomes one with the status as its code), with the status and
    ``Retry-After`` on its response as pywa keeps them."""
    response = httpx.Response(status, headers={"Retry-After": retry_after} if retry_after else None)
    error = answer.get("error") if isinstance(answer, Mapping) else None
    try:
        return WhatsAppError.from_dict(error=dict(error), response=response)  # type: ignore[arg-type]
    except (TypeError, KeyError, ValueError, OverflowError):
        text = raw[:300].decode("utf-8", "replace")
        fallback = {"code": status, "message": text or f"Non-JSON error response (HTTP {status})"}
        return WhatsAppError.from_dict(error=fallback, response=response)
