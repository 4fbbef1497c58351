"""The dispatch lease kept while a message is decided, against the real store failing for real."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.router.dispatch_lease import renewing_dispatch_lease
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.factories import inbound, record
from tests.router.test_inbound import wait_for
from tests.router.test_outbox_logs import router_lines


def _run_sql(database: Path, statement: str) -> None:
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.execute(statement)
        db.commit()


@contextlib.asynccontextmanager
async def refusing_updates(database: Path) -> AsyncIterator[None]:
    """The store's SQLite refuses every update of a message until the block ends: a store error
    that is no outage (the store answers; the write fails; the embedded store reports this
    refusal as a duplicate key)."""
    refuse = "CREATE TRIGGER refuse BEFORE UPDATE ON messages BEGIN SELECT RAISE(ABORT, 'disk is full'); END"
    await asyncio.to_thread(_run_sql, database, refuse)
    try:
        yield
    finally:
        await asyncio.to_thread(_run_sql, database, "DROP TRIGGER refuse")


async def _due_ms(store: Repositories, message_id: str) -> int:
    doc = await store.client.database.messages.find_one({"_id": message_id}, {"dispatch_due_ms": 1})
    assert doc is not None
    return int(doc["dispatch_due_ms"])


async def test_the_lease_is_kept_after_a_renewal_the_store_refuses(
    store: Repositories, embedded: EmbeddedMongo, db_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal the store refuses is logged and tried again: were the renewals to end, a decision
    slower than the lease (an HTTP action, a long parse) would be taken over by a sweeper and made
    a second time, answering the customer twice."""
    message, _, _ = await record(store, inbound("slow"))

    async def refused() -> bool:
        return "dispatch.lease_not_renewed" in router_lines(caplog.records)

    async def decide() -> bool:
        async with refusing_updates(embedded.data_dir / f"{db_name}.db"):
            await wait_for(refused, timeout=10)
        before = await _due_ms(store, message.id)

        async def renewed() -> bool:  # the refused renewal left it as it was
            return await _due_ms(store, message.id) != before

        await wait_for(renewed, timeout=10)
        return True

    assert await renewing_dispatch_lease(store, message.id, timedelta(seconds=0.6), decide)
    assert "disk is full" in router_lines(caplog.records)  # logged with what failed


def _renewals(message_id: str) -> list[asyncio.Task[object]]:
    """The renewal tasks of ``message_id`` (a renewal running for another test's message is not)."""
    found = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if (
            frame is not None
            and frame.f_code.co_name == "_keep_lease"
            and frame.f_locals.get("message_id") == message_id
        ):
            found.append(task)
    return found


async def test_the_renewal_is_told_to_stop_and_never_cancelled(store: Repositories) -> None:
    """Cancelled inside a store call, the driver can keep a connection-pool lock that every later
    store call waits for: the renewal finishes its call and ends by itself once the decision is made."""
    message, _, _ = await record(store, inbound("slow"))
    seen: list[asyncio.Task[object]] = []

    async def decide() -> bool:
        async def renewing() -> bool:
            seen.extend(_renewals(message.id))
            return bool(seen)

        await wait_for(renewing, timeout=10)
        return True

    assert await renewing_dispatch_lease(store, message.id, timedelta(seconds=0.3), decide)
    assert [(task.done(), task.cancelled()) for task in seen] == [(True, False)]
