"""Scale benchmark: the inbox and history queries of the console and the API at 10,000 and at
1,000,000 stored messages, on the embedded store.

    .venv/bin/python bench/scale.py [--sizes 10000,1000000] [--runs 30] [--batch 1000] [--in-flight 2]

For each size a fresh database gets that many messages (about ``--per-thread`` per thread, two
threads per contact, a timeline entry per queueing and per resolution) with batched
``insert_many`` calls, several in flight, behind a progress bar; then the indexes are built. Whatever
the size, every answer is the same size: ``--queued`` threads wait in the queue, each of ``--agents``
agents holds ``--mine`` conversations, and one contact has ``--history`` messages over four threads,
so a slower answer at a larger size can only come from reading more of the store.

Measured ``--runs`` times, the sizes taking turns (a busy moment of this shared machine falls on
both), each through the function the console or the API handler calls:

* console inbox: the queue view and "my conversations" (``bot.web.console.views.queue_rows`` / ``my_rows``:
  the threads, then their contacts); the queue view and the conversation list of an agent who is a
  member of two inboxes;
* console history: ``bot.web.console.views.history`` (the contact's messages on every channel and the
  threads' timeline);
* console conversation lists (``Store.browse_threads``, a page of 25 and one more): All, its second
  page, oldest first, Unassigned by channel, All by team and by label; the unread count
  (``Store.count_threads``); search (``Store.search_messages``, 50 newest matches of two words);
* API inbox: ``GET /api/threads`` (``Store.list_threads``): first page, second page (``before``),
  ``?status=queued``; ``GET /api/contacts`` (``Store.list_contacts``);
* API history: ``GET /api/threads/{id}`` (``Store.thread_messages``) and a contact's threads
  (``Store.contact_threads``);
* a campaign's walk of its audience: a page of it read on from half-way (``Store.audience_page``);
* the background's, on every router: the outbox worker's lease and the sweeper's claim with nothing
  due (a few sends and dispatches wait at every size, due after the run), and the ``/metrics``
  gauges of pending sends and of the queue's depth.

It prints the load time, p50/p90 per query and size, the ratio largest / smallest (target: no
slower than 1.5x) and each query's plan on the embedded server.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.plans import CommandLog, Latencies, print_plans
from bench.progress import Progress
from bot.router.queue import Queue
from bot.web.console import views
from conversations.agent_models import Agent, Role
from conversations.campaigns import Campaign, CampaignState
from conversations.embedded import EmbeddedMongo
from conversations.membership import FIRST, thread_match
from conversations.models import epoch_ms
from conversations.repositories import Repositories
from conversations.thread_models import (
    Contact,
    DispatchState,
    Message,
    OutboxState,
    SenderKind,
    Thread,
    ThreadStatus,
    TimelineEntry,
    TimelineKind,
)
from conversations.threads import ThreadFilter
from conversations.traffic import Direction, Identity
from tests.query_plans import index_backed, labelled, server_explain, sqlite_plans

ACCOUNT = "default"
HISTORY_CONTACT = "con_history"
CHANNELS = ["whatsapp", "webchat", "sms", "email", "telegram"]
END = datetime(2026, 11, 1, tzinfo=UTC)
PAGE = 26  # the console's conversation list asks for a page of 25 and one more
WAITING = 5  # inbound messages still to dispatch, and replies still to send, at every size


class Shape:
    """What one size stores: threads, their status and owner, and how many messages each has."""

    def __init__(self, messages: int, args: argparse.Namespace) -> None:
        fixed = args.queued + args.agents * args.mine
        self.history = args.history // 4 * 4
        self.threads = max((messages - self.history) // args.per_thread, fixed + 1)
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
            id=f"thr_s{i:08d}",
            account_id=ACCOUNT,
            contact_id=f"con_s{i // 2:08d}",
            channel=channel,
            status=status,
            assignee=assignee,
            opened_at=opened,
            last_message_at=opened + timedelta(minutes=30),
            address=f"+3712{i:07d}",
            priority=1 if rng.random() < 0.05 else 0,
            team="sales" if i % 7 == 0 else None,
            labels=["vip"] if i % 20 == 0 else [],
            unread_since_ms=epoch_ms(opened + timedelta(minutes=30)) if status == ThreadStatus.QUEUED else None,
            unread_count=1 if status == ThreadStatus.QUEUED else None,
            queued_at=opened + timedelta(seconds=40) if status != ThreadStatus.RESOLVED or rng.random() < 0.6 else None,
            resolved_at=opened + timedelta(hours=2) if status == ThreadStatus.RESOLVED else None,
        )


def message(thread: Thread, n: int, at: datetime) -> dict[str, Any]:
    """A message as the router leaves it: an inbound one dispatched, a reply sent."""
    inbound = n % 2 == 0
    doc = _message(thread, n, at, inbound)
    if inbound:
        doc["dispatch_state"] = str(DispatchState.DONE)
    else:
        doc["send"] = {"state": str(OutboxState.SENT), "due_ms": epoch_ms(at), "attempts": 1, "sent_at": epoch_ms(at)}
    return doc


def waiting(thread: Thread, n: int) -> dict[str, Any]:
    """A message still at work, the same few at every size: an inbound one whose dispatch lease and
    a reply whose send are due only after ``END``, so the background's claims find nothing due."""
    doc = _message(thread, 9000 + n, END, n % 2 == 0)
    due = epoch_ms(END + timedelta(days=365))
    if n % 2 == 0:
        doc.update(dispatch_state=str(DispatchState.PENDING), dispatch_due_ms=due)
    else:
        doc["send"] = {"state": str(OutboxState.PENDING), "due_ms": due, "attempts": 0}
    return doc


def _message(thread: Thread, n: int, at: datetime, inbound: bool) -> dict[str, Any]:
    return Message(
        id=f"msg_{thread.id[4:]}_{n:04d}",
        account_id=ACCOUNT,
        thread_id=thread.id,
        contact_id=thread.contact_id,
        direction=Direction.IN if inbound else Direction.OUT,
        channel=thread.channel,
        created_at=at,
        text=("Hello, I have a question about my order number " if inbound else "Thanks! Let me check that for you. ")
        + str(n),
        sender={"kind": str(SenderKind.CUSTOMER if inbound else SenderKind.BOT), "address": thread.address or ""},
        external_id=f"ext_{thread.id}_{n}" if inbound else None,
    ).to_doc()


def timeline(thread: Thread) -> Iterator[tuple[str, dict[str, Any]]]:
    """The thread's queueing and resolution, as the queue writes them."""
    for kind, at in ((TimelineKind.QUEUED, thread.queued_at), (TimelineKind.RESOLVED, thread.resolved_at)):
        if at is not None:
            yield (
                "timeline",
                TimelineEntry(
                    id=f"tl_{thread.id[4:]}_{kind}",
                    account_id=ACCOUNT,
                    thread_id=thread.id,
                    contact_id=thread.contact_id,
                    kind=str(kind),
                    at=at,
                    actor="system",
                ).to_doc(),
            )


def documents(shape: Shape) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every document of one size, as (collection, document), in insertion order."""
    rng = random.Random(shape.messages)
    left = shape.messages - shape.history
    for i in range(shape.threads):
        thread = shape.thread(i, rng)
        yield "threads", thread.to_doc()
        if i % 2 == 0:
            yield (
                "contacts",
                Contact(
                    id=thread.contact_id,
                    account_id=ACCOUNT,
                    created_at=thread.opened_at,
                    updated_at=thread.opened_at,
                    name=f"Customer {i // 2}",
                    identities=[Identity(thread.channel, thread.address or "")],
                ).to_doc(),
            )
        yield from timeline(thread)
        count = left // (shape.threads - i)
        left -= count
        for n in range(count):
            yield "messages", message(thread, n, thread.opened_at + timedelta(seconds=20 * n))
    # the contact whose history is read: four threads, on two channels
    yield (
        "contacts",
        Contact(id=HISTORY_CONTACT, account_id=ACCOUNT, created_at=END, updated_at=END, name="History").to_doc(),
    )
    for t in range(4):
        opened = END - timedelta(days=40 - 10 * t)
        thread = Thread(
            id=f"thr_history{t}",
            account_id=ACCOUNT,
            contact_id=HISTORY_CONTACT,
            channel=CHANNELS[t % 2],
            status=ThreadStatus.RESOLVED,
            opened_at=opened,
            last_message_at=opened,
            address="+37120000000",
            queued_at=opened,
            resolved_at=opened + timedelta(days=1),
        )
        yield "threads", thread.to_doc()
        yield from timeline(thread)
        for n in range(shape.history // 4):
            yield "messages", message(thread, n, opened + timedelta(seconds=30 * n))
        if t == 0:  # not the thread whose messages are read (the history's last)
            for n in range(2 * WAITING):
                yield "messages", waiting(thread, n)


async def seed(store: Repositories, shape: Shape, batch: int, in_flight: int) -> tuple[int, float]:
    """Insert every document, ``batch`` per ``insert_many`` per collection, up to ``in_flight``
    batches at once (the next batch is built while the server writes the last); returns
    (documents, seconds). The bar counts messages."""
    pending: dict[str, list[dict[str, Any]]] = {}
    writing: set[asyncio.Task[None]] = set()
    bar = Progress(f"{shape.messages:>9,} messages", shape.messages)
    total = 0

    async def insert(collection: str, docs: list[dict[str, Any]]) -> None:
        # seeded straight into the database, at scale: a tool's own shortcut past the repositories
        await store.client.database[collection].insert_many(docs, ordered=False)
        if collection == "messages":
            bar.advance(len(docs))

    async def flush(collection: str, docs: list[dict[str, Any]]) -> None:
        nonlocal total
        while len(writing) >= in_flight:
            finished, _ = await asyncio.wait(writing, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                writing.discard(task)
                task.result()
        writing.add(asyncio.create_task(insert(collection, docs)))
        total += len(docs)

    for collection, doc in documents(shape):
        docs = pending.setdefault(collection, [])
        docs.append(doc)
        if len(docs) >= batch:
            await flush(collection, docs)
            pending[collection] = []
    for collection, docs in pending.items():
        if docs:
            await flush(collection, docs)
    for task in writing:
        await task
    return total, bar.close()


Query = Callable[[], Awaitable[Any]]


async def queries(store: Repositories, args: argparse.Namespace) -> dict[str, tuple[Query, int]]:
    """Each measured query, with the size of its answer (the same at every size)."""
    queue = Queue(store)
    agent = Agent(id="agt_07", account_id=ACCOUNT, login="agent7", name="Agent 7", role=Role.AGENT, created_at=END)
    # a member of two inboxes, the first WhatsApp and web chat ones (the threads here have no inbox_id)
    member = dataclasses.replace(agent, id="agt_m", login="member", inboxes=[f"{FIRST}{c}" for c in CHANNELS[:2]])
    members_queue = sum(1 for i in range(args.queued) if CHANNELS[i % len(CHANNELS)] in CHANNELS[:2])
    first = await store.threads.list_threads(ACCOUNT, limit=100)
    before = first[-1].last_message_at
    first_page = await store.threads.browse_threads(ACCOUNT, ThreadFilter(), limit=PAGE, before=None, before_id=None)
    # the contacts were created over 90 days: on from the 45th, with every one of that millisecond
    campaign = Campaign("cmp_scale", ACCOUNT, "Scale", CHANNELS[0], CampaignState.SENDING, END, END)
    halfway = f"{epoch_ms(END - timedelta(days=45)):015d}|"

    def browse(listed: ThreadFilter, after: list[Thread] | None = None, oldest: bool = False) -> Any:
        last = after[-1] if after else None
        return store.threads.browse_threads(
            ACCOUNT,
            listed,
            limit=PAGE,
            before=last.last_message_at if last else None,
            before_id=last.id if last else None,
            oldest=oldest,
        )

    async def count(listed: ThreadFilter) -> list[int]:
        return [await store.threads.count_threads(ACCOUNT, listed)]

    return {
        "console: queue view (queue_rows)": (lambda: views.queue_rows(store, queue, agent), min(args.queued, 200)),
        "console: my conversations (my_rows)": (lambda: views.my_rows(store, queue, agent), args.mine),
        "console: a member's queue view (2 inboxes)": (
            lambda: views.queue_rows(store, queue, member),
            min(members_queue, 200),
        ),
        "console list: a member's all (2 inboxes)": (lambda: browse(ThreadFilter(within=thread_match(member))), PAGE),
        "console: contact history (history)": (lambda: views.history(store, HISTORY_CONTACT), 300 + 8),
        "API: GET /api/threads": (lambda: store.threads.list_threads(ACCOUNT, limit=100), 100),
        "API: GET /api/threads, 2nd page (before)": (
            lambda: store.threads.list_threads(ACCOUNT, limit=100, before=before),
            100,
        ),
        "API: GET /api/threads?status=queued": (
            lambda: store.threads.list_threads(ACCOUNT, limit=100, status="queued"),
            min(args.queued, 100),
        ),
        "API: GET /api/contacts": (lambda: store.contacts.list_contacts(ACCOUNT, limit=100), 100),
        "campaign: an audience page half-way (audience_page)": (
            lambda: store.campaigns.audience_page(campaign, halfway, PAGE),
            PAGE,
        ),
        "console list: all (browse_threads)": (lambda: browse(ThreadFilter()), PAGE),
        "console list: all, 2nd page": (lambda: browse(ThreadFilter(), first_page), PAGE),
        "console list: all, oldest first": (lambda: browse(ThreadFilter(), oldest=True), PAGE),
        "console list: unassigned by channel": (lambda: browse(ThreadFilter(("queued",), channel="webchat")), PAGE),
        "console list: all by team": (lambda: browse(ThreadFilter(team="sales")), PAGE),
        "console list: all by label": (lambda: browse(ThreadFilter(label="vip")), PAGE),
        "console list: unread count": (lambda: count(ThreadFilter(unread=True)), 1),
        "console search: common words (search_messages)": (
            lambda: store.messages.search_messages(ACCOUNT, "question order"),
            50,
        ),
        "console search: rare words (4 messages)": (lambda: store.messages.search_messages(ACCOUNT, "check 149"), 4),
        "API: GET /api/threads/{id} (thread_messages)": (
            lambda: store.messages.thread_messages("thr_history3", 200),
            min(args.history // 4, 200),
        ),
        "API: GET /api/contacts/{id} (contact_threads)": (
            lambda: store.threads.contact_threads(ACCOUNT, HISTORY_CONTACT),
            4,
        ),
        # the background's, on every router: nothing due (an idle router asks every half second)
        "outbox worker: lease, nothing due (lease_outbox)": (
            lambda: listed(store.outbox.lease_outbox("bench", END, timedelta(seconds=30))),
            0,
        ),
        "sweeper: claim, nothing due (claim_undispatched)": (
            lambda: listed(store.messages.claim_undispatched(END, timedelta(seconds=30))),
            0,
        ),
        # the metrics' gauges, read at every scrape of /metrics
        "metrics: sends pending (outbox_pending)": (lambda: listed(store.outbox.outbox_pending()), WAITING),
        "metrics: queue depth, every account (queue_depth)": (lambda: listed(store.queue.queue_depth()), args.queued),
        "metrics: queue depth, one account": (lambda: listed(store.queue.queue_depth(ACCOUNT)), args.queued),
    }


async def listed(answer: Awaitable[Any]) -> list[Any]:
    """An answer as a list whose length is what is checked: none, or a count's items."""
    found = await answer
    return [] if found is None else [None] * found if isinstance(found, int) else [found]


async def measure(stores: dict[int, Repositories], args: argparse.Namespace) -> dict[int, dict[str, Latencies]]:
    """Every query once under a plan label (its answer checked), then ``--runs`` rounds in which
    the sizes take turns."""
    measured = {size: await queries(store, args) for size, store in stores.items()}
    found = {size: {name: Latencies(name) for name in table} for size, table in measured.items()}
    for size, table in measured.items():
        for name, (query, expected) in table.items():
            with labelled(f"{name} @ {size:,}"):
                answer = await query()
            assert len(answer) == expected, (name, size, len(answer), expected)
    for _ in range(args.runs):
        for size, table in measured.items():
            for name, (query, _) in table.items():
                started = time.perf_counter()
                await query()
                found[size][name].seconds.append(time.perf_counter() - started)
    return found


async def load(embedded: EmbeddedMongo, log: CommandLog, size: int, args: argparse.Namespace) -> Repositories:
    # building an index over a million documents takes longer than the router's 9 s socket timeout
    store = Repositories.connect(embedded.uri, f"scale_{size}", listeners=[log], timeout_ms=120_000)
    shape = Shape(size, args)
    documents_in, seconds = await seed(store, shape, args.batch, args.in_flight)
    started = time.perf_counter()
    await store.ensure_indexes()
    indexing = time.perf_counter() - started
    print(
        f"{size:,} messages: {documents_in:,} documents ({shape.threads + 4:,} threads) loaded in {seconds:.1f} s "
        f"({documents_in / seconds:,.0f} documents/s), indexes built in {indexing:.1f} s"
    )
    return store


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    embedded = EmbeddedMongo(data_dir, mode=args.mode)
    await embedded.start()
    log = CommandLog()
    stores: dict[int, Repositories] = {}
    try:
        for size in args.sizes:
            stores[size] = await load(embedded, log, size, args)
        results = await measure(stores, args)
        server = {
            label: await server_explain(stores[args.sizes[0]].client.database, command)
            for label, command in log.captured.items()
        }
    finally:
        for store in stores.values():
            await store.close()
        await embedded.stop()
    report(results)
    plans = sqlite_plans(data_dir, log.captured)
    print_plans("query plans on the embedded store", server, plans)
    unbacked = [label for label, (_, plan) in plans.items() if not index_backed(plan)]
    print("\nevery query index-backed" if not unbacked else f"\nNOT index-backed: {', '.join(unbacked)}")


def report(results: dict[int, dict[str, Latencies]]) -> None:
    small, large = min(results), max(results)
    print(
        f"\n  {'query':<48} "
        + " ".join(f"{f'p50 @ {s:,}':>16}" for s in sorted(results))
        + f" {'p90 @ ' + format(large, ','):>16} {'ratio':>6}"
    )
    worst = 0.0
    for name in results[small]:
        ratio = results[large][name].p50 / results[small][name].p50
        worst = max(worst, ratio)
        cells = " ".join(f"{results[s][name].p50 * 1e3:13.2f} ms" for s in sorted(results))
        print(f"  {name:<48} {cells} {results[large][name].pct(90) * 1e3:13.2f} ms {ratio:6.2f}")
    print(
        f"\nslowest ratio {worst:.2f} at {large:,} vs {small:,} messages "
        f"(target <= 1.5: {'met' if worst <= 1.5 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="stored messages per run, comma-separated")
    parser.add_argument("--per-thread", type=int, default=10, help="messages per thread on average")
    parser.add_argument("--queued", type=int, default=300, help="threads waiting in the queue")
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--mine", type=int, default=20, help="open conversations per agent")
    parser.add_argument("--history", type=int, default=600, help="messages of the contact whose history is read")
    parser.add_argument("--runs", type=int, default=30, help="times each query is measured per size")
    parser.add_argument("--batch", type=int, default=1000, help="documents per insert_many")
    parser.add_argument("--in-flight", type=int, default=2, help="insert_many calls running at once")
    parser.add_argument("--mode", choices=["process", "thread"], default="process", help="how the store runs")
    args = parser.parse_args()
    try:
        args.sizes = sorted({int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes wants numbers, got {args.sizes!r}")
    if len(args.sizes) < 2:
        parser.error("--sizes wants at least two sizes to compare")
    if args.history // 4 * 4 < 300:
        parser.error("--history wants at least 300 messages (the console shows the newest 300)")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
