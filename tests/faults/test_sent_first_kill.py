"""A bot's first answer is sent before it is stored (bot/router/outbox.py ``send_first``): a real
`omnirouter serve` process killed with SIGKILL after the provider took the answer and before the
answer was stored. The message was acknowledged, so it must not be lost: the next process finds
its dispatch lease run out, replays it and answers; the reply is stored once. The customer may get
the answer twice (the one doubling allowed: a send in flight at a kill -9), never not at all."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from bot.nlu.formats import load_paths
from bot.nlu.training import train
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests import traffic
from tests.fakes.telegram_api import FakeBotAPI
from tests.faults.harness import Load, Providers, SharedStore, settle

ROOT = Path(__file__).resolve().parents[2]
CHAT = 7_100_001
NLU = {  # the starter responses, and no training at start: the test installs the model
    "OMNIROUTER_NLU_AUTO_TRAIN": "false",
    "OMNIROUTER_NLU_RESPONSES": str(ROOT / "config" / "responses.yml"),
    "OMNIROUTER_NLU_DATA": str(ROOT / "config" / "nlu"),
}


class HoldingBotAPI(FakeBotAPI):
    """A Bot API that takes the first ``sendMessage`` (recorded as received) and holds its answer
    until released: the router's send is in flight until the test kills it."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.holding.is_set():
            self.holding.set()
            await self.release.wait()
        return await super()._sendMessage(params)


@pytest.fixture
async def providers() -> AsyncIterator[Providers]:
    """The harness's fakes with the holding Bot API in place of the plain one."""
    fakes = Providers()
    fakes.telegram = HoldingBotAPI()
    await fakes.start()
    yield fakes
    fakes.telegram.release.set()
    await fakes.stop()


async def install_lexical_model(uri: str, database: str) -> None:
    """The starter data's lexical model, active for the default account (the bot answers)."""
    model = await asyncio.get_running_loop().run_in_executor(None, train, load_paths([ROOT / "config" / "nlu"]), None)
    model.meta["version"] = "kill-lexical"
    store = Repositories.connect(uri, database)
    try:
        await store.ensure_indexes()
        await store.nlu.save_nlu_model("default", "kill-lexical", model.to_bytes(), {"intents": 0}, utcnow())
        assert await store.nlu.activate_nlu_model("default", "kill-lexical", "test", utcnow())
    finally:
        await store.close()


async def stored_replies(uri: str, database: str) -> list[dict[str, Any]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri, serverSelectionTimeoutMS=5000)
    try:
        return await client[database].messages.find({"direction": "out"}).to_list()
    finally:
        await client.close()


@pytest.mark.slow
async def test_kill_9_between_the_send_and_its_store_write_answers_and_stores_once(
    routers: Any, providers: Providers, shared_store: SharedStore, database: str
) -> None:
    bot_api = providers.telegram
    assert isinstance(bot_api, HoldingBotAPI)
    await install_lexical_model(shared_store.uri, database)
    router = await routers(**NLU)
    request = traffic.telegram_text(1, CHAT, text="what are your opening hours?")
    load = Load([router.url])
    await load.run([request])
    assert load.acked == [request.key]  # acknowledged: from here on it must not be lost

    await asyncio.wait_for(bot_api.holding.wait(), 30)  # the answer is at the provider, unanswered
    assert await stored_replies(shared_store.uri, database) == []  # and not stored yet
    killed_pid = router.pid
    await router.kill()
    bot_api.release.set()  # the held answer goes to a dead connection
    await router.start()
    assert router.pid != killed_pid

    deadline = time.monotonic() + 30
    while len(bot_api.sent()) < 2 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)  # the new process replays the message when its lease runs out
    state = await settle(shared_store.uri, database)
    assert state["inbound"] == 1 and state["decisions"] == {"answered": 1}
    [reply] = await stored_replies(shared_store.uri, database)  # stored once
    assert reply["send"]["state"] == "sent" and reply["external_id"]
    first, second = bot_api.sent()  # the doubling a send in flight at a kill -9 allows, no more
    assert first["chat_id"] == second["chat_id"] == str(CHAT) and first["text"] == second["text"] == reply["text"]
    await asyncio.sleep(1.0)  # sweeps and worker polls of the new process: nothing is sent again
    assert len(bot_api.sent()) == 2
