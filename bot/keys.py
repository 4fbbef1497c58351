"""The application's shared state, as typed ``web.AppKey`` entries (no module globals)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.handlers.kit.protocol import ChannelAdapter
    from bot.handlers.kit.egress_guards import EgressGuards
    from bot.install_token import InstallToken
    from bot.metrics import Metrics
    from bot.nlu.responses import Responses
    from bot.nlu.service import NluService
    from bot.router.dispatch import Dispatcher
    from bot.router.inbound import InboundPipeline
    from bot.router.outbox import Outbox
    from bot.router.queue import Queue
    from bot.router.shifts import Shifts
    from bot.web.apikit import Operation
    from bot.web.live import ConsoleHub
    from bot.web.login_throttle import LoginLimiter
    from bot.webhooks.events import ThreadEvents
    from bot.webhooks.sender import WebhookSender
    from bot.settings import Settings
    from conversations.embedded import EmbeddedMongo
    from conversations.repositories import Repositories

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
STORE: web.AppKey[Repositories] = web.AppKey("store")
EMBEDDED: web.AppKey[EmbeddedMongo | None] = web.AppKey("embedded")
ADAPTERS: web.AppKey[dict[str, ChannelAdapter]] = web.AppKey("adapters")
PIPELINE: web.AppKey[InboundPipeline] = web.AppKey("pipeline")
DISPATCHER: web.AppKey[Dispatcher] = web.AppKey("dispatcher")
OUTBOX: web.AppKey[Outbox] = web.AppKey("outbox")
QUEUE: web.AppKey[Queue] = web.AppKey("queue")
NLU: web.AppKey[NluService] = web.AppKey("nlu")
RESPONSES: web.AppKey[Responses] = web.AppKey("responses")
SHIFTS: web.AppKey[Shifts] = web.AppKey("shifts")
CONSOLE_HUB: web.AppKey[ConsoleHub] = web.AppKey("console_hub")
LOGIN_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("login_limiter")
FIRST_ADMIN: web.AppKey[tuple[str, str] | None] = web.AppKey("first_admin")  # (login, password) once
EVENTS: web.AppKey[ThreadEvents] = web.AppKey("events")  # thread events for webhook subscriptions
WEBHOOKS: web.AppKey[WebhookSender] = web.AppKey("webhooks")
INSTALL_TOKEN: web.AppKey[InstallToken] = web.AppKey("install_token")  # the superadmin's bearer token
API_OPERATIONS: web.AppKey[list[Operation]] = web.AppKey("api_operations")  # what /api/openapi.json describes
EGRESS: web.AppKey[EgressGuards] = web.AppKey("egress")  # one egress guard per purpose, built once
