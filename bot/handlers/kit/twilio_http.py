"""The Twilio library's HTTP client, noting what a 429 said in ``Retry-After``.

The library raises ``TwilioRestException`` without the response's headers, so a rate-limited send
could only back off by the outbox's own schedule, too soon or too late. The client notes the header
for the task that made the request (a context variable: concurrent sends never see each other's);
the send's error handling reads it once.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

_RETRY_AFTER: ContextVar[float | None] = ContextVar("twilio_retry_after", default=None)
_LONGEST = 3600.0  # seconds; anything longer (or an HTTP date) leaves the outbox's own backoff


class TwilioHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    async def request(self, *args: Any, **kwargs: Any) -> Response:
        response = await super().request(*args, **kwargs)
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
