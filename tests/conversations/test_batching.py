"""Group commit: concurrent requests share bulk commands, failures stay with their request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from pymongo import InsertOne
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    OperationFailure,
    ServerSelectionTimeoutError,
    WriteConcernError,
)

from conversations.batching import Batcher, BulkWrites
from conversations.embedded import EmbeddedMongo
from conversations.errors import StoreUnavailable, translating_outages
from conversations.repositories import Repositories
from conversations.state_swaps import Swap
from tests import factories
from tests.factories import inbound, record


@pytest.fixture
async def counted(embedded: EmbeddedMongo, db_name: str) -> AsyncIterator[tuple[Repositories, list[str]]]:
    """The repositories over the test's database, and the name of every command they send."""
    commands: list[str] = []
    store = Repositories.connect(embedded.uri, db_name, on_command=commands.append)
    await store.ensure_indexes()
    yield store, commands
    await store.close()


async def test_a_lone_request_goes_out_at_once_and_concurrent_ones_together() -> None:
    seen: list[list[int]] = []

    async def run(batch: Sequence[int]) -> list[int]:
        seen.append(list(batch))
        await asyncio.sleep(0.01)  # a store round trip
        return [n * 2 for n in batch]

    batcher: Batcher[int, int] = Batcher(run)
    assert await batcher.submit(1) == 2
    results = await asyncio.gather(*(batcher.submit(n) for n in range(10)))
    assert results == [n * 2 for n in range(10)]
    assert seen == [[1], list(range(10))]
    # while one command is in flight, newcomers wait and then go out together
    first = asyncio.ensure_future(batcher.submit(100))
    await asyncio.sleep(0.001)
    later = await asyncio.gather(*(batcher.submit(n) for n in range(5)))
    assert await first == 200 and later == [0, 2, 4, 6, 8]
    assert seen[-2:] == [[100], [0, 1, 2, 3, 4]]


async def _first_batch_failing(error: Exception) -> tuple[list[object], list[list[int]], Batcher[int, int]]:
    """Request 1 goes out alone and its batch fails with ``error`` after requests 2 and 3 came:
    what each of the three got, the batches that ran, and the batcher."""
    runs: list[list[int]] = []
    started, release = asyncio.Event(), asyncio.Event()

    async def run(batch: Sequence[int]) -> list[int]:
        runs.append(list(batch))
        started.set()
        await release.wait()
        if batch[0] == 1:
            raise error
        return list(batch)

    batcher: Batcher[int, int] = Batcher(run)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.wait_for(started.wait(), 5)
    waiting = [asyncio.ensure_future(batcher.submit(n)) for n in (2, 3)]
    await asyncio.sleep(0)
    release.set()
    return await asyncio.gather(first, *waiting, return_exceptions=True), runs, batcher


async def test_requests_waiting_when_no_store_was_found_fail_with_that_batch() -> None:
    """An outage costs a request one server selection timeout, not the one in flight and its own."""
    outcomes, runs, batcher = await _first_batch_failing(ServerSelectionTimeoutError("no store within the timeout"))
    assert all(isinstance(o, ServerSelectionTimeoutError) for o in outcomes), outcomes
    assert runs == [[1]]  # the waiting requests did not wait for a second search
    assert await asyncio.wait_for(batcher.submit(4), 5) == 4  # a request after it goes out as ever


async def test_requests_waiting_after_another_failure_go_out_in_the_next_batch() -> None:
    outcomes, runs, _ = await _first_batch_failing(AutoReconnect("the connection dropped"))  # the next may connect
    assert isinstance(outcomes[0], AutoReconnect) and outcomes[1:] == [2, 3]
    assert runs == [[1], [2, 3]]


async def test_stopping_cancels_the_batch_in_flight_and_the_requests_waiting() -> None:
    started, ended = asyncio.Event(), asyncio.Event()

    async def run(batch: Sequence[int]) -> list[int]:
        started.set()
        try:
            await asyncio.Event().wait()  # a store that does not answer
        finally:
            ended.set()
        return list(batch)

    batcher: Batcher[int, int] = Batcher(run)
    in_flight = asyncio.ensure_future(batcher.submit(1))
    await asyncio.wait_for(started.wait(), 5)
    waiting = batcher.enqueue(2)  # for the next batch
    await batcher.stop()
    assert ended.is_set()
    await asyncio.wait([in_flight], timeout=5)
    assert in_flight.cancelled() and waiting.cancelled()


async def test_a_closing_client_stops_its_reads(embedded: EmbeddedMongo, db_name: str) -> None:
    store = Repositories.connect(embedded.uri, db_name)
    started = asyncio.Event()

    async def run(batch: Sequence[str]) -> list[bool]:
        started.set()
        await asyncio.Event().wait()  # a read the store has not answered
        return [False for _ in batch]

    read = asyncio.ensure_future(store.client.batcher("test.unanswered", run).submit("key"))
    await asyncio.wait_for(started.wait(), 5)
    await store.close()
    await asyncio.wait([read], timeout=5)
    assert read.cancelled()


async def test_batches_are_capped_and_errors_reach_only_their_request() -> None:
    async def run(batch: Sequence[int]) -> list[int | BaseException]:
        return [ValueError(f"bad {n}") if n % 3 == 0 else n for n in batch]

    batcher: Batcher[int, int] = Batcher(run, max_size=4)
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in range(1, 10)), return_exceptions=True)
    assert [str(o) if isinstance(o, Exception) else o for o in outcomes] == [
        1,
        2,
        "bad 3",
        4,
        5,
        "bad 6",
        7,
        8,
        "bad 9",
    ]
    assert batcher.batches == 3 and batcher.requests == 9


async def test_a_failed_command_fails_every_request_of_its_batch() -> None:
    async def run(batch: Sequence[int]) -> list[int]:
        raise ConnectionError("store gone")

    batcher: Batcher[int, int] = Batcher(run)
    outcomes = await asyncio.gather(*(batcher.submit(n) for n in range(3)), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)
    with pytest.raises(ConnectionError):
        await batcher.submit(7)  # and the batcher keeps working for the next ones


class UnconfirmedWrites:
    """A collection whose ``bulk_write`` answers as a replica set does when the write concern
    failed (``wtimeout``, a primary stepping down): one write refused alone, the rest written but
    not confirmed durably."""

    async def bulk_write(self, writes: list[Any], ordered: bool) -> None:
        raise BulkWriteError(
            {
                "writeErrors": [{"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"}],
                "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
                "nInserted": 2,
            }
        )


async def test_writes_the_store_did_not_confirm_durably_fail_as_an_outage() -> None:
    """Acknowledged as written, a recorded message could be rolled back with a failing primary and
    never sent again: each unconfirmed write fails as the store being unavailable (webhooks: 503)."""
    writes = BulkWrites(UnconfirmedWrites())
    outcomes = await asyncio.gather(*(writes.submit(InsertOne({"_id": n})) for n in range(3)), return_exceptions=True)
    assert isinstance(outcomes[1], DuplicateKeyError)  # refused alone: its own error, as before
    for unconfirmed in (outcomes[0], outcomes[2]):
        assert isinstance(unconfirmed, StoreUnavailable)
        assert "waiting for replication timed out" in str(unconfirmed)


async def test_a_single_write_the_store_did_not_confirm_durably_fails_as_an_outage() -> None:
    @translating_outages
    async def insert() -> None:  # as PyMongo raises it for insert_one, update_one, find_one_and_update
        raise WriteConcernError("waiting for replication timed out", 64, {"writeConcernError": {"code": 64}})

    with pytest.raises(StoreUnavailable, match="did not confirm the write durably"):
        await insert()


def _bulk_error(*codes: int, concern: bool = False) -> BulkWriteError:
    details: dict[str, Any] = {
        "writeErrors": [{"index": n, "code": c, "errmsg": f"code {c}"} for n, c in enumerate(codes)]
    }
    if concern:
        details["writeConcernErrors"] = [{"code": 64, "errmsg": "waiting for replication timed out"}]
    return BulkWriteError(details)


async def test_a_failure_mongodb_calls_transient_is_an_outage_and_no_other() -> None:
    """An error MongoDB labels retryable or gives a transient code (a mongos that lost its shard,
    a time limit), still there after the driver's own retry, is the store being away for the
    callers (a webhook answered 503; the outbox's record that a reply was sent written again);
    any other error stays what it is. A bulk's error counts so when every write error is
    transient, or the set did not confirm the writes."""
    failures: list[OperationFailure] = [
        OperationFailure("could not reach the shard", 6, {"code": 6}),
        OperationFailure("time limit", 262, {"code": 262}),
        OperationFailure("labelled", 999, {"code": 999, "errorLabels": ["RetryableWriteError"]}),
        _bulk_error(262, 9001),
        _bulk_error(11000, concern=True),
        OperationFailure("database or disk is full", 8, {"code": 8}),
        DuplicateKeyError("E11000 duplicate key", 11000, {"code": 11000}),
        _bulk_error(262, 8),
    ]
    outcomes = []
    for failure in failures:

        @translating_outages
        async def write(failure: OperationFailure = failure) -> None:
            raise failure

        try:
            await write()
        except Exception as exc:
            outcomes.append(exc)
    assert [type(o) for o in outcomes] == [StoreUnavailable] * 5 + [OperationFailure, DuplicateKeyError, BulkWriteError]


class TransientWriteErrors:
    """A collection whose ``bulk_write`` refuses two writes alone: one for a time limit (transient),
    one for a full disk."""

    async def bulk_write(self, writes: list[Any], ordered: bool) -> None:
        raise BulkWriteError(
            {
                "writeErrors": [
                    {"index": 0, "code": 262, "errmsg": "operation exceeded time limit"},
                    {"index": 2, "code": 8, "errmsg": "database or disk is full"},
                ],
                "nInserted": 1,
            }
        )


async def test_a_write_refused_for_now_in_a_batch_fails_as_an_outage() -> None:
    writes = BulkWrites(TransientWriteErrors())

    @translating_outages
    async def write(n: int) -> bool:  # as a repository's public method writes through StoreClient.write
        return await writes.submit(InsertOne({"_id": n}))

    outcomes = await asyncio.gather(*(write(n) for n in range(3)), return_exceptions=True)
    assert isinstance(outcomes[0], StoreUnavailable) and "exceeded time limit" in str(outcomes[0])
    assert outcomes[1] is False  # written: the batch's result does not say whether updates matched
    assert type(outcomes[2]) is OperationFailure and outcomes[2].code == 8


async def test_concurrent_records_share_store_commands(counted: tuple[Repositories, list[str]]) -> None:
    store, commands = counted
    await record(store, inbound("warm", address="carol"))  # contact and thread exist
    commands.clear()
    items = [inbound(f"m{n}", address="carol") for n in range(20)] + [inbound("m3", address="carol")]
    results = await asyncio.gather(*(record(store, item) for item in items))
    assert [dup for _, _, dup in results].count(True) == 1  # m3 twice in one batch: stored once
    assert commands.count("insert") <= len(items) // 2  # 21 inserts share a few commands
    assert len(await factories.messages(store, "acme")) == 21


async def test_concurrent_consent_checks_share_one_read(counted: tuple[Repositories, list[str]]) -> None:
    """Every SMS send asks whether its recipient said STOP: concurrent sends ask together."""
    store, commands = counted
    numbers = [f"+1415555{n:04d}" for n in range(30)]
    for n, number in enumerate(numbers[:10]):
        assert await store.phone.set_consent(
            "default", "sms", number, "stop" if n % 2 == 0 else "start", 1_000 + n, f"m{n}"
        )
    commands.clear()
    answers = await asyncio.gather(*(store.phone.opted_out("default", "sms", number) for number in numbers))
    assert answers == [n < 10 and n % 2 == 0 for n in range(30)]
    assert commands.count("find") <= 2
    assert not await store.phone.opted_out("other", "sms", numbers[0])  # per account
    assert not await store.phone.opted_out("default", "whatsapp", numbers[0])  # per channel


async def test_concurrent_dialogue_state_swaps_share_a_command_and_each_learns_its_own_outcome(
    counted: tuple[Repositories, list[str]],
) -> None:
    """Versioned writes of the bot's state: many threads in one command; two swaps of one thread
    from the same version in one batch: the first holds, the second is told it lost, without a
    read back (only the newest swap of a thread goes out); a stale swap alone is read back."""
    store, commands = counted
    threads = []
    for n in range(12):
        _, thread, _ = await record(store, inbound(f"s{n}", address=f"dave{n}"))
        threads.append(thread.id)
    assert await store.threads.swap_thread_nlu_state(threads[0], 0, {"by": "m-a", "language": "en"})
    commands.clear()
    swaps = [(threads[0], 1, "m-b"), (threads[0], 1, "m-c"), (threads[0], 0, "m-stale")]
    swaps += [(thread_id, 0, f"m-{n}") for n, thread_id in enumerate(threads[1:])]
    outcomes = await asyncio.gather(
        *(store.threads.swap_thread_nlu_state(t, v, {"by": by, "language": "lv"}) for t, v, by in swaps)
    )
    assert outcomes == [True, False, False] + [True] * 11
    assert commands.count("update") == 1 and "find" not in commands, commands  # one batch, all it sent held
    assert (await store.threads.thread_nlu_state(threads[0]))["by"] == "m-b"
    assert [(await store.threads.thread_nlu_state(t))["v"] for t in threads[1:]] == [1] * 11
    commands.clear()  # all of a batch held: nothing read back
    held = await asyncio.gather(*(store.threads.swap_thread_nlu_state(t, 1, {"by": f"m2-{t}"}) for t in threads[1:]))
    assert held == [True] * 11 and "find" not in commands
    commands.clear()  # one stale swap among fresh ones of other threads: the batch is read back
    mixed = await asyncio.gather(
        store.threads.swap_thread_nlu_state(threads[1], 1, {"by": "m3-stale"}),
        *(store.threads.swap_thread_nlu_state(t, 2, {"by": f"m3-{t}"}) for t in threads[2:]),
    )
    assert mixed == [False] + [True] * 10
    assert commands.count("update") == 1 and commands.count("find") == 1, commands


async def test_two_dispatches_of_one_message_from_one_version_hold_once(
    counted: tuple[Repositories, list[str]],
) -> None:
    """The same message decided twice on the same version (a sweeper's replay after a lapsed
    lease, in the same batch or the next): both carry its ``by``, only the one that wrote is told
    it held, in a batch read back or alone, and the stored state is that one's."""
    store, _ = counted
    _, thread, _ = await record(store, inbound("t1", address="erin"))
    together = await asyncio.gather(
        store.threads.swap_thread_nlu_state(thread.id, 0, {"by": "m1", "language": "en"}),
        store.threads.swap_thread_nlu_state(thread.id, 0, {"by": "m1", "language": "lv"}),
    )
    assert sorted(together) == [False, True]
    stored = await store.threads.thread_nlu_state(thread.id)
    assert stored["language"] == ("en" if together[0] else "lv") and stored["v"] == 1
    later = await store.threads.swap_thread_nlu_state(thread.id, 0, {"by": "m1", "language": "ru"})
    assert later is False and (await store.threads.thread_nlu_state(thread.id))["language"] == stored["language"]


def test_a_swap_read_back_holds_in_either_shape_of_the_projection() -> None:
    """The read back projects ``nlu_state.v`` and ``nlu_state.w``: MongoDB answers nested fields,
    the embedded server flat dotted keys; a swap is told it held only on its own version and token."""
    swap = Swap("thr_1", 3, {"by": "m1"}, token="t-own")
    assert swap.held({"_id": "thr_1", "nlu_state": {"v": 4, "w": "t-own"}})
    assert swap.held({"_id": "thr_1", "nlu_state.v": 4, "nlu_state.w": "t-own"})
    assert not swap.held({"_id": "thr_1", "nlu_state": {"v": 4, "w": "t-other"}})
    assert not swap.held({"_id": "thr_1", "nlu_state.v": 5, "nlu_state.w": "t-own"})
    assert not swap.held({"_id": "thr_1"}) and not swap.held(None)
