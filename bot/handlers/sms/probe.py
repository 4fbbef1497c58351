"""One Twilio number's settings tried against Twilio's REST API, for the console: the account's
``IncomingPhoneNumbers`` with that number, asked with the inbox's account SID and auth token
through the ``twilio`` egress guard, answer with the number and its friendly name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.http.response import Response
from twilio.rest import Client

from bot.handlers.kit.egress import refusal
from bot.handlers.kit.egress_guards import ChannelEgress
from bot.handlers.kit.payload import json_or_none
from bot.handlers.kit.probe import ProbeFailed
from bot.handlers.kit.twilio_http import TwilioHttpClient

TIMEOUT = 15.0


async def twilio_number(guard: ChannelEgress, account_id: str, config: Mapping[str, Any]) -> str:
    """``+number (friendly name)`` of the inbox's number in its Twilio account;
    :class:`ProbeFailed` when Twilio refuses the credentials or the account has no such number."""
    api_base, refused = guard.account_api_base(account_id, config)
    if refused:
        raise ProbeFailed("refused", refused)
    sid, number = str(config.get("account_sid") or ""), str(config.get("from_number") or "")
    http = TwilioHttpClient(pool_connections=False, timeout=TIMEOUT)
    http.session = guard.session(limit=1)
    client = Client(sid, str(config.get("auth_token") or ""), http_client=http)
    if api_base:
        client.api.base_url = api_base.rstrip("/")
    try:
        found = await client.incoming_phone_numbers.list_async(phone_number=number, limit=1)
    except TwilioException as exc:  # a page the library could not fetch: the answer is its second argument
        raise ProbeFailed("provider", _refused(exc)) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        refused_by_guard = refusal(exc)
        raise ProbeFailed("unreachable", str(refused_by_guard) if refused_by_guard else type(exc).__name__) from None
    finally:
        await http.close()
    if not found:
        raise ProbeFailed("provider", f"{number} is not a number of the Twilio account {sid}")
    shown, name = str(found[0].phone_number or number), found[0].friendly_name
    return f"{shown} ({name})" if name else shown


def _refused(exc: TwilioException) -> str:
    """Twilio's own words for a refusal: ``401 (code 20003) Authenticate``."""
    response = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], Response) else None
    if response is None:
        return str(exc)[:300]
    answer = json_or_none(response.text)
    if not isinstance(answer, dict):
        return f"HTTP {response.status_code} without a Twilio API answer"
    code = f" (code {answer['code']})" if isinstance(answer.get("code"), int) else ""
    return f"{response.status_code}{code} {str(answer.get('message') or 'error')[:300]}"
