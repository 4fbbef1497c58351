"""Reports benchmark: how long one report takes over N conversations on a fresh embedded store.

    .venv/bin/python bench/reports.py [-n 20000] [--days 30] [--runs 3] [--inbox first:whatsapp]

Seeds N threads over the period (about 60 % escalated, with queue, response and resolution times
and two agents' shifts), then builds the report ``--runs`` times and prints the time of each run,
the number of store round trips one report makes, and the report's medians as a sanity check.
With ``--inbox``, the report is of that one inbox (the conversations spread over five channels'
first inboxes, so about a fifth of them).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pymongo import monitoring

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.services.reports import build_report
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus


class Counter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.commands += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def threads(n: int, days: int, end: datetime) -> list[Thread]:
    rng = random.Random(1)
    docs = []
    for i in range(n):
        opened = end - timedelta(seconds=rng.randint(1, days * 86400 - 1))
        fields: dict[str, object] = {"resolved_at": opened + timedelta(minutes=rng.randint(1, 9))}
        if rng.random() < 0.6:
            queued = opened + timedelta(seconds=rng.randint(20, 300))
            assigned = queued + timedelta(seconds=rng.randint(5, 1800))
            first = assigned + timedelta(seconds=rng.randint(5, 900))
            fields = {
                "queued_at": queued,
                "first_queued_at": queued,
                "assigned_at": assigned,
                "first_assigned_at": assigned,
                "first_response_at": first,
                "handoff_reason": rng.choice(["no_nlu", "low_confidence"]),
                "last_assignee": rng.choice(["agt_a", "agt_b"]),
                "resolved_at": first + timedelta(minutes=rng.randint(1, 300)),
            }
        docs.append(
            Thread(
                id=f"thr_b{i}",
                account_id="default",
                contact_id=f"con_b{i}",
                channel=rng.choice(["whatsapp", "webchat", "sms", "email", "telegram"]),
                status=ThreadStatus.RESOLVED,
                opened_at=opened,
                last_message_at=opened,
                **fields,
            )
        )  # type: ignore[arg-type]
    return docs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20_000, help="conversations to seed")
    parser.add_argument("--days", type=int, default=30, help="length of the period")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--inbox", default=None, help="report one inbox (first:<channel>)")
    args = parser.parse_args()
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        embedded = EmbeddedMongo(Path(tmp))
        await embedded.start()
        counter = Counter()
        store = Repositories.connect(embedded.uri, "bench", listeners=[counter])
        try:
            await store.ensure_indexes()
            docs = threads(args.n, args.days, end)
            for start in range(0, len(docs), 1000):
                await store.threads.import_threads(docs[start : start + 1000])
            since, until = (end - timedelta(days=args.days)).date(), (end - timedelta(days=1)).date()
            for run in range(args.runs):
                counter.commands = 0
                started = time.perf_counter()
                report = await build_report(
                    store, "default", since, until, first_response_minutes=15, now=end, inbox=args.inbox
                )
                took = time.perf_counter() - started
                print(
                    f"run {run + 1}: {took * 1000:.0f} ms over {report.total} conversations, "
                    f"{counter.commands} store round trips"
                )
            medians = ", ".join(f"{t.name} {t.median:.0f} s" for t in report.timings if t.median is not None)
            print(f"medians: {medians}; containment {report.containment:.1%}")
        finally:
            await store.close()
            await embedded.stop()


if __name__ == "__main__":
    asyncio.run(main())
