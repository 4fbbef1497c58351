"""Every channel's parser as one function of bytes, and what a correct outcome is.

A parser may accept a body (returning events), refuse it as malformed (400), or set it aside as
an event we do not handle (2xx, logged). Anything else it raises is a bug that would answer 500.
An accepted event must be storable as the store will write it, and usable: a non-empty external
id (the dedup key) and sender address. Shared by the property tests and ``bench/fuzz.py``.
"""

from __future__ import annotations

import dataclasses
from typing import Any
from urllib.parse import urlencode

import bson

from bot.handlers.channels import build_adapter
from bot.handlers.email.adapter import EmailAdapter
from bot.handlers.email.parse import parse_mail
from bot.handlers.kit.egress_guards import EgressGuards
from bot.handlers.kit.protocol import ChannelContext, MalformedPayload, UnsupportedEvent
from bot.handlers.sms.adapter import SmsAdapter
from bot.handlers.voice.adapter import VoiceAdapter
from bot.handlers.webchat.adapter import WebchatAdapter
from bot.router.sanitize import checked_event, storable
from bot.settings import Settings
from conversations.models import _dump
from conversations.traffic import CallEvent, ConsentChange, Inbound, MessageEdit, StatusUpdate
from tests.fakes.graph_api import ACCESS_TOKEN, PHONE_NUMBER_ID
from tests.fakes.telegram_api import TOKEN
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL
from tests.handlers.channels import TG_SECRET, WA_SECRET, WA_VERIFY

ACCEPTED, MALFORMED, UNSUPPORTED = "accepted", "malformed", "unsupported"


def parser_settings() -> Settings:
    settings = Settings()
    for section, values in {
        "server": {"public_url": PUBLIC_URL},
        "webchat": {"secret": "fuzz-secret"},
        "telegram": {"token": TOKEN, "webhook_secret": TG_SECRET},
        "whatsapp": {
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": ACCESS_TOKEN,
            "app_secret": WA_SECRET,
            "verify_token": WA_VERIFY,
        },
        "twilio": {"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
        "sms": {"from_number": "+14155550100"},
        "voice": {"enabled": True},
        "email": {"address": "support@shop.example"},
    }.items():
        settings = settings.replace(section, **values)
    return settings


class Parsers:
    """One adapter per channel, built as the router builds them (no I/O)."""

    def __init__(self) -> None:
        settings = parser_settings()
        context = ChannelContext(settings, "default", EgressGuards.from_settings(settings))
        self.adapters = {
            name: build_adapter(name, context) for name in ("webchat", "telegram", "whatsapp", "sms", "voice", "email")
        }
        webchat = self.adapters["webchat"]
        assert isinstance(webchat, WebchatAdapter)
        self.visitor_token = webchat.tokens.token_for("default", "vfuzz")

    def parse(self, channel: str, case: Any) -> list[Any]:
        """The events of one case (bytes, a form as a dict, a raw mail)."""
        adapter = self.adapters[channel]
        if channel == "sms":
            assert isinstance(adapter, SmsAdapter)
            return adapter.parse(urlencode(case, encoding="utf-8", errors="surrogatepass").encode(), {})
        if channel == "voice":
            assert isinstance(adapter, VoiceAdapter)
            return [adapter.gateway.parse_call(urlencode(case, encoding="utf-8", errors="surrogatepass").encode())]
        if channel == "email":
            assert isinstance(adapter, EmailAdapter)
            return [adapter.inbound(parse_mail(case))]
        return list(adapter.parse(case, {}))

    def check(self, channel: str, case: Any) -> str:
        """The outcome of one case; raises ``AssertionError`` or the parser's own bug."""
        try:  # as the router takes them: parsed, then checked before anything is stored
            events = [checked_event(event) for event in self.parse(channel, case)]
        except MalformedPayload:
            return MALFORMED
        except UnsupportedEvent:
            return UNSUPPORTED
        assert events, "a parser that accepts a body returns at least one event"
        for event in events:
            check_storable(event)
        return ACCEPTED


def check_storable(event: Any) -> None:
    """``event`` as the pipeline stores it encodes as BSON and keeps its keys usable."""
    event = storable(event)
    inner = event.message if isinstance(event, MessageEdit) else event
    assert isinstance(inner, (Inbound, StatusUpdate, CallEvent, ConsentChange)), type(inner)
    if isinstance(inner, ConsentChange):
        assert inner.address.strip() and inner.state in ("stop", "start"), f"bad preference: {inner!r}"[:300]
    else:
        assert isinstance(inner.external_id, str) and inner.external_id.strip(), f"empty dedup key: {inner!r}"[:300]
    if isinstance(inner, Inbound):
        assert inner.sender.address.strip(), f"empty sender: {inner!r}"[:300]
        assert isinstance(inner.text, str)
    bson.encode({"event": _dump(dataclasses.asdict(event))})
