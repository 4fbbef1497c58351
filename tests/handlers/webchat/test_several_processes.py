"""Two router processes on one store: a reply reaches the visitor whichever process sends it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.settings import Settings
from tests import factories
from tests.conftest import make_settings
from tests.handlers.test_satisfaction import ask_on, resolve_only_thread
from tests.handlers.webchat.test_webchat import frames_until

StartClient = Callable[[Settings], Awaitable[TestClient]]


async def frames_for(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict[str, Any]]:
    """Every frame the page receives in the next ``seconds``."""
    seen: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                seen.append(await ws.receive_json())
    except TimeoutError:
        return seen


async def two_routers(start_client: StartClient, uri: str, db_name: str) -> tuple[TestClient, TestClient]:
    """Router A, and router B whose outbox looks for work only when it queued some itself (every
    60 s otherwise): what A queues, A sends."""
    live = {"poll_interval": 0.1}
    a = await start_client(make_settings(uri, db_name, console=live))
    b = await start_client(
        make_settings(uri, db_name, console=live, outbox={"poll_interval": 60, "base_delay": 0.01, "max_delay": 0.05})
    )
    return a, b


async def test_a_reply_sent_by_another_router_reaches_the_visitor_once(
    start_client: StartClient, embedded: Any, db_name: str
) -> None:
    a, b = await two_routers(start_client, embedded.uri, db_name)
    async with b.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()  # the welcome
        await ws.send_json({"type": "message", "id": "c1", "text": "where is my order?"})
        thread_id = next(f for f in await frames_until(ws, "ack") if f["type"] == "ack")["thread_id"]
        await frames_until(ws, "decision")
        await frames_for(ws, 1.0)  # the notice "a member of our team…", queued and sent by B itself

        reply = await a.post(f"/api/threads/{thread_id}/replies", json={"id": "r1", "text": "It ships today."})
        assert reply.status == 202
        message_id = (await reply.json())["id"]

        frames = await frames_for(ws, 3.0)
        pushed = [f for f in frames if f["type"] == "message" and f["message_id"] == message_id]
        assert len(pushed) == 1, frames
        assert pushed[0]["text"] == "It ships today." and pushed[0]["direction"] == "out"
        assert pushed[0]["thread_id"] == thread_id and pushed[0]["sender"] == "agent"
    sent = [i for i in await factories.outbox(a.server.app[STORE]) if i.text == "It ships today."]
    assert [str(i.state) for i in sent] == ["sent"]


async def test_a_visitor_with_pages_on_both_routers_gets_each_reply_once_on_each(
    start_client: StartClient, embedded: Any, db_name: str
) -> None:
    """The sending process pushes to its own sockets and also reads the event the reply makes:
    each page is given the reply once, whichever comes first."""
    a, b = await two_routers(start_client, embedded.uri, db_name)
    async with b.ws_connect("/webchat/ws") as on_b:
        token = (await on_b.receive_json())["visitor_token"]
        await on_b.send_json({"type": "message", "id": "c1", "text": "hello"})
        thread_id = next(f for f in await frames_until(on_b, "ack") if f["type"] == "ack")["thread_id"]
        await frames_until(on_b, "decision")
        async with a.ws_connect("/webchat/ws", params={"token": token}) as on_a:
            await on_a.receive_json()  # the welcome: its history has the conversation so far
            await frames_for(on_b, 1.0)
            replies = [
                await a.post(f"/api/threads/{thread_id}/replies", json={"id": f"r{n}", "text": f"answer {n}"})
                for n in (1, 2)
            ]
            ids = [(await r.json())["id"] for r in replies]
            seen_a, seen_b = await asyncio.gather(frames_for(on_a, 3.0), frames_for(on_b, 3.0))
    for frames in (seen_a, seen_b):
        assert [f["message_id"] for f in frames if f["type"] == "message"] == ids, frames


async def test_the_rating_question_asked_on_another_router_reaches_the_visitor(
    start_client: StartClient, embedded: Any, db_name: str
) -> None:
    """The question is queued after the resolution's own event: the event it makes itself brings it."""
    a, b = await two_routers(start_client, embedded.uri, db_name)
    await ask_on(a)
    async with b.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        await ws.send_json({"type": "message", "id": "c1", "text": "where is my order?"})
        await frames_until(ws, "decision")
        await resolve_only_thread(a, "webchat")
        frames = await frames_for(ws, 3.0)
    questions = [f for f in frames if f["type"] == "message" and f["options"]]
    assert len(questions) == 1, frames
    assert questions[0]["options"] == ["1", "2", "3", "4", "5"] and questions[0]["sender"] == "system"
