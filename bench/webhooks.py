"""Webhook ingest of the messenger channels: signed Telegram and WhatsApp webhooks posted one after
another to a router on the embedded store, with the provider APIs faked locally.

    PYTHONPATH=. .venv/bin/python bench/webhooks.py [--count N] [--customers N]

Prints webhooks per second and acknowledgement latencies (p50, p95), and checks that every new
conversation's notice went out (none dead-lettered).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.keys import STORE
from conversations.embedded import EmbeddedMongo
from conversations.thread_models import OutboxState
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings, fixture, post_telegram, post_whatsapp


def telegram_update(n: int, customers: int) -> dict[str, Any]:
    update = copy.deepcopy(fixture("telegram", "text"))
    update["update_id"] = n
    update["message"].update(message_id=n, chat={"id": 1000 + n % customers, "type": "private"})
    return update


def whatsapp_payload(n: int, customers: int) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update(id=f"wamid.BENCH{n}", timestamp=str(int(time.time())))
    message["from"] = str(16505550000 + n % customers)
    return payload


async def main(count: int, customers: int) -> None:
    store = EmbeddedMongo(Path(tempfile.mkdtemp()))
    telegram, graph = FakeBotAPI(), FakeGraphAPI()
    await store.start(), await telegram.start(), await graph.start()
    settings = channel_settings(store.client.uri, "bench", telegram_api=telegram.url, graph_api=graph.url)
    try:
        async with TestClient(TestServer(create_app(settings))) as client:
            for name, post, build in (
                ("telegram", post_telegram, telegram_update),
                ("whatsapp", post_whatsapp, whatsapp_payload),
            ):
                latencies = []
                started = time.perf_counter()
                for n in range(count):
                    sent = time.perf_counter()
                    response = await post(client, build(n, customers))
                    latencies.append(time.perf_counter() - sent)
                    assert response.status == 200, await response.text()
                total = time.perf_counter() - started
                latencies.sort()
                print(
                    f"{name}: {count} webhooks from {customers} customers in {total:.2f} s = {count / total:.0f}/s; "
                    f"ack p50 {latencies[count // 2] * 1000:.1f} ms, p95 {latencies[count * 95 // 100] * 1000:.1f} ms"
                )
            await asyncio.sleep(1)
            dead = len(await client.server.app[STORE].outbox.list_outbox(OutboxState.DEAD, limit=100_000))
            print(f"notices sent: telegram {len(telegram.sent())}, whatsapp {len(graph.sent())}; dead letters: {dead}")
    finally:
        await telegram.stop(), await graph.stop(), await store.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--customers", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.count, args.customers))
