"""The one reply path: a console reply and an API caller's reply are checked, sent once per key,
and leave the same trail (the thread's response clock, the audit log); a console reply needs the
thread to be the agent's."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import QUEUE, STORE
from bot.router.queue import QueueError
from bot.router.replies import Reply, ReplyRefused
from bot.web.keys import SERVICES
from conversations.audit import AuditQuery
from tests.router.test_queue import customer_writes, make_agent


async def test_console_and_api_replies_leave_the_same_trail(client: TestClient) -> None:
    app = client.server.app
    store, replies = app[STORE], app[SERVICES].replies
    agent = await make_agent(store, "rita")
    by_agent = await customer_writes(app, "visitor-a")
    by_api = await customer_writes(app, "visitor-b")
    await app[QUEUE].take(agent, by_agent)
    console = await replies.answer(by_agent, agent, "Hello from the console", "nonce-0001")
    again = await replies.answer(by_agent, agent, "Hello from the console", "nonce-0001")  # a resent form
    thread = await store.threads.get_thread(by_api)
    assert thread is not None
    api = await replies.send(thread, Reply(key="key-1", text="Hello from the API"), "api")
    assert again.id == console.id and console.sender["name"] == "Rita"
    for thread_id, message in ((by_agent, console), (by_api, api)):
        answered = await store.threads.get_thread(thread_id)
        assert answered is not None and answered.first_response_at is not None
        entries = [
            e
            async for e in store.audit.audit_entries(AuditQuery("default", action="thread.reply"), 10)
            if e.target == thread_id
        ]
        assert entries and {e.details["message"] for e in entries} == {message.id}


async def test_a_console_reply_needs_the_thread_to_be_the_agents(client: TestClient) -> None:
    app = client.server.app
    store, replies = app[STORE], app[SERVICES].replies
    owner, other = await make_agent(store, "owner"), await make_agent(store, "other")
    thread_id = await customer_writes(app, "visitor-c")
    await app[QUEUE].take(owner, thread_id)
    with pytest.raises(QueueError) as refused:
        await replies.answer(thread_id, other, "Not mine", "nonce-0002")
    assert refused.value.code == "not_yours"
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None
    with pytest.raises(ReplyRefused, match="needs text"):
        await replies.send(thread, Reply(key="key-2"), owner)
