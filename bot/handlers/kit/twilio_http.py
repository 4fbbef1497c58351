"""The Twilio library's HTTP client, noting what a 429 said in ``Retry-After``, and handing aiohttp
a request it has nothing left to build.

The library raises ``TwilioRestException`` without the response's headers, so a rate-limited send
could only back off by the outbox's own schedule, too soon or too late. The client notes the header
for the task that made the request (a context variable: concurrent sends never see each other's);
the send's error handling reads it once.

The library gives aiohttp its form as a dict and its credentials as ``auth``: aiohttp turned the
dict into a ``FormData`` field by field (about a tenth of an SMS send's CPU, ``bench/sends.py``) and
warns that ``auth`` is deprecated. The client encodes the form once with
``urlencode``, as ``FormData`` does for fields without files, and sends the ``Authorization``
header itself (``encode_basic_auth``, as aiohttp asks). It also applies the timeout it was made
with (``twilio.timeout``), which the library's async client leaves out.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlencode

from aiohttp import encode_basic_auth
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

_RETRY_AFTER: ContextVar[float | None] = ContextVar("twilio_retry_after", default=None)
_FORM = "application/x-www-form-urlencoded"
_LONGEST = 3600.0  # seconds; anything longer (or an HTTP date) leaves the outbox's own backoff


class TwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    async def request(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        sent = dict(headers or {})
        if auth is not None:
            sent["Authorization"] = encode_basic_auth(*auth)
        body: Any = data
        if isinstance(data, Mapping) and data and sent.get("Content-Type", _FORM) == _FORM:
            sent["Content-Type"] = _FORM
            body = urlencode(list(data.items()), doseq=True).encode()
        # the library passes no timeout, and its async client (unlike its sync one) does not fall
        # back to the one it was made with: aiohttp took None for no limit at all
        limit = timeout if timeout is not None else self.timeout
        response = await super().request(
            method,
            url,
            params=params,
            data=body,
            headers=sent,
            auth=None,
            timeout=limit,
            allow_redirects=allow_redirects,
        )
        if response.status_code == 429:
            _RETRY_AFTER.set(_seconds(response.headers.get("Retry-After")))
        return response


def last_retry_after() -> float | None:
    """The ``Retry-After`` of this task's last 429 (seconds), once; ``None`` when it gave none."""
    seconds = _RETRY_AFTER.get()
    _RETRY_AFTER.set(None)
    return seconds


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds is not None and 0 <= seconds <= _LONGEST else None
