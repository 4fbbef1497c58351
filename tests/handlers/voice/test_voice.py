"""Calls: Twilio Voice status callbacks become call events in the caller's thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from conversations.embedded import EmbeddedMongo
from tests import factories
from tests.conftest import make_settings
from tests.fakes.twilio import AUTH_TOKEN, PUBLIC_URL, fixture, post_webhook
from tests.handlers.sms.test_sms import CUSTOMER, messages, sms_settings
from tests.router.test_inbound import wait_for


async def voice_app(start_client: Any, uri: str, db: str, with_sms: bool = True) -> TestClient:
    if with_sms:
        settings = sms_settings(uri, db, "http://127.0.0.1:9", voice={"enabled": True})
    else:
        settings = make_settings(
            uri, db, server={"public_url": PUBLIC_URL}, twilio={"auth_token": AUTH_TOKEN}, voice={"enabled": True}
        )
    client: TestClient = await start_client(settings)
    return client


async def test_a_missed_call_is_recorded_once_and_queues_a_call_back(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await voice_app(start_client, embedded.uri, db_name)
    params = fixture("voice", "status_no_answer_inbound")
    for _ in range(2):  # the callback, and Twilio retrying it
        response = await post_webhook(client, "/webhooks/voice", params)
        assert response.status == 200 and response.content_type == "text/xml"
    [call] = await messages(client)
    assert call["text"] == f"Missed call from {CUSTOMER} (no answer)"
    assert call["channel"] == "voice" and call["external_id"] == params["CallSid"]
    assert call["meta"]["call"] | {"at": None} == {
        "status": "no-answer",
        "answered": False,
        "duration": 0,
        "missed": True,
        "at": None,
    }
    assert call["meta"]["call_back"] is True and call["decision"]["action"] == "queued"
    store = client.server.app[STORE]
    thread = await store.threads.get_thread(call["thread_id"])
    assert thread is not None and thread.channel == "sms"  # agents call back or text from there
    assert thread.status == "queued" and thread.escalation_reason == "missed_call"
    assert await store.queue.queue_depth() == 1


async def test_a_call_joins_the_thread_of_the_number_that_texted(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await voice_app(start_client, embedded.uri, db_name)
    assert (await post_webhook(client, "/webhooks/sms", fixture("sms", "inbound_text"))).status == 200
    assert (await post_webhook(client, "/webhooks/voice", fixture("voice", "status_completed_inbound"))).status == 200
    text, call = await messages(client, direction="in")
    assert call["text"] == f"Call from {CUSTOMER}, 1 min 35 s" and call["meta"]["call_back"] is False
    assert call["thread_id"] == text["thread_id"] and call["contact_id"] == text["contact_id"]
    assert call.get("decision") is None  # answered: nothing to queue
    assert await factories.contact_count(client.server.app[STORE]) == 1


async def test_dial_outcomes_progress_events_and_outbound_calls(
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    client = await voice_app(start_client, embedded.uri, db_name, with_sms=False)
    ringing = await post_webhook(client, "/webhooks/voice", fixture("voice", "status_ringing"))
    assert ringing.status == 200 and await messages(client) == []  # progress, not an ended call
    await post_webhook(client, "/webhooks/voice", fixture("voice", "dial_no_answer"))
    await post_webhook(client, "/webhooks/voice", fixture("voice", "status_busy_inbound"))
    await post_webhook(client, "/webhooks/voice", fixture("voice", "status_completed_outbound"))
    texts = [m["text"] for m in await messages(client)]
    assert texts == [
        f"Missed call from {CUSTOMER} (no answer)",
        f"Missed call from {CUSTOMER} (busy)",
        f"Call to {CUSTOMER}, 42 s",
    ]
    calls = await messages(client)
    assert [m["direction"] for m in calls] == ["in", "in", "out"]
    thread = await client.server.app[STORE].threads.get_thread(calls[0]["thread_id"])
    assert thread is not None and thread.channel == "voice"  # no SMS configured
    assert [m["decision"]["action"] for m in calls[:2]] == ["queued", "waiting"]  # one call-back item


async def test_bad_signatures_and_malformed_callbacks(embedded: EmbeddedMongo, db_name: str, start_client: Any) -> None:
    client = await voice_app(start_client, embedded.uri, db_name)
    params = fixture("voice", "status_no_answer_inbound")
    assert (await post_webhook(client, "/webhooks/voice", params, token="wrong")).status == 403
    assert (await client.post("/webhooks/voice", data=params)).status == 403
    no_sid = {k: v for k, v in params.items() if k != "CallSid"}
    response = await post_webhook(client, "/webhooks/voice", no_sid)
    assert response.status == 400 and (await response.json())["detail"] == "missing CallSid"
    bad_duration = dict(fixture("voice", "status_completed_inbound"), CallDuration="ninety")
    response = await post_webhook(client, "/webhooks/voice", bad_duration)
    assert response.status == 400 and "not a number of seconds" in (await response.json())["detail"]
    assert await messages(client) == []


async def test_a_store_outage_answers_503_then_the_retry_records_the_call(tmp_path: Path, start_client: Any) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    try:
        client = await voice_app(start_client, server.uri, "voice_outage")
        params = fixture("voice", "status_no_answer_inbound")
        await server.stop()
        assert (await post_webhook(client, "/webhooks/voice", params)).status == 503
        await server.start()

        async def healthy() -> bool:
            return (await client.get("/healthz")).status == 200

        await wait_for(healthy, timeout=15)
        assert (await post_webhook(client, "/webhooks/voice", params)).status == 200
        assert len(await messages(client)) == 1
    finally:
        await server.stop()
