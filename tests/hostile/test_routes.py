"""Property tests over every public route that takes input, on a router with every channel: hostile
bodies signed with the right secrets (so they reach the parsers), hostile paths and query strings.
Never a 500; a refusal is a 4xx with a JSON reason and leaves the store as it was; whatever is
accepted is stored as documents the models read back."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.handlers.kit.protocol import MalformedPayload
from bot.keys import ADAPTERS, STORE
from conversations.thread_models import Contact, Message, OutboxItem, Thread
from tests import traffic
from tests.conftest import raw_database_of
from tests.hostile import strategies
from tests.hostile.conftest import post, stored
from tests.hostile.parsers import Parsers

ROUTE_EXAMPLES = settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SIGNED: dict[str, Any] = {
    "telegram": (strategies.telegram_bodies(), traffic.telegram),
    "whatsapp": (strategies.whatsapp_bodies(), traffic.whatsapp),
    "sms": (strategies.sms_forms(), lambda form: traffic.twilio("/webhooks/sms", form)),
    "voice": (strategies.voice_forms(), lambda form: traffic.twilio("/webhooks/voice", form)),
    "webchat": (strategies.webchat_bodies(Parsers().visitor_token), traffic.webchat),
}


async def assert_store_readable(client: TestClient) -> None:
    """Every document the pipeline wrote loads through its model."""
    db = raw_database_of(client.server.app[STORE])
    for collection, model in (
        ("messages", Message),
        ("threads", Thread),
        ("contacts", Contact),
        ("outbox", OutboxItem),
    ):
        for doc in await db[collection].find({}).to_list():
            model.from_doc(doc)
    for message in await db.messages.find({"direction": "in"}).to_list():
        assert await db.threads.count_documents({"_id": message["thread_id"]}) == 1
        assert message["external_id"].strip() and message["sender"]["address"].strip()


async def check_answer(client: TestClient, response: Any, before: dict[str, int]) -> None:
    assert response.status < 500, (response.status, await response.text())
    if response.status >= 400:
        assert response.content_type == "application/json" and "error" in await response.json()
        assert await stored(client) == before


@pytest.mark.slow
@pytest.mark.parametrize("channel", sorted(SIGNED))
@ROUTE_EXAMPLES
@given(data=st.data())
async def test_signed_hostile_webhooks(everything: TestClient, channel: str, data: Any) -> None:
    bodies, signed = SIGNED[channel]
    if channel == "webchat":  # the web chat signs its visitors itself: use this router's key
        token = everything.server.app[ADAPTERS]["webchat"].tokens.token_for("default", "vfuzz")  # type: ignore[attr-defined]
        bodies = strategies.webchat_bodies(token)
    request = signed(data.draw(bodies))
    before = await stored(everything)
    await check_answer(everything, await post(everything, request), before)
    await assert_store_readable(everything)


@pytest.mark.slow
@ROUTE_EXAMPLES
@given(raw=strategies.mails())
async def test_hostile_mail_is_recorded_readably_or_refused_without_a_trace(everything: TestClient, raw: bytes) -> None:
    before = await stored(everything)
    try:
        await everything.server.app[ADAPTERS]["email"].ingest(raw)  # type: ignore[attr-defined]
    except MalformedPayload:
        assert await stored(everything) == before
    await assert_store_readable(everything)


segments = strategies.texts.map(lambda t: quote(t.encode("utf-8", "surrogatepass"), safe=""))
GET_ROUTES = [
    "/api/outbox/{}",
    "/api/threads/{}",
    "/api/messages/{}",
    "/api/messages/{}/attachments/{}",
    "/webhooks/whatsapp/{}",
    "/webhooks/whatsapp",
    "/api/outbox",
    "/chat",
    "/healthz",
    "/static/{}",
]


@pytest.mark.slow
@ROUTE_EXAMPLES
@given(
    route=st.sampled_from(GET_ROUTES),
    parts=st.lists(segments, min_size=2, max_size=2),
    query=st.dictionaries(
        st.sampled_from(["limit", "state", "account", "hub.mode", "hub.verify_token", "hub.challenge", "token"]),
        segments,
        max_size=3,
    ),
)
async def test_hostile_paths_and_queries(
    everything: TestClient, route: str, parts: list[str], query: dict[str, str]
) -> None:
    path = route.format(*[p or "x" for p in parts]) + "?" + "&".join(f"{k}={v}" for k, v in query.items())
    before = await stored(everything)
    response = await everything.get(path)
    assert response.status < 500, (path, response.status, await response.text())
    assert await stored(everything) == before


@pytest.mark.slow
@ROUTE_EXAMPLES
@given(
    body=strategies.json_values,
    channel=st.sampled_from(["telegram", "whatsapp", "email"]),
    account=st.sampled_from(["default", "nobody"]),
)
async def test_hostile_api_bodies(everything: TestClient, body: Any, channel: str, account: str) -> None:
    text = json.dumps(body)
    await post(everything, traffic.webchat({"id": "seed", "text": "hello"}))
    thread = await raw_database_of(everything.server.app[STORE]).threads.find_one({})
    for response in (
        await everything.post(f"/api/threads/{thread['_id']}/replies", data=text),
        await everything.put(f"/api/accounts/{account}/channels/{channel}", data=text),
    ):
        assert response.status < 500, (response.status, await response.text())
    await assert_store_readable(everything)


def _utf8(frame: str) -> bool:
    """A WebSocket text frame is UTF-8: a lone surrogate cannot even be sent (the client raises)."""
    try:
        frame.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


FRAMES = st.one_of(
    strategies.json_values.map(json.dumps),
    strategies.texts.filter(_utf8),
    st.just('{"type": "ping"}'),
    st.fixed_dictionaries({"type": st.just("message"), "id": strategies.short_texts, "text": strategies.texts}).map(
        json.dumps
    ),
)


@pytest.mark.slow
@settings(ROUTE_EXAMPLES, max_examples=8)
@given(frames=st.lists(FRAMES, min_size=10, max_size=30))
async def test_hostile_socket_frames_each_get_an_answer(everything: TestClient, frames: list[str]) -> None:
    async with everything.ws_connect("/webchat/ws") as ws:
        assert (await ws.receive_json())["type"] == "welcome"
        for frame in frames:
            await ws.send_str(frame)
            answer = await ws.receive_json(timeout=10)
            while answer["type"] in ("message", "decision"):  # replies and decisions of earlier frames
                answer = await ws.receive_json(timeout=10)
            assert answer["type"] in ("error", "ack", "pong"), answer
    await assert_store_readable(everything)
