"""Signatures on every signed channel: missing, wrong, replayed with a modified body, made with the
wrong algorithm, garbled -> refused with 401/403 and nothing stored; an identical replay is stored
once; every comparison goes through ``hmac.compare_digest``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.kit import signatures
from bot.keys import STORE
from tests import traffic
from tests.conftest import raw_database_of
from tests.fakes.twilio import AUTH_TOKEN, PUBLIC_URL
from tests.fakes.twilio import fixture as twilio_fixture
from tests.fakes.twilio import signature as twilio_signature
from tests.handlers.channels import WA_SECRET, WA_VERIFY, fixture
from tests.hostile.conftest import assert_clean_refusal, post, settled, stored


def valid(channel: str) -> traffic.SignedRequest:
    if channel == "telegram":
        return traffic.telegram(fixture("telegram", "text"))
    if channel == "whatsapp":
        return traffic.whatsapp(fixture("whatsapp", "text"))
    kind = "sms" if channel == "sms" else "voice"
    return traffic.twilio(
        f"/webhooks/{kind}", twilio_fixture(kind, "inbound_text" if kind == "sms" else "status_no_answer_inbound")
    )


SIGNATURE_HEADER = {
    "telegram": "X-Telegram-Bot-Api-Secret-Token",
    "whatsapp": "X-Hub-Signature-256",
    "sms": "X-Twilio-Signature",
    "voice": "X-Twilio-Signature",
}
CHANNELS = sorted(SIGNATURE_HEADER)


def with_header(request: traffic.SignedRequest, name: str, value: str | None) -> traffic.SignedRequest:
    headers = {k: v for k, v in request.headers.items() if k != name}
    if value is not None:
        headers[name] = value
    return replace(request, headers=headers)


def modified(channel: str, request: traffic.SignedRequest) -> traffic.SignedRequest:
    """The same signed request with the message text changed (a replay with a new body)."""
    if channel in ("sms", "voice"):
        return replace(request, body=request.body.replace(b"%2B14155550123", b"%2B14155550999"))
    doc = json.loads(request.body)
    if channel == "telegram":
        doc["message"]["text"] = "pwned"
    else:
        doc["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "pwned"
    return replace(request, body=json.dumps(doc).encode())


def wrong_algorithm(channel: str, request: traffic.SignedRequest) -> list[traffic.SignedRequest]:
    name = SIGNATURE_HEADER[channel]
    if channel == "telegram":  # a shared secret, no algorithm: the right secret for another bot
        return [with_header(request, name, "another-bots-secret")]
    if channel == "whatsapp":
        sha1 = hmac.new(WA_SECRET.encode(), request.body, hashlib.sha1).hexdigest()
        sha512 = hmac.new(WA_SECRET.encode(), request.body, hashlib.sha512).hexdigest()
        plain = hashlib.sha256(request.body).hexdigest()
        return [
            with_header(request, name, v)
            for v in (f"sha1={sha1}", f"sha256={sha512}", f"sha256={plain}", request.headers[name].upper())
        ]
    url = PUBLIC_URL + request.path
    params = dict(pair.split("=", 1) for pair in request.body.decode().split("&"))
    from urllib.parse import unquote_plus

    params = {k: unquote_plus(v) for k, v in params.items()}
    sha256 = base64.b64encode(
        hmac.new(
            AUTH_TOKEN.encode(), (url + "".join(k + params[k] for k in sorted(params))).encode(), hashlib.sha256
        ).digest()
    ).decode()
    settings = "X-Twilio-Webhooks-Signature-Settings"
    return [
        with_header(request, name, sha256),  # SHA-256 signature, legacy SHA-1 claimed
        with_header(with_header(request, settings, "algorithm=HMAC_SHA256"), name, twilio_signature(url, params)),
        with_header(request, settings, "algorithm=HMAC_MD5"),
        with_header(request, settings, "algorithm=none"),
    ]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_missing_wrong_modified_and_wrong_algorithm_are_refused(everything: TestClient, channel: str) -> None:
    request = valid(channel)
    assert (await post(everything, request)).status == 200
    name = SIGNATURE_HEADER[channel]
    refused = [
        with_header(request, name, None),
        with_header(request, name, ""),
        with_header(request, name, "x" * len(request.headers[name])),
        *wrong_algorithm(channel, request),
    ]
    if channel != "telegram":
        refused.append(modified(channel, request))
    before = await settled(everything)
    for attempt in refused:
        response = await post(everything, attempt)
        assert response.status in (401, 403), (attempt.headers, response.status)
        await assert_clean_refusal(everything, response, before)


async def test_telegram_does_not_sign_bodies_but_a_modified_replay_changes_nothing(everything: TestClient) -> None:
    """Telegram's only credential is the secret header; a replay of an update with its body changed
    carries the same message id, so it is acknowledged as a duplicate and the stored text stays."""
    request = valid("telegram")
    assert (await post(everything, request)).status == 200
    response = await post(everything, modified("telegram", request))
    assert response.status == 200 and (await response.json())["duplicates"] == 1
    db = raw_database_of(everything.server.app[STORE])
    [message] = await db.messages.find({"direction": "in"}).to_list()
    assert message["text"] == fixture("telegram", "text")["message"]["text"]


@pytest.mark.parametrize("channel", CHANNELS)
async def test_an_identical_replay_is_stored_once(everything: TestClient, channel: str) -> None:
    request = valid(channel)
    answers = await asyncio.gather(*(post(everything, request) for _ in range(5)))
    assert [a.status for a in answers] == [200] * 5
    counts = await settled(everything)
    db = raw_database_of(everything.server.app[STORE])
    assert await db.messages.count_documents({"direction": "in"}) == 1
    assert counts["sends"] == (0 if channel == "voice" else 1)  # one notice (a call gets none)


async def raw_request(client: TestClient, head: bytes, body: bytes = b"") -> int:
    """Send bytes no HTTP client library would send; the status the router answers."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    status = int((await reader.readline()).split()[1])
    writer.close()
    return status


@pytest.mark.parametrize("channel", [*CHANNELS, "api", "webchat-token"])
async def test_undecodable_signature_bytes_are_refused_not_a_500(everything: TestClient, channel: str) -> None:
    if channel == "api":
        status = await raw_request(
            everything, b"GET /api/outbox HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer \xff\xfe\r\n"
        )
        assert status == 401  # a bearer header is a credential even on loopback, and this one is garbled
        return
    if channel == "webchat-token":
        body = json.dumps({"id": "t1", "text": "hi", "visitor_token": "v\u00e9.\u00e9\udcff"}).encode()
        status = await raw_request(everything, b"POST /webchat/messages HTTP/1.1\r\nHost: 127.0.0.1\r\n", body)
        assert status == 400
        return
    request = valid(channel)
    head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n%s: \xff\xfe\xfd\r\n" % (
        request.path.encode(),
        request.headers["Content-Type"].encode(),
        SIGNATURE_HEADER[channel].encode(),
    )
    assert await raw_request(everything, head, request.body) in (401, 403)
    assert (await stored(everything))["messages"] == 0


async def test_a_garbled_api_token_is_a_401(embedded: Any, db_name: str, start_client: Any) -> None:
    from tests.conftest import make_settings

    client = await start_client(make_settings(embedded.uri, db_name, api={"token": "s3cret"}))
    status = await raw_request(
        client, b"GET /api/outbox HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer s3cr\xe9t\r\n"
    )
    assert status == 401


async def test_whatsapp_subscription_check_wants_the_verify_token(everything: TestClient) -> None:
    base = "/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=42&hub.verify_token="
    assert (await everything.get(base + WA_VERIFY)).status == 200
    for token in ("", "wrong", WA_VERIFY.upper(), "%FF%FE", WA_VERIFY + "x"):
        assert (await everything.get(base + token)).status == 403


@pytest.mark.parametrize("channel", [*CHANNELS, "webchat"])
async def test_every_check_is_constant_time(
    everything: TestClient, channel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(signatures.hmac, "compare_digest", spy)
    if channel == "webchat":
        response = await post(everything, traffic.webchat({"id": "c1", "text": "hi", "visitor_token": "vabc.0123"}))
        assert response.status == 400 and any(b"0123" in (a, b) for a, b in compared)
        return
    request = valid(channel)
    forged = with_header(request, SIGNATURE_HEADER[channel], "forged-signature")
    assert (await post(everything, forged)).status in (401, 403)
    assert any(b"forged-signature" in (a, b) for a, b in compared), compared
