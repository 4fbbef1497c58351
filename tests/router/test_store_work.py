"""What one bot-answered message costs the store: its commands and the documents they write,
counted with PyMongo's command listener on the router's own client (issue 19, the lean path)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pymongo import monitoring

from bot.app import create_app
from bot.keys import PIPELINE, STORE_LISTENERS
from bot.settings import Settings
from conversations.embedded import EmbeddedMongo
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.thread_models import DecisionAction
from conversations.traffic import Identity, Inbound
from tests.conftest import make_settings
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_long_messages import inbound

_HANDSHAKES = frozenset({"hello", "ismaster", "isMaster", "endSessions", "ping"})
READS = frozenset({"find", "aggregate", "count", "distinct"})


class StoreWork(monitoring.CommandListener):
    """The commands the router sends while armed: ``(command, collection, documents)``, and how
    many of the documents were upserts (an update that stores a new document: an insert)."""

    def __init__(self) -> None:
        self.armed = False
        self.commands: list[tuple[str, str, int]] = []
        self.upserts = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.armed or event.command_name in _HANDSHAKES:
            return
        body = event.command
        documents = next((len(body[key]) for key in ("documents", "updates", "deletes") if key in body), 1)
        self.commands.append((event.command_name, str(body.get(event.command_name)), documents))
        self.upserts += sum(1 for update in body.get("updates", ()) if update.get("upsert"))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# no background poll in the measured second: only the message's own work is counted
QUIET = {
    "outbox": {"poll_interval": 60},
    "dispatch": {"sweep_interval": 600},
    "nlu": {"reload_interval": 600},
    "console": {"poll_interval": 60},
    "webhooks": {"concurrency": 0},
    "campaigns": {"poll_interval": 3600},
    "queue": {"assign_interval": 600},
}


def counted(settings: Settings) -> tuple[web.Application, StoreWork]:
    """A router app on ``settings`` whose store commands ``StoreWork`` counts once armed."""
    app = create_app(settings)
    work = StoreWork()
    app[STORE_LISTENERS] = (work,)
    return app, work


async def test_a_bot_answered_message_reads_the_store_twice_and_writes_its_thread_once(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes
) -> None:
    await install(store, starter_blob)
    app, work = counted(make_settings(embedded.uri, db_name, **QUIET))
    async with TestClient(TestServer(app)) as client:
        await measure(client.server.app, work, inbound("webchat", 7, "what are your opening hours?"))


async def test_over_telegram_too_the_answer_costs_five_round_trips(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, bot_api: FakeBotAPI
) -> None:
    """A provider that answers over HTTP: the reply is stored after its send, with the decision."""
    await install(store, starter_blob)
    app, work = counted(channel_settings(embedded.uri, db_name, telegram_api=bot_api.url, **QUIET))
    sender = Identity("telegram", "5512345678")
    question = Inbound(
        account_id="default", channel="telegram", external_id="tg-7", sender=sender, text="what are your opening hours?"
    )
    async with TestClient(TestServer(app)) as client:
        await measure(client.server.app, work, question)
    assert [call.method for call in bot_api.calls].count("sendMessage") == 3


async def test_over_whatsapp_the_reply_window_is_written_with_the_dialogue_state(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, graph_api: FakeGraphAPI
) -> None:
    """WhatsApp's customer-service window is kept on the message and written with the bot's state,
    not in an update of its own before it (was 3 updates a message)."""
    await install(store, starter_blob)
    app, work = counted(channel_settings(embedded.uri, db_name, graph_api=graph_api.url, **QUIET))
    ends = utcnow() + timedelta(hours=24, seconds=5)  # later than the warm-up messages' windows
    question = Inbound(
        account_id="default",
        channel="whatsapp",
        external_id="wamid.7",
        sender=Identity("whatsapp", "37120000007"),
        text="what are your opening hours?",
        window_ends_at=ends,
    )
    async with TestClient(TestServer(app)) as client:
        thread_id = await measure(client.server.app, work, question)
    assert len(graph_api.sent_ok()) == 3
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None and thread.wa_window_ends_ms == epoch_ms(ends)  # written with the state


async def measure(app: Any, work: StoreWork, question: Inbound) -> str:
    """The store work of ``question`` in an open conversation, checked; returns its thread's id."""
    pipeline = app[PIPELINE]
    for n in range(2):  # the customer's conversation is open, the engine warm
        early = None if question.window_ends_at is None else question.window_ends_at - timedelta(seconds=5)
        warm = dataclasses.replace(question, external_id=f"before-{n}", window_ends_at=early)
        _, task = await pipeline.receive(warm)
        assert task is not None and await task is not None
    await asyncio.sleep(0.3)

    work.armed = True
    recorded, task = await pipeline.receive(question)
    assert task is not None
    decision = await task
    await asyncio.sleep(0.5)  # the reply's send and its console event
    work.armed = False

    assert decision is not None and decision.action == DecisionAction.ANSWERED
    listed = "\n".join(map(str, work.commands))
    reads = [c for c in work.commands if c[0] in READS]
    # who wrote (the sender's identity) and to which open thread, with its dialogue state: the
    # thread is not read a second time to decide
    assert [(c[0], c[1]) for c in reads] == [("find", "identities"), ("find", "threads")], listed
    inserted = sum(n for command, _, n in work.commands if command == "insert") + work.upserts
    updated = sum(n for command, _, n in work.commands if command in ("update", "findAndModify")) - work.upserts
    # the thread is written once: the message's activity with the bot's dialogue state
    assert [c for c in work.commands if c[0] != "find" and c[1] == "threads"] == [("update", "threads", 1)], listed
    # the reply carries its own send state: no outbox collection on the message path
    assert not [c for c in work.commands if c[1] == "outbox"], listed
    # the consoles' live feed reads the reply itself: no event written for a bot's answer
    assert not [c for c in work.commands if c[1] == "events"], listed
    # issue 19's 2 and 2: the message, and the reply stored once sent, with its send state (an
    # upsert in the decision's command); the thread, and the decision on the message
    assert inserted <= 2 and updated <= 2, listed
    assert work.upserts <= 1, listed
    # round trips: was 11, then 9, then 7 (6 for the web chat); the decision and the reply in one
    assert len(work.commands) <= 5, listed
    return recorded.thread.id
