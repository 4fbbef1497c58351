"""The application's shared state, as typed ``web.AppKey`` entries (no module globals): what the
application factory wires (settings, repositories, channels, pipeline, NLU, webhooks). The web
layer's own entries (the console hub, the login limiter, the API's operations, the services) are in
``bot/web/keys.py``. This module imports nothing above the router, so anything may import it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.handlers.kit.egress_guards import EgressGuards
    from bot.handlers.kit.protocol import ChannelAdapter
    from bot.install_token import InstallToken
    from bot.metrics import Metrics
    from bot.nlu.responses import Responses
    from bot.nlu.service import NluService
    from bot.router.dialogue.domain import Domain
    from bot.router.dispatch import Dispatcher
    from bot.router.inbound import InboundPipeline
    from bot.router.outbox import Outbox
    from bot.router.queue import Queue
    from bot.router.satisfaction import Satisfaction
    from bot.router.shifts import Shifts
    from bot.router.webhooks.events import ThreadEvents
    from bot.router.webhooks.sender import WebhookSender
    from bot.settings import Settings
    from conversations.client import StoreListener
    from conversations.embedded import EmbeddedMongo
    from conversations.repositories import Repositories

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
STORE: web.AppKey[Repositories] = web.AppKey("store")
EMBEDDED: web.AppKey[EmbeddedMongo | None] = web.AppKey("embedded")
# set before start: command listeners the store's client is created with (tests that count commands)
STORE_LISTENERS: web.AppKey[tuple[StoreListener, ...]] = web.AppKey("store_listeners")
ADAPTERS: web.AppKey[dict[str, ChannelAdapter]] = web.AppKey("adapters")
PIPELINE: web.AppKey[InboundPipeline] = web.AppKey("pipeline")
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox")
QUEUE: web.AppKey[Queue] = web.AppKey("queue")
SATISFACTION: web.AppKey[Satisfaction] = web.AppKey("satisfaction")  # rating questions and answers
NLU: web.AppKey[NluService] = web.AppKey("nlu")
RESPONSES: web.AppKey[Responses] = web.AppKey("responses")
DOMAIN: web.AppKey[Domain] = web.AppKey("domain")  # forms, slots, rules and actions of the bot
SHIFTS: web.AppKey[Shifts] = web.AppKey("shifts")
EVENTS: web.AppKey[ThreadEvents] = web.AppKey("events")  # thread events for webhook subscriptions
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("webhooks")
INSTALL_TOKEN: web.AppKey[InstallToken] = web.AppKey("install_token")  # the superadmin's bearer token
EGRESS: web.AppKey[EgressGuards] = web.AppKey("egress")  # one egress guard per purpose, built once
