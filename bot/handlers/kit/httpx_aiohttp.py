"""An httpx transport carried by aiohttp: pywa builds the Graph API requests, aiohttp's pool sends them.

httpcore's connection pool checks every pooled connection for expiry (a socket poll and a dict of
socket attributes each) whenever a request starts or a response closes: with a few dozen sends in
flight that made a WhatsApp send cost about three times a Telegram send through aiogram's aiohttp
session. Behind this transport the requests pywa makes are unchanged (``httpx.AsyncClient``,
headers, bodies, timeouts, error types); only the socket work moves to aiohttp, which the Telegram
and Twilio clients already use. Responses stream, so a capped download never holds more than it
read; redirects are not followed here (httpx decides, as with its own transport); content
encodings are left to httpx to decode. Every connection goes through the egress guard
(``bot.handlers.kit.egress``): a refusal is an ``httpx.ConnectError`` caused by the guard's
``EgressRefused``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import httpx

from bot.handlers.kit.egress import Egress

# set by aiohttp itself from the body and the URL
_HOP_BY_HOP = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AiohttpTransport(egress))``: one guarded aiohttp session, opened
    on first use."""

    def __init__(self, egress: Egress, max_connections: int = 100) -> None:
        self._egress = egress
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = self._egress.connector(limit=self._max_connections)
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False, trust_env=False)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() not in _HOP_BY_HOP]
        try:
            response = await self._session_now().request(
                request.method, str(request.url), headers=headers, data=body or None,
                allow_redirects=False, timeout=_timeout(request),
            )
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.TimeoutException(_describe(exc, "timed out"), request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(_describe(exc, "cannot connect"), request=request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.NetworkError(_describe(exc, "request failed"), request=request) from exc
        return httpx.Response(
            status_code=response.status,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers],
            stream=_Body(response, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx.AsyncByteStream):
    """A response body read from aiohttp as it arrives, released when httpx closes the response."""

    def __init__(self, response: aiohttp.ClientResponse, request: httpx.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise httpx.ReadTimeout(_describe(exc, "read timed out"), request=self._request) from exc
        except aiohttp.ClientError as exc:
            raise httpx.ReadError(_describe(exc, "read failed"), request=self._request) from exc

    async def aclose(self) -> None:
        self._response.release()


def _timeout(request: httpx.Request) -> aiohttp.ClientTimeout:
    """httpx's per-request timeouts (connect, read, write, pool) as aiohttp's."""
    given = request.extensions.get("timeout") or {}
    return aiohttp.ClientTimeout(total=None, connect=given.get("pool"), sock_connect=given.get("connect"),
                                 sock_read=given.get("read"))


def _describe(exc: BaseException, fallback: str) -> str:
    return str(exc) or f"{fallback} ({type(exc).__name__})"
