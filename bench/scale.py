"""Scale benchmark: the console's queries at 10,000 and at 1,000,000 stored messages, on the embedded store.

    .venv/bin/python bench/scale.py [--sizes 10000,1000000] [--runs 30]

For each size a fresh database gets that many messages (about ``--per-thread`` per thread, two
threads per contact) with batched inserts, then the indexes. Whatever the size, the console's
answers are the same size: ``--queued`` threads wait in the queue, each of ``--agents`` agents
holds ``--mine`` conversations, and one contact has ``--history`` messages over four threads, so
a slower answer at a larger size can only come from reading more of the store. Measured, each
``--runs`` times, interleaved:

* queue view: ``Store.queued_threads`` (the queue's first 200, most urgent first);
* my conversations: ``Store.assigned_threads`` (one agent's, most recent first);
* thread history: ``Store.contact_messages``, the contact's messages across threads, newest page
  and the oldest page (``--page`` a page).

It prints p50/p90 per query and size, the ratio largest / smallest (target: no slower than 1.5x)
and each query's plan on the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.plans import CommandLog, Latencies, print_plans  # noqa: E402
from conversations.embedded import EmbeddedMongo  # noqa: E402
from conversations.models import (  # noqa: E402
    Contact, Direction, Identity, Message, SenderKind, Thread, ThreadStatus,
)
from conversations.store import Store  # noqa: E402
from tests.query_plans import index_backed, labelled, server_explain, sqlite_plans  # noqa: E402

ACCOUNT = "default"
HISTORY_CONTACT = "con_history"
CHANNELS = ["whatsapp", "webchat", "sms", "email", "telegram"]
END = datetime(2026, 11, 1, tzinfo=timezone.utc)


class Shape:
    """What one size stores: threads, their status and owner, and how many messages each has."""

    def __init__(self, messages: int, args: argparse.Namespace) -> None:
        fixed = args.queued + args.agents * args.mine
        self.history = args.history
        self.threads = max((messages - args.history) // args.per_thread, fixed + 1)
        self.messages = messages
        self.queued, self.agents, self.mine = args.queued, args.agents, args.mine

    def thread(self, i: int, rng: random.Random) -> Thread:
        opened = END - timedelta(seconds=rng.randint(3600, 90 * 86400))
        status, assignee = ThreadStatus.RESOLVED, None
        if i < self.queued:
            status = ThreadStatus.QUEUED
        elif i < self.queued + self.agents * self.mine:
            status, assignee = ThreadStatus.ASSIGNED, f"agt_{(i - self.queued) % self.agents:02d}"
        channel = CHANNELS[i % len(CHANNELS)]
        return Thread(
            id=f"thr_s{i:08d}", account_id=ACCOUNT, contact_id=f"con_s{i // 2:08d}", channel=channel,
            status=status, assignee=assignee, opened_at=opened, last_message_at=opened + timedelta(minutes=30),
            address=f"+3712{i:07d}", priority=1 if rng.random() < 0.05 else 0,
            queued_at=opened + timedelta(seconds=40) if status != ThreadStatus.RESOLVED or rng.random() < 0.6 else None,
            resolved_at=opened + timedelta(hours=2) if status == ThreadStatus.RESOLVED else None,
        )


def message(thread: Thread, n: int, at: datetime) -> dict[str, Any]:
    inbound = n % 2 == 0
    return Message(
        id=f"msg_{thread.id[4:]}_{n:04d}", account_id=ACCOUNT, thread_id=thread.id, contact_id=thread.contact_id,
        direction=Direction.IN if inbound else Direction.OUT, channel=thread.channel, created_at=at,
        text=("Hello, I have a question about my order number " if inbound else "Thanks! Let me check that for you. ") + str(n),
        sender={"kind": str(SenderKind.CUSTOMER if inbound else SenderKind.BOT), "address": thread.address or ""},
        external_id=f"ext_{thread.id}_{n}" if inbound else None,
    ).to_doc()


def documents(shape: Shape) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every document of one size, as (collection, document), in insertion order."""
    rng = random.Random(shape.messages)
    left = shape.messages - shape.history
    for i in range(shape.threads):
        thread = shape.thread(i, rng)
        yield "threads", thread.to_doc()
        if i % 2 == 0:
            yield "contacts", Contact(id=thread.contact_id, account_id=ACCOUNT, created_at=thread.opened_at,
                                      updated_at=thread.opened_at, name=f"Customer {i // 2}",
                                      identities=[Identity(thread.channel, thread.address or "")]).to_doc()
        count = left // (shape.threads - i)
        left -= count
        for n in range(count):
            yield "messages", message(thread, n, thread.opened_at + timedelta(seconds=20 * n))
    # the contact whose history is read: four threads, on two channels
    yield "contacts", Contact(id=HISTORY_CONTACT, account_id=ACCOUNT, created_at=END, updated_at=END,
                              name="History").to_doc()
    for t in range(4):
        opened = END - timedelta(days=40 - 10 * t)
        thread = Thread(id=f"thr_history{t}", account_id=ACCOUNT, contact_id=HISTORY_CONTACT, channel=CHANNELS[t % 2],
                        status=ThreadStatus.RESOLVED, opened_at=opened, last_message_at=opened, address="+37120000000")
        yield "threads", thread.to_doc()
        for n in range(shape.history // 4):
            yield "messages", message(thread, n, opened + timedelta(seconds=30 * n))


async def seed(store: Store, shape: Shape, batch: int) -> float:
    """Insert every document in batches of ``batch`` per collection; returns documents/s."""
    pending: dict[str, list[dict[str, Any]]] = {}
    total, started = 0, time.perf_counter()
    for collection, doc in documents(shape):
        docs = pending.setdefault(collection, [])
        docs.append(doc)
        if len(docs) >= batch:
            await store._db[collection].insert_many(docs, ordered=False)
            total += len(docs)
            docs.clear()
    for collection, docs in pending.items():
        if docs:
            await store._db[collection].insert_many(docs, ordered=False)
            total += len(docs)
    return total / (time.perf_counter() - started)


Query = Callable[[], Awaitable[Any]]


def queries(store: Store, args: argparse.Namespace) -> dict[str, Query]:
    last_page = (args.history - 1) // args.page * args.page
    return {
        "queue view (queued_threads)": lambda: store.queued_threads(ACCOUNT),
        "my conversations (assigned_threads)": lambda: store.assigned_threads("agt_07"),
        "thread history, newest page (contact_messages)": lambda: store.contact_messages(HISTORY_CONTACT, args.page),
        "thread history, oldest page (contact_messages)":
            lambda: store.contact_messages(HISTORY_CONTACT, args.page, offset=last_page),
    }


async def measure(store: Store, args: argparse.Namespace, size: int) -> dict[str, Latencies]:
    found = {name: Latencies(name) for name in queries(store, args)}
    for name, query in queries(store, args).items():
        with labelled(f"{name} @ {size:,}"):
            answer = await query()
        expected = {"queue": min(args.queued, 200), "my": args.mine, "thread": min(args.page, args.history)}
        assert len(answer) == expected[name.split()[0]], (name, len(answer))
    for _ in range(args.runs):
        for name, query in queries(store, args).items():
            started = time.perf_counter()
            await query()
            found[name].seconds.append(time.perf_counter() - started)
    return found


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    embedded = EmbeddedMongo(data_dir, mode=args.mode)
    await embedded.start()
    log = CommandLog()
    results: dict[int, dict[str, Latencies]] = {}
    server: dict[str, list[str]] = {}
    try:
        for size in args.sizes:
            store = Store.connect(embedded.uri, f"scale_{size}", listeners=[log])
            shape = Shape(size, args)
            rate = await seed(store, shape, args.batch)
            started = time.perf_counter()
            await store.ensure_indexes()
            indexing = time.perf_counter() - started
            print(f"{size:,} messages: {shape.threads + 4:,} threads, seeded at {rate:,.0f} docs/s, "
                  f"indexes built in {indexing:.1f} s")
            results[size] = await measure(store, args, size)
            for label, command in log.captured.items():
                if label not in server:
                    server[label] = await server_explain(store._db, command)
            await store.close()
    finally:
        await embedded.stop()
    report(args, results)
    plans = sqlite_plans(data_dir, log.captured)
    print_plans("query plans on the embedded store", server, plans)
    unbacked = [label for label, (_, plan) in plans.items() if not index_backed(plan)]
    print("\nevery query index-backed" if not unbacked else f"\nNOT index-backed: {', '.join(unbacked)}")


def report(args: argparse.Namespace, results: dict[int, dict[str, Latencies]]) -> None:
    small, large = min(results), max(results)
    print(f"\n  {'query':<48} " + " ".join(f"{f'p50 @ {s:,}':>16}" for s in sorted(results))
          + f" {'p90 @ ' + format(large, ','):>16} {'ratio':>6}")
    worst = 0.0
    for name in results[small]:
        ratio = results[large][name].p50 / results[small][name].p50
        worst = max(worst, ratio)
        cells = " ".join(f"{results[s][name].p50 * 1e3:13.2f} ms" for s in sorted(results))
        print(f"  {name:<48} {cells} {results[large][name].pct(90) * 1e3:13.2f} ms {ratio:6.2f}")
    print(f"\nslowest ratio {worst:.2f} at {large:,} vs {small:,} messages "
          f"(target <= 1.5: {'met' if worst <= 1.5 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="stored messages per run, comma-separated")
    parser.add_argument("--per-thread", type=int, default=10, help="messages per thread on average")
    parser.add_argument("--queued", type=int, default=300, help="threads waiting in the queue")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--mine", type=int, default=20, help="open conversations per agent")
    parser.add_argument("--history", type=int, default=600, help="messages of the contact whose history is read")
    parser.add_argument("--page", type=int, default=50, help="messages per history page")
    parser.add_argument("--runs", type=int, default=30, help="times each query is measured per size")
    parser.add_argument("--batch", type=int, default=1000, help="documents per insert_many")
    parser.add_argument("--mode", choices=["process", "thread"], default="process", help="how the store runs")
    args = parser.parse_args()
    try:
        args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes wants numbers, got {args.sizes!r}")
    if len(args.sizes) < 2:
        parser.error("--sizes wants at least two sizes to compare")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
