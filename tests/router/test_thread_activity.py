"""A customer message's activity on its thread (last activity, unread) is written once: with the
bot's dialogue state when the bot decides, alone otherwise, and by the sweeper's dispatch when the
process that recorded the message died before deciding it."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from datetime import datetime, timedelta
from typing import Any

from bot.handlers.kit.sink import Recorded
from bot.keys import PIPELINE
from bot.router.inbound import InboundRecorder
from conversations.embedded import EmbeddedMongo
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus
from conversations.traffic import Identity, Inbound
from tests.conftest import make_settings
from tests.fakes.graph_api import FakeGraphAPI
from tests.handlers.channels import channel_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_inbound import wait_for
from tests.router.test_long_messages import inbound


async def swept(store: Repositories, recorded: Recorded, started: Awaitable[Any]) -> Thread | None:
    """The thread once the next process's sweeper (``started``) dispatched ``recorded``."""
    await started

    async def marked() -> bool:
        thread = await store.threads.get_thread(recorded.thread.id)
        return thread is not None and thread.last_inbound_ms == epoch_ms(recorded.message.created_at)

    await wait_for(marked)
    return await store.threads.get_thread(recorded.thread.id)


async def test_each_answered_message_marks_its_thread_unread_once(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes, start_client: Any
) -> None:
    await install(store, starter_blob)
    client = await start_client(make_settings(embedded.uri, db_name))
    question = inbound("webchat", 3, "what are your opening hours?")
    recorded = []
    for n in range(3):
        found, task = await client.server.app[PIPELINE].receive(dataclasses.replace(question, external_id=f"q{n}"))
        assert task is not None and (await task).action == "answered"  # type: ignore[union-attr]
        recorded.append(found)
    thread = await store.threads.get_thread(recorded[0].thread.id)
    assert thread is not None
    assert thread.unread_count == 3
    assert thread.unread_since_ms == epoch_ms(recorded[0].message.created_at)
    assert thread.last_inbound_ms == epoch_ms(recorded[-1].message.created_at)
    assert thread.nlu_state and thread.nlu_state["by"] == recorded[-1].message.id


async def test_a_message_whose_process_died_before_deciding_marks_its_thread_when_swept(
    store: Repositories, embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    # recorded and acknowledged; the activity was left to a dispatch that never ran
    recorded = await InboundRecorder(store, timedelta(milliseconds=200)).record(inbound("webchat", 4, "hello?"))
    assert recorded.activity is not None
    before = await store.threads.get_thread(recorded.thread.id)
    assert before is not None and before.unread_count in (None, 0) and before.last_inbound_ms is None

    thread = await swept(store, recorded, start_client(make_settings(embedded.uri, db_name)))
    assert thread is not None and thread.unread_count == 1


async def test_a_whatsapp_message_swept_after_its_process_died_brings_its_reply_window(
    store: Repositories,
    embedded: EmbeddedMongo,
    db_name: str,
    start_client: Any,
    starter_blob: bytes,
    graph_api: FakeGraphAPI,
) -> None:
    """The window is kept on the message: the sweeper's dispatch writes it on the thread, and the
    bot's answer is checked against it."""
    await install(store, starter_blob)
    recorder = InboundRecorder(store, timedelta(milliseconds=200))
    sender = Identity("whatsapp", "37120000004")
    opened = utcnow() + timedelta(hours=24)
    await recorder.record(Inbound("default", "whatsapp", "wamid.open", sender, "hi", window_ends_at=opened))
    ends = opened + timedelta(minutes=1)
    question = Inbound("default", "whatsapp", "wamid.swept", sender, "hello?", window_ends_at=ends)
    recorded = await recorder.record(question)
    assert recorded.activity is not None and recorded.message.window_ends_ms == epoch_ms(ends)
    before = await store.threads.get_thread(recorded.thread.id)
    assert before is not None and before.wa_window_ends_ms == epoch_ms(opened)  # left to the dispatch that never ran

    thread = await swept(
        store, recorded, start_client(channel_settings(embedded.uri, db_name, graph_api=graph_api.url))
    )
    assert thread is not None and thread.wa_window_ends_ms == epoch_ms(ends) and thread.unread_count == 2

    async def answered() -> bool:
        return await store.client.database.messages.find_one({"in_reply_to": recorded.message.id}) is not None

    await wait_for(answered)
    reply = await store.client.database.messages.find_one({"in_reply_to": recorded.message.id})
    assert reply is not None and reply["send"]["window_ends_ms"] == epoch_ms(ends), reply


async def test_a_whatsapp_window_is_left_to_the_dispatch_only_while_the_stored_one_stays_open(
    store: Repositories,
) -> None:
    """Whoever reads the window from the thread (an agent's reply, the console) never finds it
    closed because a message's own is yet to be written with the bot's state."""
    recorder = InboundRecorder(store, timedelta(seconds=30))
    now = utcnow()

    def written(n: int, ends: datetime) -> Inbound:
        sender = Identity("whatsapp", "37120000005")
        return Inbound("default", "whatsapp", f"wamid.k{n}", sender, text=f"message {n}", window_ends_at=ends)

    async def stored_window(thread_id: str) -> int | None:
        thread = await store.threads.get_thread(thread_id)
        assert thread is not None
        return thread.wa_window_ends_ms

    # a new conversation has no window stored: the message's is written at once
    first = await recorder.record(written(1, now + timedelta(hours=24)))
    assert first.activity is None and first.thread.status == ThreadStatus.BOT
    assert await stored_window(first.thread.id) == epoch_ms(now + timedelta(hours=24))
    # the stored one stays open for hours: this message's is written with the dialogue state
    second = await recorder.record(written(2, now + timedelta(hours=24, minutes=1)))
    assert second.activity is not None and second.activity.window_ends_at == now + timedelta(hours=24, minutes=1)
    kept = epoch_ms(now + timedelta(hours=24, minutes=1))
    assert second.message.to_doc()["window_ends_ms"] == kept and "window_ends_ms" not in second.message.to_json()
    assert await stored_window(first.thread.id) == epoch_ms(now + timedelta(hours=24))
    # a customer back after 23.5 hours: the stored window closes within the hour, written at once
    await store.client.database.threads.update_one(
        {"_id": first.thread.id}, {"$set": {"wa_window_ends_ms": epoch_ms(now + timedelta(minutes=30))}}
    )
    third = await recorder.record(written(3, now + timedelta(hours=24, minutes=2)))
    assert third.activity is None
    assert await stored_window(first.thread.id) == epoch_ms(now + timedelta(hours=24, minutes=2))
