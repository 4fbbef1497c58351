"""The web chat over a real WebSocket and its HTTP endpoint, happy and unhappy paths."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests import factories


async def frames_until(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every frame up to and including the first of type ``kind``."""
    seen = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.receive_json()
            seen.append(frame)
            if frame["type"] == kind:
                return seen


async def stored_messages(client: TestClient) -> int:
    return len(await factories.messages(client.server.app[STORE]))


async def test_a_conversation_over_the_socket(client: TestClient) -> None:
    async with client.ws_connect("/webchat/ws", params={"name": "Alice"}) as ws:
        welcome = await ws.receive_json()
        assert welcome["type"] == "welcome" and welcome["history"] == []
        token = welcome["visitor_token"]

        await ws.send_json({"type": "message", "id": "c1", "text": "where is my order?"})
        frames = await frames_until(ws, "decision")
        ack = next(f for f in frames if f["type"] == "ack")
        decision = frames[-1]
        assert ack["id"] == "c1" and not ack["duplicate"]
        assert decision["action"] == "queued" and decision["reason"] == "no_nlu"
        replies = [f for f in frames if f["type"] == "message"]
        if not replies:  # the notice may come after the decision
            replies = [f for f in await frames_until(ws, "message") if f["type"] == "message"]
        assert replies[0]["message_id"] == decision["replies"][0]
        assert "member of our team" in replies[0]["text"] and replies[0]["sender"] == "system"

        await ws.send_json({"type": "message", "id": "c2", "text": "hello?"})
        second = (await frames_until(ws, "decision"))[-1]
        assert second["action"] == "waiting" and second["replies"] == []

    # the same visitor comes back: the history holds the whole conversation
    async with client.ws_connect("/webchat/ws", params={"token": token}) as ws:
        welcome = await ws.receive_json()
        assert welcome["visitor_token"] == token
        texts = [(m["direction"], m["text"]) for m in welcome["history"]]
        assert texts[0] == ("in", "where is my order?")
        assert texts[1][0] == "out" and texts[2] == ("in", "hello?")
        assert welcome["history"][0]["client_id"] == "c1"
        # a message resent after a reconnect is acknowledged as a duplicate, stored once
        await ws.send_json({"type": "message", "id": "c2", "text": "hello?"})
        frames = await frames_until(ws, "decision")
        assert frames[0]["type"] == "ack" and frames[0]["duplicate"]
    assert await stored_messages(client) == 3


async def test_a_forged_token_gets_a_new_visitor_not_someone_elses_history(client: TestClient) -> None:
    async with client.ws_connect("/webchat/ws") as ws:
        token = (await ws.receive_json())["visitor_token"]
        await ws.send_json({"type": "message", "id": "x", "text": "secret order 42"})
        await frames_until(ws, "decision")
    visitor = token.split(".")[0]
    async with client.ws_connect("/webchat/ws", params={"token": f"{visitor}.forged"}) as ws:
        welcome = await ws.receive_json()
        assert welcome["history"] == []
        assert not welcome["visitor_token"].startswith(visitor)


async def test_bad_frames_get_clear_errors_and_store_nothing(client: TestClient) -> None:
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        cases = [
            ("not json", "bad_json"),
            (json.dumps([1, 2]), "bad_frame"),
            (json.dumps({"type": "shout"}), "bad_frame"),
            (json.dumps({"type": "message", "id": "a", "text": "   "}), "bad_message"),
            (json.dumps({"type": "message", "id": "a", "text": 5}), "bad_message"),
            (json.dumps({"type": "message", "id": "has space", "text": "hi"}), "bad_message"),
            (json.dumps({"type": "message", "text": "hi"}), "bad_message"),
            (json.dumps({"type": "message", "id": "a", "text": "x" * 4097}), "bad_message"),
        ]
        for frame, code in cases:
            await ws.send_str(frame)
            reply = await ws.receive_json()
            assert reply["type"] == "error" and reply["code"] == code, (frame[:40], reply)
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_json())["code"] == "bad_frame"
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json())["type"] == "pong"
    assert await stored_messages(client) == 0


async def test_post_a_message(client: TestClient) -> None:
    response = await client.post("/webchat/messages", json={"id": "p1", "text": "hi there", "name": "Bob"})
    assert response.status == 202
    body = await response.json()
    assert body["message_id"].startswith("msg_") and body["thread_id"].startswith("thr_")
    again = await client.post(
        "/webchat/messages", json={"id": "p1", "text": "hi there", "visitor_token": body["visitor_token"]}
    )
    assert (await again.json())["duplicate"] is True
    assert len(await factories.messages(client.server.app[STORE], direction="in")) == 1


async def test_bad_posts_are_4xx_and_store_nothing(client: TestClient) -> None:
    cases = [
        (b"{not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "not valid JSON"),
        (b"[]", 400, "JSON object"),
        (json.dumps({"id": "a"}).encode(), 400, "text must be"),
        (json.dumps({"id": "a", "text": "hi", "visitor_token": "v1.bad"}).encode(), 400, "visitor_token"),
        (json.dumps({"id": "a", "text": "hi", "visitor_token": 7}).encode(), 400, "visitor_token"),
        (json.dumps({"id": "a", "text": "hi", "name": "n" * 81}).encode(), 400, "name"),
        (b"x" * 2_000_000, 413, "larger than"),
    ]
    for body, status, detail in cases:
        response = await client.post("/webchat/messages", data=body, headers={"Content-Type": "application/json"})
        payload = await response.json()
        assert response.status == status, (body[:30], payload)
        assert detail in payload["detail"], payload
    unknown = await client.post("/webchat/messages?account=nope", json={"id": "a", "text": "hi"})
    assert unknown.status == 404 and (await unknown.json())["error"] == "unknown_account"
    assert await stored_messages(client) == 0


async def test_an_unknown_account_cannot_open_a_socket(client: TestClient) -> None:
    try:
        await client.ws_connect("/webchat/ws", params={"account": "nope"})
    except aiohttp.WSServerHandshakeError as exc:
        assert exc.status == 404
    else:
        raise AssertionError("the handshake should have been refused")


async def test_the_chat_page_is_served(client: TestClient) -> None:
    page = await client.get("/chat")
    assert page.status == 200 and "Chat with us" in await page.text()
    script = await client.get("/static/chat.js")
    assert script.status == 200 and "textContent" in await script.text()
