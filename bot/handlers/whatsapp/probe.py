"""One number's settings tried against the Graph API, for the console: a GET of the number
(``/{phone_number_id}``) with the inbox's access token answers with its display number."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from bot.handlers.kit.egress import refusal
from bot.handlers.kit.egress_guards import ChannelEgress
from bot.handlers.kit.payload import json_or_none
from bot.handlers.kit.probe import ProbeFailed
from bot.handlers.whatsapp.graph import graph_session

TIMEOUT = 15.0


async def display_number(guard: ChannelEgress, api_version: str, account_id: str, config: Mapping[str, Any]) -> str:
    """The number's ``display_phone_number`` (and verified name); :class:`ProbeFailed` otherwise."""
    api_base, refused = guard.account_api_base(account_id, config)
    if refused:
        raise ProbeFailed("refused", refused)
    number = quote(str(config.get("phone_number_id") or ""), safe="")  # one path segment, whatever was typed
    url = f"{api_base.rstrip('/')}/v{float(api_version)}/{number}"
    session = graph_session(guard, timeout=TIMEOUT)
    try:
        response = await session.get(
            url,
            params={"fields": "display_phone_number,verified_name"},
            headers={"Authorization": f"Bearer {config.get('access_token') or ''}"},
        )
    except httpx.HTTPError as exc:
        found = refusal(exc)
        raise ProbeFailed("unreachable", str(found) if found else str(exc)[:300] or type(exc).__name__) from None
    finally:
        await session.aclose()
    return _shown(response.status_code, response.content)


def _shown(status: int, body: bytes) -> str:
    answer = json_or_none(body)
    if not isinstance(answer, dict):
        raise ProbeFailed("unreachable", f"HTTP {status} without a Graph API answer")
    error = answer.get("error")
    if status != 200 or isinstance(error, dict):
        message = error.get("message") if isinstance(error, dict) else None
        raise ProbeFailed("provider", f"{status} {str(message or 'error')[:300]}")
    shown = answer.get("display_phone_number")
    if not isinstance(shown, str) or not shown:
        raise ProbeFailed("unreachable", "the answer names no display_phone_number")
    name = answer.get("verified_name")
    return f"{shown} ({name})" if isinstance(name, str) and name else shown
