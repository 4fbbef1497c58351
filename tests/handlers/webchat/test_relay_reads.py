"""What the relay costs on one router process: a reply this process pushed to every page of the
visitor itself needs no read of the thread when its event comes back through the live feed."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer
from pymongo import monitoring

from bot.app import create_app
from bot.handlers.webchat.relay import _NEWEST
from bot.keys import STORE_LISTENERS
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.conftest import make_settings
from tests.handlers.webchat.test_several_processes import StartClient, frames_for
from tests.handlers.webchat.test_webchat import frames_until
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)


class ThreadReads(monitoring.CommandListener):
    """Counts the relay's reads: a find of a thread's newest messages, ``_NEWEST`` of them (the
    page's history and the API read other numbers), and every event the feed reads."""

    def __init__(self) -> None:
        self.reads = 0
        self.feed_reads = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        command = event.command
        if event.command_name == "find" and command.get("find") == "messages" and command.get("limit") == _NEWEST:
            self.reads += 1
        if event.command_name in ("find", "getMore") and command.get(event.command_name) == "events":
            self.feed_reads += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def one_router(embedded: EmbeddedMongo, db_name: str, reads: ThreadReads) -> TestClient:
    app = create_app(make_settings(embedded.uri, db_name, console={"poll_interval": 0.1}))
    app[STORE_LISTENERS] = (reads,)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def events_followed(reads: ThreadReads) -> None:
    """Until the live feed has read the log past every event written so far."""
    await asyncio.sleep(0.5)
    before = reads.feed_reads
    while reads.feed_reads < before + 2:
        await asyncio.sleep(0.05)


async def test_a_bot_reply_to_a_visitor_connected_here_costs_no_relay_read(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes
) -> None:
    await install(store, starter_blob)
    reads = ThreadReads()
    client = await one_router(embedded, db_name, reads)
    try:
        async with client.ws_connect("/webchat/ws") as ws:
            await ws.receive_json()  # the welcome
            for n, text in enumerate(("hello", "what are your opening hours?", "thanks")):
                await ws.send_json({"type": "message", "id": f"c{n}", "text": text})
                frames = await frames_until(ws, "decision")
                decision = frames[-1]
                assert decision["action"] == "answered", decision
                frames += await frames_for(ws, 0.5)
                pushed = [f["message_id"] for f in frames if f["type"] == "message"]
                assert pushed == decision["replies"], frames  # each reply once
            await events_followed(reads)
        assert reads.reads == 0
    finally:
        await client.close()


async def test_a_reply_sent_by_another_process_is_read_here(
    embedded: EmbeddedMongo, db_name: str, start_client: StartClient
) -> None:
    """The other side: the reply's event names a message the page here lacks: it is read, once."""
    reads = ThreadReads()
    here = await one_router(embedded, db_name, reads)
    other = await start_client(make_settings(embedded.uri, db_name))
    try:
        async with here.ws_connect("/webchat/ws") as ws:
            await ws.receive_json()
            await ws.send_json({"type": "message", "id": "c1", "text": "where is my order?"})
            thread_id = next(f for f in await frames_until(ws, "ack") if f["type"] == "ack")["thread_id"]
            await frames_until(ws, "decision")
            await frames_for(ws, 1.0)  # the notice "a member of our team…", pushed here
            await events_followed(reads)
            assert reads.reads == 0
            reply = await other.post(f"/api/threads/{thread_id}/replies", json={"id": "r1", "text": "Today."})
            assert reply.status == 202
            message_id = (await reply.json())["id"]
            frames = await frames_for(ws, 2.0)
            assert [f["message_id"] for f in frames if f["type"] == "message"] == [message_id]
            await events_followed(reads)
        assert reads.reads >= 1
    finally:
        await here.close()
