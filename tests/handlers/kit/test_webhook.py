"""The shared webhook flow, driven through a minimal signed channel defined here."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Mapping

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.handlers.kit.protocol import BaseAdapter, MalformedPayload, UnsupportedEvent, VerificationError
from bot.handlers.kit.webhook import receive_webhook
from bot.keys import PIPELINE, STORE
from bot.settings import Settings
from conversations.models import utcnow
from conversations.traffic import DeliveryStatus, Identity, Inbound, StatusUpdate
from tests import factories

SECRET = b"hook-secret"


class SignedChannel(BaseAdapter):
    """A provider that signs its JSON body with HMAC-SHA256 and batches events."""

    name = "signed"

    async def verify(self, request: web.Request, body: bytes) -> None:
        given = request.headers.get("X-Signature", "")
        if not hmac.compare_digest(given, hmac.new(SECRET, body, hashlib.sha256).hexdigest()):
            raise VerificationError("bad signature")

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[Inbound | StatusUpdate]:
        try:
            events = json.loads(body)["events"]
        except (ValueError, KeyError, TypeError) as exc:
            raise MalformedPayload(f"expected {{'events': [...]}}: {exc}") from None
        items: list[Inbound | StatusUpdate] = []
        for event in events:
            if event["kind"] == "message":
                items.append(
                    Inbound(
                        account_id="default",
                        channel="signed",
                        external_id=event["id"],
                        sender=Identity("signed", event["from"]),
                        text=event["text"],
                    )
                )
            elif event["kind"] == "status":
                items.append(
                    StatusUpdate(
                        account_id="default",
                        channel="signed",
                        external_id=event["id"],
                        status=DeliveryStatus(event["status"]),
                        at=utcnow(),
                    )
                )
        if not items:
            raise UnsupportedEvent("no message or status in payload")
        return items


@pytest.fixture
async def hook(settings: Settings) -> AsyncIterator[TestClient]:
    app = create_app(settings)
    adapter = SignedChannel()

    async def handle(request: web.Request) -> web.Response:
        return await receive_webhook(request, adapter, request.app[PIPELINE])

    app.router.add_post("/webhooks/signed", handle)
    async with TestClient(TestServer(app)) as client:
        yield client


async def post(client: TestClient, payload: object, signature: str | None = None) -> web.Response:
    body = json.dumps(payload).encode()
    sig = signature if signature is not None else hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    return await client.post("/webhooks/signed", data=body, headers={"X-Signature": sig})


async def test_every_entry_of_a_batch_is_recorded_and_acknowledged(hook: TestClient) -> None:
    events = [{"kind": "message", "id": f"e{n}", "from": "u1", "text": f"hi {n}"} for n in range(3)]
    response = await post(hook, {"events": events})
    assert response.status == 200
    assert await response.json() == {"ok": True, "recorded": 3, "duplicates": 0, "statuses": 0}
    again = await post(hook, {"events": events})
    assert (await again.json())["duplicates"] == 3
    assert len(await factories.messages(hook.server.app[STORE], direction="in")) == 3


async def test_bad_signature_bad_body_and_unsupported_events(hook: TestClient) -> None:
    payload = {"events": [{"kind": "message", "id": "x", "from": "u", "text": "t"}]}
    assert (await post(hook, payload, signature="0" * 64)).status == 401
    assert (await post(hook, payload, signature="")).status == 401
    bad = await post(hook, {"nope": 1})
    assert bad.status == 400 and "expected {'events'" in (await bad.json())["detail"]
    ignored = await post(hook, {"events": [{"kind": "typing"}]})
    assert ignored.status == 200 and (await ignored.json())["ignored"] == "no message or status in payload"
    assert await factories.messages(hook.server.app[STORE]) == []


async def test_status_reports_are_applied(hook: TestClient) -> None:
    response = await post(hook, {"events": [{"kind": "status", "id": "unknown-id", "status": "read"}]})
    assert response.status == 200 and (await response.json())["statuses"] == 1
