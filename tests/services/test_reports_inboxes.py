"""Reports of one inbox: the seeded week (every conversation in a first inbox) beside a second
Telegram bot with a few conversations of its own; each inbox's figures are worked out by hand.
(The application's store: an inbox's secrets are sealed with its key.)"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.reports import Report, UnknownInbox, build_report, report_csv
from conversations.inboxes import Inbox
from conversations.repositories import Repositories
from conversations.satisfaction import SatisfactionAsk
from conversations.thread_models import Thread, ThreadStatus
from tests.report_data import EXPECTED, NOW, SINCE, SLA_MINUTES, UNTIL, at, seed

S = timedelta(seconds=1)


async def second_bot(store: Repositories, account: str = "default") -> Inbox:
    inbox = await store.inboxes.create_inbox(
        account, "telegram", f"{account} sales bot", {"token": "9:x", "webhook_secret": "s"}, NOW, None
    )
    assert inbox is not None
    return inbox


def _bot_thread(n: str, inbox: Inbox, status: ThreadStatus, **fields: Any) -> Thread:
    opened = at(6, 9)
    return Thread(
        id=f"thr_bot{n}",
        account_id=inbox.account_id,
        contact_id=f"con_bot{n}",
        channel="telegram",
        inbox_id=inbox.id,
        status=status,
        opened_at=opened,
        last_message_at=opened,
        **fields,
    )


async def seed_two_inboxes(store: Repositories) -> tuple[Inbox, dict[str, str]]:
    """The seeded week, and three conversations of a second bot on 2025-03-06: one the bot kept,
    one ann answered and resolved, one still waiting for a person."""
    agents = await seed(store)
    inbox = await second_bot(store)
    queued = at(6, 9) + 10 * S
    await store.threads.import_threads(
        [
            _bot_thread("0", inbox, ThreadStatus.BOT),
            _bot_thread(
                "1",
                inbox,
                ThreadStatus.RESOLVED,
                queued_at=queued,
                first_queued_at=queued,
                assigned_at=queued + 40 * S,
                first_assigned_at=queued + 40 * S,
                first_response_at=queued + 100 * S,
                resolved_at=at(6, 9) + 1000 * S,
                last_assignee=agents["ann"],
                handoff_reason="no_nlu",
            ),
            _bot_thread(
                "2", inbox, ThreadStatus.QUEUED, queued_at=queued, first_queued_at=queued, handoff_reason="no_nlu"
            ),
        ]
    )
    # satisfaction: one question in the second bot, one in the first Telegram inbox, and one stored
    # before questions kept their inbox (about the seeded WhatsApp conversation 0)
    for n, (thread, inbox_key, rating) in enumerate(
        (("thr_bot1", inbox.id, 5), ("thr_seedc2", "first:telegram", 4), ("thr_seed0", None, 2))
    ):
        ask = SatisfactionAsk(
            f"sat_{n}", "default", thread, f"con_{n}", "telegram", at(6, 12), rating=rating, inbox=inbox_key
        )
        await store.satisfaction.record_ask(ask)
    return inbox, agents


async def report_of(store: Repositories, inbox: str | None, account: str = "default") -> Report:
    return await build_report(store, account, SINCE, UNTIL, first_response_minutes=SLA_MINUTES, now=NOW, inbox=inbox)


async def test_each_inbox_counts_only_its_own_conversations(client: TestClient) -> None:
    store = client.server.app[STORE]
    inbox, _ = await seed_two_inboxes(store)
    everything, bot, first_tg, first_wa = [
        await report_of(store, key) for key in (None, inbox.id, "first:telegram", "first:whatsapp")
    ]
    assert everything.total == EXPECTED["total"] + 3
    assert sorted((row.key, row.count) for row in everything.by_inbox) == sorted(
        [
            ("first:whatsapp", 6),
            ("first:sms", 3),
            (inbox.id, 3),
            ("first:email", 2),
            ("first:telegram", 2),
            ("first:webchat", 2),
        ]
    )
    # the second bot: worked out from its three conversations
    assert (bot.total, bot.contained, bot.escalated, bot.resolved) == (3, 1, 2, 1)
    assert bot.by_channel == [("telegram", 3)] and bot.reasons == [("no_nlu", 2)]
    assert [n for _, n in bot.by_day] == [0, 0, 0, 0, 0, 3, 0]
    assert [(t.name, t.count, t.median) for t in bot.timings] == [
        ("queue_wait", 1, 40.0),
        ("first_response", 1, 100.0),
        ("resolution", 1, 1000.0),
    ]
    assert (bot.sla_breached, bot.sla_unanswered, bot.next_breaches) == (1, 1, 0)
    # ann's one conversation there: handling = resolved (1000 s) - assigned (10 + 40 s); no shifts
    assert [(a.login, a.conversations, a.resolved, a.handling_s, a.shifts) for a in bot.agents] == [
        ("ann", 1, 1, 950.0, 0)
    ]
    assert (bot.satisfaction.asked, bot.satisfaction.overall.rated, bot.satisfaction.overall.csat) == (1, 1, 1.0)
    assert [(row.key, row.count) for row in bot.by_inbox] == [(inbox.id, 3)]
    # the first Telegram inbox: the seeded week's two contained Telegram conversations, one resolved
    assert (first_tg.total, first_tg.contained, first_tg.resolved, first_tg.escalated) == (2, 2, 1, 0)
    assert first_tg.agents == [] and first_tg.timing["resolution"].median == 240.0
    assert (first_tg.satisfaction.asked, first_tg.satisfaction.overall.average) == (1, 4.0)
    # the first WhatsApp inbox: the seeded escalations 0..5 (waits 30..180 s, all resolved); the
    # question stored without its inbox is placed by its conversation's
    assert (first_wa.total, first_wa.escalated, first_wa.resolved, first_wa.sla_breached) == (6, 6, 6, 0)
    assert first_wa.timing["queue_wait"].median == 105.0 and first_wa.next_breaches == 3
    # handling: ann 560 + 1700 + 2840, ben 1130 + 2270 + 3410 (see tests/report_data.py)
    assert {a.login: (a.conversations, a.resolved, a.handling_s) for a in first_wa.agents} == {
        "ann": (3, 3, 5100.0),
        "ben": (3, 3, 6810.0),
    }
    assert (first_wa.satisfaction.asked, first_wa.satisfaction.overall.average) == (1, 2.0)
    # every inbox's reports add up to the account's
    per_inbox = [await report_of(store, row.key) for row in everything.by_inbox]
    assert sum(r.total for r in per_inbox) == everything.total
    assert sum(r.resolved for r in per_inbox) == everything.resolved
    assert sum(r.escalated for r in per_inbox) == everything.escalated
    assert everything.satisfaction.asked == 3


async def test_an_inbox_of_another_account_or_none_is_refused(client: TestClient) -> None:
    store = client.server.app[STORE]
    await seed_two_inboxes(store)
    theirs = await second_bot(store, "other")
    for key in (theirs.id, "first:fax", "inb_" + "0" * 24, "telegram", ""):
        with pytest.raises(UnknownInbox):
            await report_of(store, key)
    # the other account reads its own inbox, and sees nothing of default's conversations
    assert (await report_of(store, theirs.id, "other")).total == 0
    assert (await report_of(store, "first:webchat", "other")).total == 1


async def test_the_csv_of_one_inbox_names_it_and_counts_its_figures(client: TestClient) -> None:
    store = client.server.app[STORE]
    inbox, _ = await seed_two_inboxes(store)
    rows = list(csv.DictReader(io.StringIO(report_csv(await report_of(store, inbox.id)))))
    value = {(r["section"], r["item"], r["measure"]): r["value"] for r in rows}
    assert value[("period", "", "inbox")] == inbox.id
    assert value[("conversations", "", "total")] == "3"
    assert value[("conversations_by_inbox", "telegram: default sales bot", "count")] == "3"
    assert value[("agents", "ann", "handling_s")] == "950"
    assert value[("satisfaction", "", "asked")] == "1"
    everything = report_csv(await report_of(store, None), lambda channel: f"<{channel}>")
    assert "conversations_by_inbox,whatsapp: <whatsapp>,count,6" in everything.splitlines()
    assert ("period", "", "inbox") not in {
        (r["section"], r["item"], r["measure"]) for r in csv.DictReader(io.StringIO(everything))
    }
