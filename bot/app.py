"""The aiohttp application factory: wires store, channels, pipeline, outbox and web.

Lifecycles live in ``cleanup_ctx`` entries, in start order: the store (starting the embedded
server when no MongoDB URI is set), then the channels and the pipeline with its background
workers (outbox sender, dispatch sweeper). Shutdown runs them backwards: workers stop, work in
flight drains, the store closes, the embedded server stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

from aiohttp import web

from bot.handlers.channels import build_adapter, enabled_channels, send_limits
from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.egress_guards import EgressGuards
from bot.handlers.kit.protocol import ChannelContext
from bot.handlers.kit.sink import InboundSource, ThreadLocator
from bot.install_token import open_install_token
from bot.keys import (
    ADAPTERS,
    DISPATCHER,
    DOMAIN,
    EGRESS,
    EMBEDDED,
    EVENTS,
    INSTALL_TOKEN,
    METRICS,
    NLU,
    OUTBOX,
    PIPELINE,
    QUEUE,
    RESPONSES,
    SATISFACTION,
    SETTINGS,
    SHIFTS,
    STORE,
    STORE_LISTENERS,
    WEBHOOKS,
)
from bot.logs import log_event
from bot.metrics import Metrics
from bot.nlu.responses import load_responses
from bot.nlu.service import NluService
from bot.router.dialogue.actions import ActionServer
from bot.router.dialogue.domain import check_timeouts, load_domain
from bot.router.dialogue.engine import Dialogue
from bot.router.dialogue.http_actions import HttpActions
from bot.router.dispatch import Dispatcher, ReplyLimit
from bot.router.inbound import InboundPipeline, InboundRecorder
from bot.router.outbox import Outbox
from bot.router.queue import Queue
from bot.router.satisfaction import RatingLinks, Satisfaction
from bot.router.shifts import Shifts
from bot.router.sweeper import DispatchSweeper
from bot.router.thread_log import ThreadLog
from bot.router.webhooks.events import ThreadEvents
from bot.router.webhooks.sender import WebhookSender
from bot.secret_key import open_sealer
from bot.services import Services
from bot.services.attachments import files_quota
from bot.services.campaigns import CampaignSender
from bot.services.replies import Replies
from bot.services.retention import RetentionJob
from bot.services.threads import ThreadActions
from bot.settings import Settings
from bot.tasks import stop_tasks
from bot.web import setup_web
from bot.web.errors import error_middleware
from bot.web.hosts import host_check
from bot.web.keys import CAMPAIGNS, SERVICES
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories

log = logging.getLogger("omnirouter.app")


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        client_max_size=settings.server.client_max_size, middlewares=[host_check(settings.server), error_middleware]
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[EGRESS] = EgressGuards.from_settings(settings)
    context = ChannelContext(
        settings=settings, account_id=settings.account.id, egress=app[EGRESS], metrics=app[METRICS]
    )
    adapters = {name: build_adapter(name, context) for name in enabled_channels(settings)}
    app[ADAPTERS] = adapters
    app[RESPONSES] = load_responses(Path(settings.nlu.responses))  # ResponsesError: a bad file stops start-up
    app[DOMAIN] = load_domain(Path(settings.dialogue.folder))  # DomainError: so does a bad dialogue file
    action_timeout = settings.dialogue.action_timeout if settings.dialogue.action_endpoint else None
    check_timeouts(app[DOMAIN], action_timeout, settings.dispatch.lease_seconds)
    for adapter in adapters.values():
        app.add_routes(adapter.routes())
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_nlu_ctx)
    app.cleanup_ctx.append(_pipeline_ctx)
    app.on_shutdown.append(_shutdown)
    setup_web(app)
    return app


async def _shutdown(app: web.Application) -> None:
    """Once a stop is asked: no campaign message is queued from then on (one started is stored
    and sent in the drain), and the channels stop taking traffic."""
    if CAMPAIGNS in app:
        await app[CAMPAIGNS].stop()
    for adapter in app[ADAPTERS].values():
        await adapter.shutdown()


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    embedded: EmbeddedMongo | None = None
    uri = settings.store.mongodb_uri
    if not uri:
        embedded = EmbeddedMongo(Path(settings.store.embedded_dir), mode=settings.store.embedded_mode)  # type: ignore[arg-type]
        await embedded.start()
        uri = embedded.uri
        log_event(
            log,
            "store.embedded_started",
            dir=settings.store.embedded_dir,
            socket=str(embedded.socket_path),
            mode=settings.store.embedded_mode,
        )
    listeners = app[STORE_LISTENERS] if STORE_LISTENERS in app else ()
    store = Repositories.connect(
        uri,
        settings.store.database,
        timeout_ms=settings.store.timeout_ms,
        on_command=app[METRICS].count_store_command,
        listeners=listeners,
        reports_read_preference=settings.store.reports_read_preference,
    )
    app[EMBEDDED] = embedded
    app[STORE] = store
    try:
        await store.ensure_indexes()
        await store.accounts.ensure_account(settings.account.id, settings.account.name, utcnow())
        await open_sealer(settings.security, store)
        app[INSTALL_TOKEN] = await open_install_token(settings.api, store)
        yield
    finally:
        try:
            await asyncio.wait_for(store.close(), timeout=10)
        except TimeoutError:
            log_event(log, "store.close_timeout", logging.WARNING)
        finally:  # whatever closing the client raised, the server stops with the router
            if embedded is not None:
                await embedded.stop()


async def _nlu_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    nlu = NluService(app[STORE], settings.nlu, http=app[EGRESS].rasa.session)
    app[NLU] = nlu
    await nlu.start(settings.account.id)
    try:
        yield
    finally:
        await nlu.close()


async def _pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, store, metrics, adapters = app[SETTINGS], app[STORE], app[METRICS], app[ADAPTERS]
    for adapter in adapters.values():
        await adapter.start(store)
    events, sender = ThreadEvents(store), WebhookSender(store, settings.webhooks, app[EGRESS].webhooks)
    events.wake = sender.wake
    outbox = Outbox(store, adapters, metrics, settings.outbox, events=events)
    endpoint = settings.dialogue.action_endpoint
    actions = (
        ActionServer(endpoint, app[EGRESS].actions.session, settings.dialogue.action_timeout) if endpoint else None
    )
    http_actions = HttpActions(
        app[EGRESS].actions.session, store.secrets.read_sealed_secret, app[EGRESS].account_actions.session
    )
    queue = Queue(store, settings.queue, outbox, settings.console.record_location, events=events)
    satisfaction = Satisfaction(store, outbox, RatingLinks(settings.server.public_url))
    await satisfaction.start()
    dispatcher = Dispatcher(
        store,
        queue,
        outbox,
        metrics,
        settings.dispatch.queued_notice,
        app[NLU],
        app[RESPONSES],
        events=events,
        reply_limit=ReplyLimit(settings.dispatch.max_bot_replies, settings.dispatch.bot_reply_window),
        dialogue=Dialogue(app[DOMAIN], app[RESPONSES], actions, settings.dialogue.clear_intent, http_actions),
        satisfaction=satisfaction,
        lease=timedelta(seconds=settings.dispatch.lease_seconds),
    )
    lease = timedelta(seconds=settings.dispatch.lease_seconds)
    locators = {name: a for name, a in adapters.items() if isinstance(a, ThreadLocator)}
    recorder = InboundRecorder(store, lease, locators, reopen=queue.reopen, answers=satisfaction.tag)
    pipeline = InboundPipeline(store, recorder, dispatcher, metrics)
    sweeper = DispatchSweeper(store, dispatcher, settings.dispatch.sweep_interval, lease)
    app[OUTBOX], app[QUEUE], app[SATISFACTION] = outbox, queue, satisfaction
    app[SHIFTS] = Shifts(store, queue, settings.queue.requeue_on_shift_end)
    app[DISPATCHER], app[PIPELINE] = dispatcher, pipeline
    app[EVENTS], app[WEBHOOKS] = events, sender
    campaigns = app[CAMPAIGNS] = CampaignSender(
        store,
        outbox,
        settings.campaigns,
        settings.queue.timezone,
        settings.server.public_url,
        adapters,
        send_limits(settings),
        settings.account.id if settings.section(EmailSettings).address else None,
    )
    app[SERVICES] = Services(
        replies=Replies(store, outbox, adapters, queue, ThreadLog(store, events), files_quota(settings)),
        threads=ThreadActions(queue, satisfaction),
    )
    for adapter in adapters.values():
        adapter.bind(pipeline)
        if isinstance(adapter, InboundSource):
            await adapter.start_receiving()
    workers = [
        asyncio.create_task(outbox.run(), name="outbox"),
        asyncio.create_task(sweeper.run(), name="dispatch-sweeper"),
        asyncio.create_task(sender.run(), name="webhooks"),
        asyncio.create_task(queue.keep_assigning(settings.queue.assign_interval), name="auto-assign"),
        asyncio.create_task(
            RetentionJob(store, settings.retention, retrain=settings.nlu.engine == "embedded").run(), name="retention"
        ),
    ]
    for name, adapter in adapters.items():
        workers += [asyncio.create_task(job, name=f"{name}-background") for job in adapter.background()]
    campaigns.start()
    try:
        yield
    finally:
        await campaigns.stop()  # first: no campaign message is queued while sends drain
        await pipeline.drain()
        await asyncio.gather(outbox.stop(), sender.stop())  # each asked to lease no more, at once
        await stop_tasks(workers)
        await sender.close()
        await http_actions.close()
        if actions is not None:
            await actions.close()
        for adapter in adapters.values():
            await adapter.close()
