"""Signed provider traffic for any router, in-process or a real process: each builder returns the
request a provider would make (path, body, headers), signed with the secrets the tests configure.

Shared by the hostile-input tests, the fault tests' harness and the benchmarks under ``bench/``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

from multidict import MultiDict

from tests.fakes.twilio import PUBLIC_URL, signature
from tests.handlers.channels import TG_SECRET, WA_SECRET, fixture

ROUTER_COLLECTIONS = ("messages", "threads", "contacts", "identities", "email_keys", "email_threads")


@dataclass(frozen=True)
class SignedRequest:
    """One POST as the provider sends it; ``key`` names the message for bookkeeping."""

    path: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    key: str = ""
    channel: str = ""


def telegram(update: Mapping[str, Any] | bytes, secret: str | None = TG_SECRET, key: str = "") -> SignedRequest:
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return SignedRequest("/webhooks/telegram", body, headers, key, "telegram")


def whatsapp(payload: Mapping[str, Any] | bytes, secret: str = WA_SECRET, key: str = "") -> SignedRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SignedRequest(
        "/webhooks/whatsapp", body, {"Content-Type": "application/json", "X-Hub-Signature-256": sig}, key, "whatsapp"
    )


def twilio(path: str, params: Mapping[str, str], key: str = "") -> SignedRequest:
    """A Twilio form webhook (``/webhooks/sms`` or ``/webhooks/voice``) signed over the public URL."""
    body = urlencode(params, encoding="utf-8", errors="surrogatepass")  # hostile text as the bytes it came from
    seen = MultiDict(parse_qsl(body, keep_blank_values=True))  # what the router reads: U+FFFD for bad bytes
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature(PUBLIC_URL + path, seen),
    }
    return SignedRequest(path, body.encode(), headers, key, path.rsplit("/", 1)[-1])


def webchat(payload: Mapping[str, Any] | bytes, key: str = "") -> SignedRequest:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return SignedRequest("/webchat/messages", body, {"Content-Type": "application/json"}, key, "webchat")


# --- realistic messages, numbered --------------------------------------------------------------


def telegram_text(n: int, chat: int, text: str = "where is my order?") -> SignedRequest:
    update = copy.deepcopy(fixture("telegram", "text"))
    update["update_id"] = 10_000_000 + n
    update["message"].update(
        message_id=n, text=text, date=int(time.time()), chat={"id": chat, "type": "private", "first_name": "Load"}
    )
    update["message"]["from"]["id"] = chat
    return telegram(update, key=f"telegram:{chat}:{n}")


def whatsapp_text(n: int, number: str, text: str = "where is my order?") -> SignedRequest:
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0].update(wa_id=number)
    value["messages"][0].update(id=f"wamid.LOAD{n:08d}", timestamp=str(int(time.time())), text={"body": text})
    value["messages"][0]["from"] = number
    return whatsapp(payload, key=f"whatsapp:wamid.LOAD{n:08d}")


def sms_text(n: int, number: str, text: str = "where is my order?") -> SignedRequest:
    params = {
        "MessageSid": f"SM{n:032d}",
        "SmsSid": f"SM{n:032d}",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": number,
        "To": "+14155550100",
        "Body": text,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
    }
    return twilio("/webhooks/sms", params, key=f"sms:SM{n:032d}")


def webchat_text(n: int, visitor_token: str | None, text: str = "where is my order?") -> SignedRequest:
    payload: dict[str, Any] = {"id": f"load-{n}", "text": text}
    if visitor_token:
        payload["visitor_token"] = visitor_token
    visitor = (visitor_token or "").partition(".")[0]
    return webchat(payload, key=f"webchat:{visitor}:load-{n}")


LONG_WORDS = "please tell me where my parcel is because I ordered it last week and nothing came yet".split()


def long_words(chars: int) -> str:
    """A customer's text of ``chars`` characters, words repeated (about five characters a token)."""
    return " ".join(LONG_WORDS[i % len(LONG_WORDS)] for i in range(chars // 3))[:chars]


def punctuation(chars: int) -> str:
    """``chars`` characters of punctuation: the engine's costliest text, a token a character."""
    return ("!?.,;:" * chars)[:chars]
