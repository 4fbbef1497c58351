"""Reports against a seeded week with known answers, the percentile method against Python's
statistics module, and the fields real queue actions leave for the reports."""

from __future__ import annotations

import csv
import io
import random
import statistics
from datetime import UTC, datetime

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import QUEUE, STORE
from bot.services.reports import Report, build_report, report_csv
from bot.web.keys import SERVICES
from conversations.models import from_epoch_ms
from conversations.reports import Quantile
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus
from tests.report_data import EXPECTED, NOW, SINCE, SLA_MINUTES, UNTIL, seed
from tests.router.test_queue import customer_writes, make_agent


async def seeded_report(store: Repositories) -> Report:
    await seed(store)
    return await build_report(store, "default", SINCE, UNTIL, first_response_minutes=SLA_MINUTES, now=NOW)


async def test_the_seeded_week_gives_the_worked_out_figures(store: Repositories) -> None:
    report = await seeded_report(store)
    for key in (
        "total",
        "contained",
        "contained_resolved",
        "escalated",
        "resolved",
        "by_channel",
        "reasons",
        "sla_breached",
        "sla_unanswered",
        "next_breaches",
    ):
        assert getattr(report, key) == EXPECTED[key], key
    assert [n for _, n in report.by_day] == EXPECTED["by_day"]
    assert [d.isoformat() for d, _ in report.by_day][::6] == ["2025-03-01", "2025-03-07"]
    assert report.containment == pytest.approx(4 / 15)
    for name in ("queue_wait", "first_response", "resolution"):
        timing, expected = report.timing[name], EXPECTED[name]
        assert (timing.count, timing.median, timing.p90) == (expected["count"], expected["median"], expected["p90"]), (
            name
        )
        assert timing.mean == pytest.approx(expected["mean"]), name
    rows = {a.login: (a.conversations, a.resolved, a.handling_s, a.shifts, a.shift_s) for a in report.agents}
    assert rows == EXPECTED["agents"]


async def test_an_empty_period_has_no_figures_rather_than_wrong_ones(store: Repositories) -> None:
    await seed(store)
    report = await build_report(store, "nobody", SINCE, UNTIL, first_response_minutes=SLA_MINUTES, now=NOW)
    assert report.total == 0 and report.containment is None and report.agents == []
    assert all(t.count == 0 and t.median is None and t.p90 is None and t.mean is None for t in report.timings)
    assert [n for _, n in report.by_day] == [0] * 7


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 9, 10, 11, 20, 37])
def test_count_then_skip_matches_the_inclusive_quantiles(n: int) -> None:
    values = sorted(random.Random(n).randint(0, 10_000) for _ in range(n))
    for q in (0.5, 0.9):
        plan = Quantile.plan(n, q)
        ordered = values if plan.ascending else values[::-1]
        found = ordered[plan.skip : plan.skip + plan.take]
        expected = (
            statistics.median(values)
            if q == 0.5
            else (values[0] if n == 1 else statistics.quantiles(values, n=10, method="inclusive")[8])
        )
        assert plan.value(found) == pytest.approx(expected), (n, q)
        assert plan.take <= 2 and (plan.ascending or plan.skip + plan.take <= n // 2 + 2)


async def test_percentiles_on_the_store_match_python_on_random_durations(store: Repositories) -> None:
    rng = random.Random(7)
    waits = [rng.randint(1, 5000) for _ in range(101)]
    start = 1_740_000_000_000
    threads = [
        Thread(
            id=f"thr_r{i}",
            account_id="default",
            contact_id="con_r",
            channel="sms",
            status=ThreadStatus.ASSIGNED,
            opened_at=from_epoch_ms(start + i),
            last_message_at=from_epoch_ms(start),
            queued_at=from_epoch_ms(start + i),
            assigned_at=from_epoch_ms(start + i + w * 1000),
        )
        for i, w in enumerate(waits)
    ]
    await store.threads.import_threads(threads)
    report = await build_report(
        store,
        "default",
        SINCE.replace(month=2, day=1),
        UNTIL.replace(month=2, day=28),
        first_response_minutes=15,
        now=NOW,
    )
    wait = report.timing["queue_wait"]
    assert wait.count == 101 and wait.median == statistics.median(waits)
    assert wait.p90 == pytest.approx(statistics.quantiles(waits, n=10, method="inclusive")[8])


async def test_report_csv_carries_every_figure(store: Repositories) -> None:
    report = await seeded_report(store)
    rows = list(csv.DictReader(io.StringIO(report_csv(report))))
    value = {(r["section"], r["item"], r["measure"]): r["value"] for r in rows}
    assert value[("conversations", "", "total")] == "15"
    assert value[("containment", "", "rate")] == "0.267"
    assert value[("conversations_by_channel", "whatsapp", "count")] == "6"
    assert value[("conversations_by_day", "2025-03-02", "count")] == "0"
    assert value[("escalation_reasons", "missed_call", "count")] == "3"
    assert value[("timing", "first_response", "median_s")] == "450"
    assert value[("timing", "first_response", "p90_s")] == "1980"
    assert value[("timing", "queue_wait", "p90_s")] == "660"
    assert value[("sla", "first_response", "breached")] == "4"
    assert value[("agents", "ann", "handling_s")] == "12050"
    assert value[("agents", "ben", "shift_hours")] == "6"


async def test_queue_actions_leave_what_the_reports_read(client: TestClient) -> None:
    """A real conversation: bot -> queue -> agent -> transfer -> resolve; requeues and transfers
    keep the first queue and assignment times and the bot's hand-off reason."""
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    ann, ben = await make_agent(store, "ann"), await make_agent(store, "ben", teams=["billing"])
    thread_id = await customer_writes(app, "visitor-1", "I need a human")
    first = await store.threads.get_thread(thread_id)
    assert first is not None and first.handoff_reason == "no_nlu" and first.first_queued_at is not None
    await queue.take(ann, thread_id)
    taken = await store.threads.get_thread(thread_id)
    assert taken is not None and taken.first_assigned_at is not None
    await queue.transfer(thread_id, ann, to_team="billing")  # back to the queue, reason "transfer"
    await queue.take(ben, thread_id)
    await app[SERVICES].replies.answer(thread_id, ben, "Hello!", "nonce-0001")
    await queue.resolve(thread_id, ben)
    done = await store.threads.get_thread(thread_id)
    assert done is not None and done.escalation_reason == "transfer" and done.handoff_reason == "no_nlu"
    assert done.first_queued_at == first.first_queued_at and done.first_assigned_at == taken.first_assigned_at
    assert done.queued_at is not None and done.queued_at >= done.first_queued_at
    today = datetime.now(UTC).date()
    report = await build_report(store, "default", today, today, first_response_minutes=15, now=done.resolved_at)
    assert report.total == 1 and report.escalated == 1 and report.reasons == [("no_nlu", 1)]
    assert report.timing["first_response"].count == 1 and report.timing["resolution"].count == 1
    assert [(a.login, a.conversations, a.resolved) for a in report.agents] == [("ben", 1, 1)]


async def test_a_late_next_response_is_counted(client: TestClient) -> None:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    agent = await make_agent(store, "cat")
    thread_id = await customer_writes(app, "visitor-2", "hello?")
    await queue.take(agent, thread_id)
    await app[SERVICES].replies.answer(thread_id, agent, "Hi, one moment", "nonce-0002")
    await customer_writes(app, "visitor-2", "still there?", n=1)
    long_ago = NOW.replace(year=2020)
    await store.threads.set_thread_fields(thread_id, awaiting_since=long_ago)  # the customer waited for ages
    await app[SERVICES].replies.answer(thread_id, agent, "Sorry!", "nonce-0003")
    await customer_writes(app, "visitor-2", "thanks", n=2)
    await app[SERVICES].replies.answer(thread_id, agent, "You're welcome", "nonce-0004")  # on time
    thread = await store.threads.get_thread(thread_id)
    assert thread is not None and thread.next_response_breaches == 1
