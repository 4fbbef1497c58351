"""Messages of one thread that arrive together are decided one after another in a process, each
on the state the previous one wrote: no lost swap, no second read or decision (issue 19)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from bot.keys import PIPELINE
from bot.router.thread_turns import ThreadTurns
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import DecisionAction
from tests.conftest import make_settings
from tests.nlu.conftest import install, starter_blob  # noqa: F401 (the session's starter model)
from tests.router.test_long_messages import inbound
from tests.router.test_store_work import QUIET, counted


async def test_turns_of_one_thread_come_in_order_and_hand_over_the_newest_state() -> None:
    turns = ThreadTurns()
    order: list[str] = []
    seen: dict[str, int] = {}

    async def decide(name: str, thread: str, version: int, hold: float) -> None:
        async with turns.turn(thread) as turn:
            seen[name] = int(turn.newest({"v": version}).get("v", 0))
            await asyncio.sleep(hold)
            turn.written = {"v": seen[name] + 1}
            order.append(name)

    # a, b, c of one thread all read version 3; x of another thread does not wait for them
    await asyncio.gather(
        decide("a", "t1", 3, 0.05), decide("b", "t1", 3, 0), decide("c", "t1", 3, 0), decide("x", "t2", 3, 0)
    )
    assert order == ["x", "a", "b", "c"]
    assert seen == {"a": 3, "b": 4, "c": 5, "x": 3}
    assert len(turns) == 0  # nothing of the conversations kept once their turns are done

    # a state read later than the one handed over wins
    async with turns.turn("t1") as turn:
        turn.written = {"v": 2}
        assert turn.newest({"v": 7, "language": "lv"}) == {"v": 7, "language": "lv"}
        assert turn.newest(None) == {"v": 2}


async def test_a_cancelled_waiter_leaves_no_turn_behind() -> None:
    turns = ThreadTurns()
    held = asyncio.Event()

    async def holder() -> None:
        async with turns.turn("t1"):
            held.set()
            await asyncio.sleep(0.05)

    async def waiter() -> None:
        async with turns.turn("t1"):
            raise AssertionError("a cancelled waiter never takes its turn")

    first = asyncio.create_task(holder())
    await held.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    second.cancel()
    await first
    assert second.cancelled() and len(turns) == 0


async def test_messages_sent_together_write_their_thread_once_each_without_reading_it_again(
    embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes
) -> None:
    await install(store, starter_blob)
    app, work = counted(make_settings(embedded.uri, db_name, **QUIET))
    question = inbound("webchat", 11, "what are your opening hours?")
    async with TestClient(TestServer(app)) as client:
        pipeline: Any = client.server.app[PIPELINE]
        _, task = await pipeline.receive(dataclasses.replace(question, external_id="first"))  # the thread is open
        assert task is not None and await task is not None
        await asyncio.sleep(0.3)

        work.armed = True
        received = await asyncio.gather(
            *(pipeline.receive(dataclasses.replace(question, external_id=f"burst-{n}")) for n in range(4))
        )
        decisions = await asyncio.gather(*(task for _, task in received if task is not None))
        await asyncio.sleep(0.5)
        work.armed = False

    assert [d.action for d in decisions if d is not None] == [DecisionAction.ANSWERED] * 4
    listed = "\n".join(map(str, work.commands))
    # the sender and the open thread read once for the four (batched); the dialogue state never
    # read back: each swap held on the state the turn before handed over
    reads = [(c[0], c[1]) for c in work.commands if c[0] == "find"]
    assert reads == [("find", "identities"), ("find", "threads")], listed
    assert sum(n for command, coll, n in work.commands if command == "update" and coll == "threads") == 4, listed
    thread_id = received[0][0].thread.id
    assert {r.thread.id for r, _ in received} == {thread_id}
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None and thread.nlu_state is not None
    # every message's step is in the state, one after another on the same thread
    stepped = [s["message"] for s in thread.nlu_state["steps"]]
    assert set(stepped[-4:]) == {r.message.id for r, _ in received}, stepped
    assert thread.nlu_state["v"] == 5
