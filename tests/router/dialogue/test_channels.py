"""The order-status conversation on Telegram and WhatsApp, through the real adapters, their provider
fakes, the starter model and the demo action server: each channel's customer is asked, answers
with a bare number, and gets the status in their language."""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.actions import ActionServer
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings, fixture, post_telegram, post_whatsapp
from tests.nlu.conftest import install
from tests.router.test_inbound import wait_for

CONVERSATIONS = {
    "en": ("where is my order?", "Please send", "Order A-10234 left our warehouse"),
    "lv": ("kur ir mans pasūtījums?", "Lūdzu, atsūtiet", "Pasūtījums A-10234 izsūtīts"),
    "ru": ("где мой заказ?", "Пришлите, пожалуйста", "Заказ A-10234 отправлен"),
}


@pytest.fixture
async def messengers(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    start_client: Any,
    bot_api: FakeBotAPI,
    graph_api: FakeGraphAPI,
    action_server: ActionServer,
) -> TestClient:
    await install(store, starter_blob)
    settings = channel_settings(
        embedded.uri,
        db_name,
        telegram_api=bot_api.url,
        graph_api=graph_api.url,
        dialogue={"action_endpoint": action_server.url},
    )
    client: TestClient = await start_client(settings)
    return client


def telegram_update(n: int, chat: int, text: str) -> dict[str, Any]:
    update = copy.deepcopy(fixture("telegram", "text"))
    update["update_id"] += n
    update["message"].update(message_id=100 + n, text=text)
    update["message"]["from"]["id"] = update["message"]["chat"]["id"] = chat
    return update


def whatsapp_message(n: int, number: str, text: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = number
    message = {"from": number, "id": f"wamid.story{n}", "text": {"body": text}, "timestamp": str(int(time.time()))}
    value["messages"][0].update(message)  # written now: the 24-hour window is open
    return payload


async def said(count: int, texts: Callable[[], list[str]]) -> bool:
    return len(texts()) >= count


async def converse(send: Callable[[int, str], Awaitable[None]], texts: Callable[[], list[str]]) -> None:
    for n, (language, (ask, question, status)) in enumerate(CONVERSATIONS.items()):
        before = len(texts())
        await send(2 * n, ask)
        await wait_for(lambda count=before + 1: said(count, texts), timeout=15)
        assert texts()[-1].startswith(question), (language, texts()[-1])
        await send(2 * n + 1, "A-10234")
        await wait_for(lambda count=before + 2: said(count, texts), timeout=15)
        assert texts()[-1].startswith(status), (language, texts()[-1])


async def test_telegram(messengers: TestClient, bot_api: FakeBotAPI) -> None:
    async def send(n: int, text: str) -> None:
        chat = 7100 + n // 2  # one customer per language
        assert (await post_telegram(messengers, telegram_update(n, chat, text))).status == 200

    await converse(send, lambda: [str(call["text"]) for call in bot_api.sent()])


async def test_whatsapp(messengers: TestClient, graph_api: FakeGraphAPI) -> None:
    async def send(n: int, text: str) -> None:
        number = f"3712000{n // 2:04d}"
        assert (await post_whatsapp(messengers, whatsapp_message(n, number, text))).status == 200

    await converse(send, lambda: [str(body["text"]["body"]) for body in graph_api.sent_ok() if "text" in body])
