"""The account's greeting (its routing's ``greeting``): the first message of a new conversation on
its first bot, before the answer; never in a reopened conversation, never to an auto-reply or a
keyword, never in a web chat (its widget greets), and sent once however often a message is
dispatched. The mailbox's rules: tests/handlers/email/test_email_greetings.py."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import DISPATCHER, PIPELINE, QUEUE, STORE
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import SenderKind
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.conftest import TEST_API_TOKEN, raw_database_of
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_inbound import wait_for

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
QUESTION = "what are your opening hours?"
HELLO = "Hello from the shop!"


async def _greet_with(client: TestClient, greeting: str) -> None:
    answer = await client.patch("/api/accounts/default", json={"greeting": greeting}, headers=INSTALL)
    assert answer.status == 200, await answer.text()


@pytest.fixture
async def greeted(
    embedded: EmbeddedMongo,
    db_name: str,
    store: Repositories,
    starter_blob: bytes,
    start_client: Any,
    bot_api: FakeBotAPI,
) -> TestClient:
    """A router with the starter model and a Telegram bot (the fake's), the account's greeting set."""
    await install(store, starter_blob)
    client: TestClient = await start_client(channel_settings(embedded.uri, db_name, telegram_api=bot_api.url))
    await _greet_with(client, HELLO)
    return client


async def _writes(client: TestClient, channel: str, who: str, n: int, **meta: Any) -> list[str]:
    """``who`` writes the question on ``channel``; the texts of the replies stored in its thread."""
    inbound = Inbound("default", channel, f"{who}:{n}", Identity(channel, who), QUESTION, meta=meta)
    recorded, task = await client.server.app[PIPELINE].receive(inbound)
    assert task is not None and await task is not None
    store = client.server.app[STORE]
    out = await factories.messages(store, direction="out")
    return [m.text for m in out if m.thread_id == recorded.thread.id]


async def test_the_accounts_greeting_comes_first_once_and_not_in_a_web_chat_or_a_reopened_one(
    greeted: TestClient, store: Repositories, bot_api: FakeBotAPI
) -> None:
    client = greeted

    first = await _writes(client, "telegram", "5510000001", 1)
    assert first[0] == HELLO and len(first) == 2 and first[1] != HELLO
    assert (await _writes(client, "telegram", "5510000001", 2)).count(HELLO) == 1  # the second message: none
    greeting = [m for m in await factories.messages(store, direction="out") if m.text == HELLO]
    assert len(greeting) == 1 and greeting[0].sender["kind"] == str(SenderKind.SYSTEM)
    await wait_for(lambda: _sent_all(bot_api, 3))
    assert bot_api.sent("sendMessage")[0]["text"] == HELLO  # through the provider, first

    # a web chat: its widget shows its own greeting, no message is sent
    assert HELLO not in await _writes(client, "webchat", "visitor-1", 1)

    # a keyword, an auto-reply: never greeted (nor answered by the bot)
    keyword = {"keyword": {"kind": "stop", "reply": "You will get no more messages."}}
    assert HELLO not in await _writes(client, "telegram", "5510000002", 1, **keyword)
    assert await _writes(client, "telegram", "5510000003", 1, no_auto_reply="auto_submitted") == []

    # resolved, then written to again: reopened, not new, so not greeted again
    thread = await store.threads.open_thread_of("default", Identity("telegram", "5510000001"))
    assert thread is not None
    admin = await factories.agent(store, "ann", role=Role.ADMIN)
    assert await client.server.app[QUEUE].escalate(thread, "talk_to_human", "test")
    await client.server.app[QUEUE].resolve(thread.id, admin)
    again = await _writes(client, "telegram", "5510000001", 3)
    assert again.count(HELLO) == 1, again

    # emptied: no greeting for the next new conversation
    await _greet_with(client, "")  # the router that saved it reads it again at once
    assert HELLO not in await _writes(client, "telegram", "5510000004", 1)


async def test_a_message_dispatched_again_sends_its_greeting_once(
    greeted: TestClient, store: Repositories, bot_api: FakeBotAPI
) -> None:
    """A sweeper's dispatch of a message decided already (a replay) adds no second greeting."""
    client = greeted
    inbound = Inbound("default", "telegram", "r:1", Identity("telegram", "5510000009"), QUESTION)
    recorded, task = await client.server.app[PIPELINE].receive(inbound)
    assert task is not None and await task is not None
    message = await store.messages.get_message(recorded.message.id)
    assert message is not None
    await client.server.app[DISPATCHER].dispatch(message)  # as the sweeper does: no thread given
    texts = [m.text for m in await factories.messages(store, direction="out")]
    assert texts.count(HELLO) == 1, texts
    await wait_for(lambda: _sent_all(bot_api, len(texts)))
    assert [c["text"] for c in bot_api.sent("sendMessage")].count(HELLO) == 1


async def _sent_all(bot_api: FakeBotAPI, count: int) -> bool:
    return len(bot_api.sent("sendMessage")) >= count


async def test_a_greeting_whose_first_send_fails_is_dead_lettered_never_sent_after_the_answer(
    greeted: TestClient, store: Repositories, bot_api: FakeBotAPI
) -> None:
    """The provider fails the greeting (a 500): the answer still goes out at once, and the greeting
    is dead-lettered with the provider's error, not retried behind the answer."""
    client = greeted
    bot_api.fail_next(500)
    texts = await _writes(client, "telegram", "5510000020", 1)
    assert texts[0] == HELLO and len(texts) == 2
    await wait_for(lambda: _sent_all(bot_api, 2))
    [greeting] = [m for m in await factories.messages(store, direction="out") if m.text == HELLO]
    stored = await raw_database_of(store).messages.find_one({"_id": greeting.id})
    assert stored["send"]["state"] == "dead" and stored["send"].get("last_error")
    calls = [(c.params["text"], c.status) for c in bot_api.calls if c.method == "sendMessage"]
    assert calls == [(HELLO, 500), (texts[1], 200)], calls  # the greeting is not sent after the answer
