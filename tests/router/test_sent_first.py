"""A bot's answer sent before it is stored (issue 19): the reply goes to the provider first and is
stored with the decision in one command, already sent; a provider's refusal is stored as the
outbox worker records it (retried with backoff, or dead-lettered); a store outage after the send
is waited out, never answered by a second send. Against the fake Telegram Bot API."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.keys import PIPELINE, STORE
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import Decision, DecisionAction, DispatchState, OutboxItem, OutboxState
from conversations.traffic import DeliveryStatus, Identity, Inbound
from tests import factories
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_inbound import wait_for

CHAT = "5512345678"
QUESTION = "what are your opening hours?"


def question(n: int) -> Inbound:
    return Inbound(
        account_id="default",
        channel="telegram",
        external_id=f"tg-{n}",
        sender=Identity("telegram", CHAT),
        text=QUESTION,
    )


@asynccontextmanager
async def answering(
    server: EmbeddedMongo, db: str, bot_api: FakeBotAPI, blob: bytes, **sections: Any
) -> AsyncIterator[TestClient]:
    """A router answering with the starter model, its outbox worker running."""
    store = Repositories.connect(server.uri, db)
    await store.ensure_indexes()
    await install(store, blob)
    await store.close()
    async with TestClient(
        TestServer(create_app(channel_settings(server.uri, db, telegram_api=bot_api.url, **sections)))
    ) as client:
        yield client


async def answered(client: TestClient, n: int = 1) -> tuple[Decision, OutboxItem]:
    _, task = await client.server.app[PIPELINE].receive(question(n))
    assert task is not None
    decision = await task
    assert decision is not None and decision.action == DecisionAction.ANSWERED, decision
    item = await client.server.app[STORE].outbox.get_outbox(decision.replies[0])
    assert item is not None
    return decision, item


def sends(bot_api: FakeBotAPI) -> list[Any]:
    return [call for call in bot_api.calls if call.method == "sendMessage"]


async def test_the_answer_is_sent_then_stored_sent_with_the_decision(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, starter_blob: bytes
) -> None:
    async with answering(embedded, db_name, bot_api, starter_blob) as client:
        decision, item = await answered(client)
        store = client.server.app[STORE]
        # stored once the provider took it: sent at its first attempt, with the provider's id
        assert (item.state, item.attempts, item.lease_owner) == (OutboxState.SENT, 1, None)
        [reply] = await factories.messages(store, direction="out")
        assert reply.delivery_status == DeliveryStatus.SENT and reply.external_id == item.provider_message_id
        [call] = sends(bot_api)
        assert call.params["chat_id"] == CHAT and call.params["text"] == reply.text
        [message] = await factories.messages(store, direction="in")
        assert message.dispatch_state is DispatchState.DONE and message.decision == decision.to_doc()
        await asyncio.sleep(0.3)  # a worker poll or two: nothing pending is left to send again
        assert len(sends(bot_api)) == 1


async def test_a_rate_limited_answer_is_stored_pending_and_retried_by_the_worker_after_retry_after(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, starter_blob: bytes
) -> None:
    bot_api.fail_next(429, retry_after=1)
    async with answering(embedded, db_name, bot_api, starter_blob) as client:
        _, item = await answered(client)
        assert item.state == OutboxState.PENDING and item.attempts == 1 and item.lease_owner is None
        assert item.last_error is not None and item.last_error.startswith("telegram 429")
        store = client.server.app[STORE]

        async def sent() -> bool:
            stored = await store.outbox.get_outbox(item.id)
            return stored is not None and stored.state == OutboxState.SENT

        await wait_for(sent, timeout=10)
        first, second = sends(bot_api)
        assert second.at - first.at >= 1.0 and first.status == 429
        assert (await store.outbox.get_outbox(item.id)).attempts == 2  # type: ignore[union-attr]


async def test_a_blocked_bot_s_answer_is_a_dead_letter_at_once(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, starter_blob: bytes
) -> None:
    bot_api.fail_next(403)
    async with answering(embedded, db_name, bot_api, starter_blob) as client:
        decision, item = await answered(client)
        assert item.state == OutboxState.DEAD and "blocked by the user" in (item.last_error or "")
        store = client.server.app[STORE]
        [reply] = await factories.messages(store, direction="out")
        assert reply.id == decision.replies[0] and reply.delivery_status == DeliveryStatus.FAILED
        assert await store.outbox.dead_letters("default") == [item]
        await asyncio.sleep(0.3)
        assert len(sends(bot_api)) == 1


class FreezingBotAPI(FakeBotAPI):
    """A Bot API that takes the message, after which the store stops answering (SIGSTOP) for
    ``seconds``: the answer is sent; storing it cannot be, for longer than the dispatch lease."""

    def __init__(self, store_pid: int, seconds: float) -> None:
        super().__init__()
        self.store_pid, self.seconds = store_pid, seconds

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        os.kill(self.store_pid, signal.SIGSTOP)
        asyncio.get_running_loop().call_later(self.seconds, os.kill, self.store_pid, signal.SIGCONT)
        return await super()._sendMessage(params)


async def test_a_store_outage_after_the_send_is_waited_out_and_the_answer_not_sent_again(
    own_store: EmbeddedMongo, tmp_path: Path, starter_blob: bytes
) -> None:
    """The store hangs from the provider's answer on, past the message's dispatch lease (1 s): the
    decision and the sent reply are asked to be stored again until the store is back, and the
    sweeper of the process, finding the message's lease run out, leaves it to its dispatch."""
    pid = int((tmp_path / "store" / "nx-27017.pid").read_text())
    bot_api = FreezingBotAPI(pid, seconds=2.5)
    await bot_api.start()
    try:
        sections = {"dispatch": {"lease_seconds": 1}, "store": {"timeout_ms": 400}}
        async with answering(own_store, "outage", bot_api, starter_blob, **sections) as client:
            _, item = await answered(client)
            assert item.state == OutboxState.SENT and item.attempts == 1
            await asyncio.sleep(1.5)  # sweeps and worker polls: none sends it again
            assert len(sends(bot_api)) == 1
            [message] = await factories.messages(client.server.app[STORE], direction="in")
            assert message.dispatch_state is DispatchState.DONE
    finally:
        await bot_api.stop()
