"""Calls: ``POST /webhooks/voice`` takes call status callbacks and records each ended call in the
caller's thread (see ``bot/router/calls.py``); a missed call queues a "call back" for agents.

The first format is Twilio Voice's (status callbacks, and ``<Dial action>`` callbacks whose
``DialCallStatus`` says whether a person picked up); another provider is one more class with
``verify`` and ``parse_call`` in ``CALL_GATEWAYS``. The channel sends nothing: replies to a caller
go out by SMS when SMS is configured (calls join the number's SMS thread).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from bot.handlers.kit.protocol import BaseAdapter, ChannelContext, PermanentSendError, UnsupportedEvent
from bot.handlers.kit.twilio_lines import TwilioLines
from bot.handlers.sms import settings as sms
from bot.handlers.sms.adapter import EMPTY_TWIML, load_gateway
from bot.handlers.voice.settings import own_calls
from bot.logs import log_event
from conversations.traffic import CallEvent, Outbound, ProviderEvent

if TYPE_CHECKING:
    from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.handlers.voice")


class CallGateway(Protocol):
    """One voice provider's call events."""

    name: str

    async def verify(self, request: web.Request, body: bytes) -> None: ...

    def parse_call(self, body: bytes) -> CallEvent:
        """One callback -> the ended call; ``UnsupportedEvent`` for progress (ringing, ...)."""


CALL_GATEWAYS: dict[str, str] = {"twilio": "bot.handlers.kit.twilio:TwilioGateway"}


class VoiceAdapter(BaseAdapter):
    name = "voice"

    def __init__(self, context: ChannelContext) -> None:
        self.gateway: CallGateway = load_gateway(CALL_GATEWAYS["twilio"], context)
        self.thread_channel = "sms" if sms.own_line(context.settings) else self.name  # calls join SMS threads
        # the install's number when voice.enabled; accounts' Twilio-number inboxes that serve calls
        self.lines = TwilioLines(self.name, context, self.gateway, own_calls(context.settings))

    async def start(self, store: Repositories) -> None:
        self.lines.attach(store)

    async def close(self) -> None:
        await self.lines.close()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/webhooks/voice", self.webhook)]

    async def webhook(self, request: web.Request) -> web.Response:
        """find the number called, whose inbox takes calls (404) -> verify with its token (403) ->
        parse (400) -> record the ended call (an inbox's number: in the inbox's SMS thread when the
        number serves texts too, else its calls thread) -> 200 with empty TwiML."""
        body = await request.read()
        gateway, inbox_id, serves = await self.lines.for_webhook(request, body)
        await gateway.verify(request, body)
        try:
            event = gateway.parse_call(body)
        except UnsupportedEvent as exc:
            log_event(log, "webhook.unsupported", channel=self.name, reason=str(exc)[:200])
        else:
            if inbox_id is None:
                await self.sink.call_event(event, self.thread_channel)
            else:
                thread_channel = "sms" if serves == "both" else self.name
                await self.sink.call_event(dataclasses.replace(event, inbox_id=inbox_id), thread_channel)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        raise UnsupportedEvent("call events are recorded by the voice webhook, not as messages")

    async def send(self, outbound: Outbound) -> str:
        raise PermanentSendError("a phone call cannot carry a text reply; answer by SMS")
