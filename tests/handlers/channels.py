"""Helpers for the Telegram and WhatsApp tests: recorded payloads, signed posts, fakes, settings."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.settings import Settings
from tests import factories
from tests.conftest import make_settings
from tests.fakes import Fake, reachable
from tests.fakes.graph_api import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraphAPI
from tests.fakes.telegram_api import TOKEN, FakeBotAPI

HANDLERS = Path(__file__).resolve().parent  # each channel's tests, with its fixtures/
TG_SECRET = "tg-webhook-secret_1"
WA_SECRET = "wa-app-secret"
WA_VERIFY = "wa-verify-token"


def fixture(channel: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HANDLERS / channel / "fixtures" / f"{name}.json").read_text())
    return data


def channel_settings(
    uri: str, db: str, telegram_api: str = "", graph_api: str = "", **extra: dict[str, Any]
) -> Settings:
    sections: dict[str, dict[str, Any]] = {}
    if telegram_api:
        sections["telegram"] = {"token": TOKEN, "webhook_secret": TG_SECRET, "api_base": telegram_api, "pacing": 0.0}
    if graph_api:
        sections["whatsapp"] = {
            "phone_number_id": PHONE_NUMBER_ID,
            "access_token": ACCESS_TOKEN,
            "app_secret": WA_SECRET,
            "verify_token": WA_VERIFY,
            "api_base": graph_api,
            "templates": {"order_update": {"language": "en_US", "parameters": ["name", "order"]}},
        }
    for section, values in extra.items():
        sections.setdefault(section, {}).update(values)
    return make_settings(uri, db, **sections)


def own_channels(uri: str, db: str, telegram: FakeBotAPI, graph: FakeGraphAPI, fakes: Iterable[Fake]) -> Settings:
    """The install's own bot and number on the fakes ``telegram`` and ``graph`` (with their tokens);
    every fake of ``fakes`` reachable through the egress guard."""
    return channel_settings(
        uri,
        db,
        telegram_api=telegram.url,
        graph_api=graph.url,
        egress=reachable(fakes),
        telegram={"token": telegram.token},
        whatsapp={"access_token": graph.token},
    )


async def post_telegram(
    client: TestClient, update: dict[str, Any] | bytes, secret: str | None = TG_SECRET, path: str = "/webhooks/telegram"
) -> ClientResponse:
    body = update if isinstance(update, bytes) else json.dumps(update).encode()
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    return await client.post(path, data=body, headers=headers)


def sign(body: bytes, secret: str = WA_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_whatsapp(
    client: TestClient, payload: dict[str, Any] | bytes, signature: str | None = "", path: str = "/webhooks/whatsapp"
) -> ClientResponse:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature or sign(body)
    return await client.post(path, data=body, headers=headers)


async def inbound_messages(client: TestClient, channel: str, order: str = "created_at") -> list[dict[str, Any]]:
    """The customers' messages on ``channel`` as stored (``_id``, times as epoch ms), by ``order``."""
    found = await factories.messages(client.server.app[STORE], direction="in", channel=channel)
    return sorted((message.to_doc() for message in found), key=lambda doc: doc[order])


async def deliver(client: TestClient, channel: str, name: str) -> dict[str, Any]:
    """Post the recorded payload ``name`` of ``channel``, properly signed; the router's answer."""
    post = post_telegram if channel == "telegram" else post_whatsapp
    response = await post(client, fixture(channel, name))
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body
