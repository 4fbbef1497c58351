"""Queue claim benchmark: claim latency with many agents and a long queue, on a fresh embedded store.

    .venv/bin/python bench/claims.py [--queued 10000] [--resolved 20000] [--agents 50] [--claims 20]

Seeds ``--queued`` waiting threads (a few with a higher priority) and ``--resolved`` closed ones with
batched inserts, and ``--agents`` online agents. Then, in one run:

1. alone: one agent's ``Queue.take_next`` (the console's "next conversation": a slot of the agent
   is reserved, the most urgent thread is claimed with one ``find_one_and_update`` sorted by the
   queue's order, then the timeline, audit and live-console records are written), against a single
   indexed read (``Store.get_thread``: a thread by ``_id``);
2. under load: every agent calls ``take_next`` ``--claims`` times at once, while one more task
   reads threads by ``_id`` the same way, so the reads meet the same busy server as the claims.

The *claim* is the ``find_one_and_update`` that takes the head of the queue (one round trip,
timed by the driver's command monitoring inside the real ``take_next``); target: no worse than 2x
the indexed read, alone and under load. The reservation of the agent's slot that precedes it (one
more ``find_one_and_update``, on the agent) is printed beside it, as is the whole ``take_next``.
It checks that every claimed thread went to one agent once and that the claimed threads are
exactly the most urgent ones, and prints the query plans of the claim and of the queue view.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.plans import HEADER, CommandLog, Latencies, print_plans, timed_commands
from bot.router.queue import Queue
from conversations.agent_models import Agent, Presence, Role
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus
from tests.query_plans import labelled, server_explain, sqlite_plans

ACCOUNT = "default"


def seed_threads(queued: int, resolved: int) -> list[dict[str, object]]:
    rng = random.Random(8)
    now = utcnow()
    docs = []
    for i in range(queued + resolved):
        opened = now - timedelta(seconds=rng.randint(60, 8 * 3600))
        is_queued = i < queued
        roll = rng.random()
        docs.append(
            Thread(
                id=f"thr_q{i:07d}",
                account_id=ACCOUNT,
                contact_id=f"con_q{i:07d}",
                channel=rng.choice(["whatsapp", "webchat", "sms", "email", "telegram"]),
                status=ThreadStatus.QUEUED if is_queued else ThreadStatus.RESOLVED,
                opened_at=opened,
                last_message_at=opened,
                priority=2 if roll < 0.02 else 1 if roll < 0.1 else 0,
                queued_at=opened + timedelta(seconds=30),
                resolved_at=None if is_queued else opened + timedelta(minutes=9),
            ).to_doc()
        )
    rng.shuffle(docs)
    return docs


async def insert_batched(
    store: Repositories, collection: str, docs: list[dict[str, object]], batch: int = 1000
) -> None:
    for start in range(0, len(docs), batch):
        # seeded straight into the database, at scale: a tool's own shortcut past the repositories
        await store.client.database[collection].insert_many(docs[start : start + batch], ordered=False)


def agents(n: int, capacity: int) -> list[Agent]:
    now = utcnow()
    return [
        Agent(
            id=f"agt_{i:03d}",
            account_id=ACCOUNT,
            login=f"agent{i}",
            name=f"Agent {i}",
            role=Role.AGENT,
            created_at=now,
            capacity=capacity,
            free=capacity,
            presence=Presence.ONLINE,
        )
        for i in range(n)
    ]


class TakeFigures:
    """Latencies inside ``take_next``: the claim of the thread, the reservation of the agent's slot
    plus that claim, and the whole call (with its timeline, audit and console records)."""

    def __init__(self, when: str) -> None:
        self.claim = Latencies(f"claim (find_one_and_update on threads), {when}")
        self.reserve_and_claim = Latencies(f"reservation + claim (2 round trips), {when}")
        self.whole = Latencies(f"take_next, whole, {when}")

    def rows(self, read: Latencies) -> list[str]:
        return [figures.row(read) for figures in (self.claim, self.reserve_and_claim, self.whole)]


async def take(queue: Queue, agent: Agent, into: TakeFigures) -> str | None:
    """One ``take_next``, timed whole and by the driver's command monitoring inside it."""
    with timed_commands() as commands:
        start = time.perf_counter()
        thread = await queue.take_next(agent)
        into.whole.seconds.append(time.perf_counter() - start)
    into.claim.seconds.append(sum(s for name, coll, s in commands if (name, coll) == ("findAndModify", "threads")))
    into.reserve_and_claim.seconds.append(sum(s for name, _, s in commands if name == "findAndModify"))
    return thread.id if thread else None


async def read(store: Repositories, ids: list[str], rng: random.Random, into: Latencies) -> None:
    start = time.perf_counter()
    thread = await store.threads.get_thread(rng.choice(ids))
    into.seconds.append(time.perf_counter() - start)
    assert thread is not None


async def run(args: argparse.Namespace, data_dir: Path) -> None:
    embedded = EmbeddedMongo(data_dir, mode=args.mode)
    await embedded.start()
    log = CommandLog()
    store = Repositories.connect(embedded.uri, "bench", listeners=[log])
    try:
        docs = seed_threads(args.queued, args.resolved)
        started = time.perf_counter()
        await insert_batched(store, "threads", docs)
        await store.ensure_indexes()  # after the load: one build per index instead of an update per insert
        seconds = time.perf_counter() - started
        print(
            f"seeded {len(docs):,} threads ({args.queued:,} queued) and their indexes in {seconds:.1f} s "
            f"({len(docs) / seconds:,.0f} docs/s); {args.agents} agents online"
        )
        team = agents(args.agents, args.claims + args.alone)
        for agent in team:
            await store.agents.create_agent(agent)
        queue = Queue(store)
        ids = [str(d["_id"]) for d in docs]
        rng = random.Random(1)

        # 1. alone
        read_alone, alone = Latencies("indexed read (thread by _id), alone"), TakeFigures("alone")
        claimed: list[str | None] = []
        with labelled("claim (take_next)"):
            claimed.append(await take(queue, team[0], alone))
        for _ in range(args.alone - 1):  # interleaved, so both meet the same machine
            await read(store, ids, rng, read_alone)
            claimed.append(await take(queue, team[0], alone))
        with labelled("indexed read (get_thread)"):
            await read(store, ids, rng, Latencies(""))

        # 2. every agent at once, and a reader meeting the same load
        read_load = Latencies(f"indexed read (thread by _id), during the {args.agents} agents' claims")
        loaded = TakeFigures(f"{args.agents} agents at once")
        done = asyncio.Event()

        async def agent_loop(agent: Agent) -> None:
            for _ in range(args.claims):
                claimed.append(await take(queue, agent, loaded))

        async def reader() -> None:
            while not done.is_set():
                await read(store, ids, rng, read_load)

        reading = asyncio.create_task(reader())
        started = time.perf_counter()
        await asyncio.gather(*(agent_loop(agent) for agent in team[1:] + team[:1]))
        elapsed = time.perf_counter() - started
        done.set()
        await reading

        with labelled("queue view (queued_threads)"):
            await store.queue.queued_threads(ACCOUNT)
        await check(store, docs, claimed)
        trips = log.round_trips
        print(
            f"\n{len(claimed) - args.alone:,} claims by {args.agents} agents in {elapsed:.2f} s "
            f"({(len(claimed) - args.alone) / elapsed:,.0f} claims/s); {trips:,} round trips in all"
        )
        print(
            "\n".join(
                [
                    HEADER,
                    read_alone.row(read_alone),
                    *alone.rows(read_alone),
                    read_load.row(read_load),
                    *loaded.rows(read_load),
                ]
            )
        )
        verdict(read_alone, alone, read_load, loaded)
        server = {
            label: await server_explain(store.client.database, command) for label, command in log.captured.items()
        }
    finally:
        await store.close()
        await embedded.stop()
    print_plans("query plans on the embedded store", server, sqlite_plans(data_dir, log.captured))


def verdict(read_alone: Latencies, alone: TakeFigures, read_load: Latencies, loaded: TakeFigures) -> None:
    """The target (the claim no worse than 2x an indexed read at p50), alone and under load, for
    the claim and for the reservation + claim."""
    for name, one, many in (
        ("claim", alone.claim, loaded.claim),
        ("reservation + claim", alone.reserve_and_claim, loaded.reserve_and_claim),
    ):
        ratios = one.p50 / read_alone.p50, many.p50 / read_load.p50
        print(
            f"{name} / indexed read at p50: {ratios[0]:.2f}x alone, {ratios[1]:.2f}x under load "
            f"(target <= 2x: {'met' if max(ratios) <= 2.0 else 'MISSED'})"
        )


async def check(store: Repositories, docs: list[dict[str, object]], claimed: list[str | None]) -> None:
    """Each thread claimed once, by one agent, and the claimed ones are the most urgent."""
    won = [c for c in claimed if c is not None]
    assert len(won) == len(claimed), "the queue ran dry"
    assert len(set(won)) == len(won), "a thread was claimed twice"
    owners = Counter(
        [t.assignee for t in await store.threads.list_threads(ACCOUNT, limit=len(docs), status="assigned")]
    )
    assert sum(owners.values()) == len(won)
    queued = sorted(
        (d for d in docs if d["status"] == "queued"), key=lambda d: (-int(d["priority"]), int(d["queued_at"]))
    )
    assert set(won) == {str(d["_id"]) for d in queued[: len(won)]}, "claims did not follow the queue's order"
    assert [a for a in await store.agents.list_agents(ACCOUNT) if a.free < 0] == []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queued", type=int, default=10_000, help="threads waiting in the queue")
    parser.add_argument("--resolved", type=int, default=20_000, help="closed threads stored beside them")
    parser.add_argument("--agents", type=int, default=50, help="agents claiming at once")
    parser.add_argument("--claims", type=int, default=20, help="claims per agent under load")
    parser.add_argument("--alone", type=int, default=300, help="reads and claims measured alone")
    parser.add_argument("--mode", choices=["process", "thread"], default="process", help="how the store runs")
    args = parser.parse_args()
    if args.agents * args.claims + args.alone > args.queued:
        parser.error("--queued must exceed --agents x --claims + --alone, or the queue runs dry")
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
