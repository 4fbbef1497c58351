"""Health, metrics, JSON errors, API access, and riding out a store outage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from conversations.embedded import EmbeddedMongo
from tests import factories
from tests.conftest import anonymous, make_settings
from tests.router.test_inbound import wait_for


async def test_healthz_reports_the_store(client: TestClient) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok", "store": {"kind": "mongodb", "ok": True}}


async def test_metrics_count_inbound_outbound_and_queue(client: TestClient) -> None:
    await client.post("/webchat/messages", json={"id": "m1", "text": "hi"})

    async def notice_sent() -> bool:
        text = await (await client.get("/metrics")).text()
        return 'omnirouter_outbound_total{channel="webchat",result="sent"} 1.0' in text

    await wait_for(notice_sent)
    text = await (await client.get("/metrics")).text()
    assert 'omnirouter_inbound_total{channel="webchat",result="recorded"} 1.0' in text
    assert "omnirouter_queue_depth 1.0" in text
    assert 'omnirouter_inbound_ack_seconds_count{channel="webchat"} 1.0' in text
    assert 'omnirouter_store_commands_total{command="insert"}' in text


async def test_unknown_routes_and_methods_answer_json(client: TestClient) -> None:
    missing = await client.get("/no/such/page")
    assert missing.status == 404
    assert await missing.json() == {"error": "not_found", "detail": "no route for GET /no/such/page"}
    wrong = await client.delete("/webchat/messages")
    assert wrong.status == 405 and (await wrong.json())["error"] == "method_not_allowed"
    bad_limit = await client.get("/api/outbox", params={"limit": "lots"})
    assert bad_limit.status == 400 and "limit" in (await bad_limit.json())["detail"]
    bad_state = await client.get("/api/outbox", params={"state": "lost"})
    assert bad_state.status == 400
    assert (await client.get("/api/threads/thr_missing")).status == 404


async def test_the_api_wants_the_token_when_one_is_set(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    guarded = await start_client(make_settings(embedded.uri, db_name, api={"token": "s3cret"}))
    async with anonymous(guarded) as nobody:
        assert (await nobody.get("/api/outbox")).status == 401
        assert (await nobody.get("/api/outbox", headers={"Authorization": "Bearer wrong"})).status == 401
        ok = await nobody.get("/api/outbox", headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200 and await ok.json() == {"items": []}


async def test_a_thread_with_its_messages_through_the_api(client: TestClient) -> None:
    posted = await (await client.post("/webchat/messages", json={"id": "t1", "text": "hello"})).json()

    async def has_reply() -> bool:
        body = await (await client.get(f"/api/threads/{posted['thread_id']}")).json()
        return len(body["messages"]) == 2

    await wait_for(has_reply)
    body = await (await client.get(f"/api/threads/{posted['thread_id']}")).json()
    assert body["thread"]["status"] == "queued" and body["thread"]["escalation_reason"] == "no_nlu"
    assert [m["direction"] for m in body["messages"]] == ["in", "out"]


async def test_a_store_outage_answers_503_stores_nothing_and_recovers(tmp_path: Path, start_client: Any) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    try:
        client = await start_client(make_settings(server.uri, "outage"))
        first = await client.post("/webchat/messages", json={"id": "before", "text": "one"})
        assert first.status == 202
        token = (await first.json())["visitor_token"]

        await server.stop()
        during = await client.post("/webchat/messages", json={"id": "during", "text": "two", "visitor_token": token})
        assert during.status == 503
        assert (await during.json())["error"] == "store_unavailable" and during.headers["Retry-After"]
        assert (await client.get("/healthz")).status == 503
        async with client.ws_connect("/webchat/ws", params={"token": token}) as ws:
            welcome = await ws.receive_json()
            assert welcome["history_unavailable"] is True
            await ws.send_json({"type": "message", "id": "sock", "text": "three"})
            error = await ws.receive_json()
            assert error["code"] == "store_unavailable" and error["retry"] is True

        await server.start()  # same port, same data: the router reconnects by itself
        await wait_for(lambda: _healthy(client), timeout=15)
        after = await client.post("/webchat/messages", json={"id": "after", "text": "four", "visitor_token": token})
        assert after.status == 202
        texts = sorted(m.text for m in await factories.messages(client.server.app[STORE], direction="in"))
        assert texts == ["four", "one"]  # nothing half-written during the outage
    finally:
        await server.stop()


async def _healthy(client: TestClient) -> bool:
    return (await client.get("/healthz")).status == 200


async def test_a_hung_store_answers_503_and_a_late_write_is_deduplicated(tmp_path: Path, start_client: Any) -> None:
    """A store that stops answering (SIGSTOP) rather than refusing connections: the socket
    timeout turns it into a 503; once it resumes, the provider's retry lands once."""
    import os
    import signal

    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    try:
        client = await start_client(make_settings(server.uri, "hung", store={"timeout_ms": 500}))
        first = await client.post("/webchat/messages", json={"id": "before", "text": "one"})
        token = (await first.json())["visitor_token"]
        pid = int((tmp_path / "store" / "nx-27017.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            during = await client.post(  # answered, not hung: within a few socket timeouts of 1.5 s
                "/webchat/messages", json={"id": "during", "text": "two", "visitor_token": token}
            )
            assert during.status == 503
        finally:
            os.kill(pid, signal.SIGCONT)
        await wait_for(lambda: _healthy(client), timeout=15)
        retried = await client.post("/webchat/messages", json={"id": "during", "text": "two", "visitor_token": token})
        assert retried.status == 202
        inbound = await factories.messages(client.server.app[STORE], direction="in")
        assert [m.text for m in inbound].count("two") == 1
    finally:
        await server.stop()
