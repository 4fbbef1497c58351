"""Hostile input found by the property tests and the fuzzing run, each kept as a regression test:
every one of these answered 500 (or stored something unusable) before it was fixed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests import traffic
from tests.conftest import raw_database_of
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import fixture
from tests.hostile.conftest import assert_clean_refusal, post, stored

DEEP = b"[" * 100_000 + b"]" * 100_000
LONG_INT = b'{"update_id": ' + b"7" * 5000 + b"}"
JSON_ROUTES = {"telegram": traffic.telegram, "whatsapp": traffic.whatsapp, "webchat": traffic.webchat}


@pytest.mark.parametrize(
    "body", [DEEP, LONG_INT, b"\xff\xfe{}", b'{"a": 1'], ids=["deep", "long-int", "bad-utf8", "cut"]
)
@pytest.mark.parametrize("channel", sorted(JSON_ROUTES))
async def test_json_the_decoder_refuses_is_a_400(everything: TestClient, channel: str, body: bytes) -> None:
    before = await stored(everything)
    await assert_clean_refusal(everything, await post(everything, JSON_ROUTES[channel](body)), before)


@pytest.mark.parametrize("body", [DEEP, LONG_INT, b"\xff"], ids=["deep", "long-int", "bad-utf8"])
async def test_the_api_refuses_json_it_cannot_read(everything: TestClient, body: bytes) -> None:
    before = await stored(everything)
    await assert_clean_refusal(
        everything, await everything.put("/api/accounts/default/channels/telegram", data=body), before
    )
    await assert_clean_refusal(everything, await everything.post("/api/threads/thr_x/replies", data=body), before)


async def test_a_deep_socket_frame_is_an_error_frame_and_the_socket_lives_on(everything: TestClient) -> None:
    async with everything.ws_connect("/webchat/ws") as ws:
        assert (await ws.receive_json())["type"] == "welcome"
        await ws.send_str("[" * 10_000)  # deeper than the decoder goes, within the frame limit
        assert (await ws.receive_json())["code"] == "bad_json"
        await ws.send_json({"type": "message", "id": "m1", "text": "still here"})
        assert (await ws.receive_json())["type"] == "ack"
    assert (await ws.receive()).type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING) or ws.closed


def _telegram(**message: Any) -> dict[str, Any]:
    update = copy.deepcopy(fixture("telegram", "text"))
    update["message"].update(message)
    return update


@pytest.mark.parametrize(
    "update",
    [
        {**_telegram(), "update_id": 2**70},
        _telegram(message_id=-(2**64)),
        _telegram(document={"file_id": "f", "file_size": 2**64}),
    ],
    ids=["update-id", "message-id", "file-size"],
)
async def test_integers_a_store_cannot_hold_are_a_400(everything: TestClient, update: dict[str, Any]) -> None:
    before = await stored(everything)
    await assert_clean_refusal(everything, await post(everything, traffic.telegram(update)), before)


async def test_unpaired_surrogates_and_nul_are_stored_readably(everything: TestClient) -> None:
    update = _telegram(text="a\ud800b\x00c")
    update["message"]["from"]["first_name"] = "\udcff"
    assert (await post(everything, traffic.telegram(update))).status == 200
    response = await post(everything, traffic.webchat({"id": "s1", "text": "x\udfffy", "name": "\ud83d"}))
    assert response.status == 202
    db = raw_database_of(everything.server.app[STORE])
    texts = {m["channel"]: m for m in await db.messages.find({"direction": "in"}).to_list()}
    assert texts["telegram"]["text"] == "a\ufffdbc" and texts["telegram"]["sender"]["name"].startswith("\ufffd")
    assert texts["webchat"]["text"] == "x\ufffdy" and texts["webchat"]["sender"]["name"] == "\ufffd"


async def test_an_agent_reply_with_a_surrogate_is_kept(everything: TestClient) -> None:
    await post(everything, traffic.webchat({"id": "r1", "text": "hello"}))
    thread = await raw_database_of(everything.server.app[STORE]).threads.find_one({})
    response = await everything.post(
        f"/api/threads/{thread['_id']}/replies",
        data=json.dumps({"id": "k1", "text": "ok \ud800", "document": {"url": "https://shop.example/u", "$x": 1}}),
    )
    assert response.status == 202, await response.text()
    assert (await response.json())["text"] == "ok \ufffd"


@pytest.mark.parametrize(
    "path", ["/webhooks/telegram", "/webhooks/whatsapp", "/webhooks/sms", "/webhooks/voice", "/webchat/messages"]
)
async def test_bodies_over_the_limit_are_a_413(everything: TestClient, path: str) -> None:
    before = await stored(everything)
    response = await everything.post(
        path, data=b"{" + b" " * 1_100_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    await assert_clean_refusal(everything, response, before)


@pytest.mark.parametrize("query", ["limit=\u00b2", "limit=\u0661\u0662", "limit=" + "9" * 40, "state=nope"])
async def test_bad_query_parameters_are_a_400(everything: TestClient, query: str) -> None:
    response = await everything.get(f"/api/outbox?{query}")
    assert response.status == 400 and (await response.json())["error"] == "bad_request"


async def test_an_attachment_index_that_is_not_ascii_digits_is_a_404(everything: TestClient) -> None:
    await post(everything, traffic.telegram(fixture("telegram", "document")))
    message = await raw_database_of(everything.server.app[STORE]).messages.find_one({"direction": "in"})
    for index in ("\u00b2", "\u0661", "-1", "1" * 30):
        assert (await everything.get(f"/api/messages/{message['_id']}/attachments/{index}")).status == 404


async def test_a_hostile_file_name_and_type_cannot_shape_the_download(everything: TestClient, providers: Any) -> None:
    bot_api: FakeBotAPI = providers[0]
    bot_api.files["evil"] = b"<script>alert(1)</script>"
    update = fixture("telegram", "document")
    update["message"]["document"].update(
        file_id="evil", file_name='x"\r\nSet-Cookie: a=b\r\n.html', mime_type="text/html\r\nX-Evil: 1"
    )
    assert (await post(everything, traffic.telegram(update))).status == 200
    message = await raw_database_of(everything.server.app[STORE]).messages.find_one({"direction": "in"})
    response = await everything.get(f"/api/messages/{message['_id']}/attachments/0")
    assert response.status == 200 and await response.read() == b"<script>alert(1)</script>"
    assert response.content_type == "application/octet-stream" and "Set-Cookie" not in response.headers
    assert response.headers["Content-Disposition"].startswith('attachment; filename="x_')
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "channel, config, status",
    [
        ("telegram", {"$set": {"token": "x"}}, 400),
        ("telegram", {"token": {"a.b": "x"}}, 400),
        ("telegram", {"tok\u0000en": "x"}, 400),
        ("telegram", {"token": "x\ud800"}, 400),
        ("telegram", {"n": 2**70}, 400),
        ("whatsapp.x", {"token": "x"}, 404),
        ("$where", {"token": "x"}, 404),
    ],
    ids=["operator-key", "dotted-key", "nul-key", "surrogate", "huge-int", "dotted-channel", "operator-channel"],
)
async def test_account_channel_settings_that_cannot_be_stored_are_refused(
    everything: TestClient, channel: str, config: dict[str, Any], status: int
) -> None:
    response = await everything.put(f"/api/accounts/default/channels/{channel}", data=json.dumps(config))
    assert response.status == status, await response.text()
    account = await raw_database_of(everything.server.app[STORE]).accounts.find_one({"_id": "default"})
    assert account["channels"] == {}
