"""The admin reports: what happened to one account's conversations in a period, and as CSV.

A report covers the conversations *opened* in the period (UTC days ``since`` to ``until``,
inclusive) and the shifts started in it. Definitions (docs/console.md, "Reports", repeats them):

* contained: never reached the human queue (so never assigned) — the bot's share;
* escalation reason: why the bot handed the conversation to humans (``handoff_reason``);
* queue wait: first queued -> first assigned; first response: first queued (or opened) -> the
  first agent answer; resolution: opened -> resolved (resolved conversations only);
* first-response SLA breached: answered later than ``queue.first_response_minutes``, or still
  unanswered past it; next-response breaches: agent answers later than
  ``queue.next_response_minutes`` after the customer wrote;
* per agent: the conversations they hold or last held, how many they resolved, and handling time
  (their assignment -> resolution) of those; shift hours from the timesheet.

A report of one inbox (``inbox``: a key of ``conversations.membership``) counts that inbox's
conversations only, in every figure, and the satisfaction questions asked about them; shifts
belong to no inbox, so it has none.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from bot.services.agents import account_inboxes
from bot.services.bot_report import FormRow, IntentRow, bot_rows
from bot.services.csvcells import inert_cell
from bot.services.satisfaction_report import SatisfactionReport, satisfaction_csv_rows, satisfaction_report
from conversations.agent_models import Agent
from conversations.membership import FIRST, inbox_key, inbox_match
from conversations.models import epoch_ms, from_epoch_ms
from conversations.reports import DURATIONS, QUANTILES, Cohort, day_bucket
from conversations.repositories import Repositories
from conversations.satisfaction import SatisfactionAsk


class UnknownInbox(ValueError):
    """The report's inbox is not one of the account's (another account's is not either)."""


@dataclass(frozen=True)
class InboxCount:
    """Conversations of one inbox; a first inbox (``first:<channel>``) has no name."""

    key: str
    name: str
    channel: str
    count: int


@dataclass(frozen=True)
class Timing:
    """One duration over the period, in seconds."""

    name: str
    count: int
    mean: float | None
    median: float | None
    p90: float | None


@dataclass(frozen=True)
class AgentRow:
    agent_id: str
    login: str
    name: str
    conversations: int = 0
    resolved: int = 0
    handling_s: float = 0.0  # summed over resolved conversations
    shifts: int = 0
    shift_s: float = 0.0

    @property
    def handling_mean_s(self) -> float | None:
        return self.handling_s / self.resolved if self.resolved else None


@dataclass(frozen=True)
class Report:
    account_id: str
    since: date
    until: date
    generated_at: datetime
    total: int
    resolved: int
    contained: int
    contained_resolved: int
    escalated: int
    by_channel: list[tuple[str, int]]
    by_inbox: list[InboxCount]  # when the account has extra inboxes
    by_day: list[tuple[date, int]]
    reasons: list[tuple[str, int]]
    timings: list[Timing]
    sla_minutes: float
    sla_breached: int
    sla_unanswered: int
    next_breaches: int
    agents: list[AgentRow] = field(default_factory=list)
    intents: list[IntentRow] = field(default_factory=list)
    forms: list[FormRow] = field(default_factory=list)
    satisfaction: SatisfactionReport = field(default_factory=SatisfactionReport)  # questions asked in the period
    inbox: str | None = None  # the one inbox reported on; None: every inbox

    @property
    def containment(self) -> float | None:
        """Share of the period's conversations the bot kept (0..1)."""
        return self.contained / self.total if self.total else None

    @property
    def timing(self) -> dict[str, Timing]:
        return {t.name: t for t in self.timings}


def period_bounds(since: date, until: date) -> tuple[datetime, datetime]:
    """The period as ``[start, end)`` in UTC: from the start of ``since`` to the end of ``until``."""
    start = datetime.combine(since, time.min, UTC)
    return start, datetime.combine(until + timedelta(days=1), time.min, UTC)


async def build_report(
    store: Repositories,
    account_id: str,
    since: date,
    until: date,
    *,
    first_response_minutes: float,
    now: datetime,
    inbox: str | None = None,
) -> Report:
    """The account's report of the period; of one inbox's conversations only with ``inbox``
    (``UnknownInbox`` when it is not one of the account's)."""
    inboxes = await account_inboxes(store, account_id)
    if inbox is not None and inbox not in {key for key, _, _ in inboxes}:
        raise UnknownInbox(inbox)
    start, end = period_bounds(since, until)
    c = Cohort(account_id, epoch_ms(start), epoch_ms(end), inbox_match(inbox) if inbox else {})
    now_ms, sla_ms = epoch_ms(now), int(first_response_minutes * 60_000)
    summary = await store.reports.report_summary(c, now_ms, sla_ms)
    counts = {name: summary.get(f"{name}_n", 0) for name in DURATIONS}
    reasons_of = {"$ifNull": ["$handoff_reason", {"$ifNull": ["$escalation_reason", "unknown"]}]}
    quantiles, days, reasons, channels, agents, (intents, forms) = await asyncio.gather(
        store.reports.report_quantiles(c, counts),
        store.reports.report_counts_by(c, day_bucket()),
        store.reports.report_counts_by(c, reasons_of, only={"queued_at": {"$gt": 0}}),
        store.reports.report_counts_by(c, "$channel"),
        _agent_rows(store, c, now_ms, shifts=inbox is None),
        bot_rows(store, c),
    )
    asks = await _asks_of(store, account_id, start, end, inbox)
    names = {agent.id: agent.login for agent in await store.agents.list_agents(account_id)}
    timings = [
        Timing(
            name,
            counts[name],
            summary[f"{name}_sum"] / counts[name] / 1000 if counts[name] else None,
            *(_seconds(quantiles[name][q]) for q in QUANTILES),
        )
        for name in DURATIONS
    ]
    total, escalated = summary.get("total", 0), summary.get("escalated", 0)
    return Report(
        account_id=account_id,
        since=since,
        until=until,
        generated_at=now,
        total=total,
        resolved=summary.get("resolved", 0),
        contained=total - escalated,
        contained_resolved=summary.get("contained_resolved", 0),
        escalated=escalated,
        by_channel=_ranked(channels),
        by_inbox=await _inbox_rows(store, c, inboxes),
        by_day=_every_day(since, until, {from_epoch_ms(int(k)).date(): n for k, n in days.items()}),
        reasons=_ranked(reasons),
        timings=timings,
        sla_minutes=first_response_minutes,
        sla_breached=summary.get("sla_breached", 0) if sla_ms else 0,
        sla_unanswered=summary.get("sla_unanswered", 0) if sla_ms else 0,
        next_breaches=summary.get("next_breaches", 0),
        agents=agents,
        intents=intents,
        forms=forms,
        satisfaction=satisfaction_report(asks, names),
        inbox=inbox,
    )


async def _asks_of(
    store: Repositories, account_id: str, start: datetime, end: datetime, inbox: str | None
) -> list[SatisfactionAsk]:
    """The satisfaction questions asked in the period, of one inbox's conversations with ``inbox``
    (a question stored before asks kept their inbox is placed by its conversation's)."""
    asks = await store.satisfaction.asked_between(account_id, start, end)
    if inbox is None:
        return asks
    unplaced = [ask.thread_id for ask in asks if ask.inbox is None]
    placed = await store.reports.report_thread_inboxes(account_id, unplaced)
    return [ask for ask in asks if (ask.inbox or placed.get(ask.thread_id)) == inbox]


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _every_day(since: date, until: date, counts: dict[date, int]) -> list[tuple[date, int]]:
    days = (until - since).days + 1
    return [(since + timedelta(days=n), counts.get(since + timedelta(days=n), 0)) for n in range(days)]


async def _inbox_rows(store: Repositories, c: Cohort, inboxes: list[tuple[str, str, str]]) -> list[InboxCount]:
    """Conversations per inbox; none when the account has no extra inbox (the channels say it all)."""
    if all(key.startswith(FIRST) for key, _, _ in inboxes):
        return []
    known = {key: (channel, name) for key, channel, name in inboxes}
    # a first inbox's threads have no inbox_id: grouped by their channel
    counts = await store.reports.report_counts_by(c, {"$ifNull": ["$inbox_id", "$channel"]})
    rows = []
    for group, n in counts.items():
        key = group if group in known else inbox_key(None, group)
        channel, name = known.get(key, (group, ""))
        rows.append(InboxCount(key, name, channel, n))
    return sorted(rows, key=lambda r: (-r.count, r.channel, r.name))


async def _agent_rows(store: Repositories, c: Cohort, now_ms: int, *, shifts: bool) -> list[AgentRow]:
    """Per agent: the cohort's conversations they held, and with ``shifts`` their shifts started in
    the period (a report of one inbox has none: shifts belong to no inbox)."""
    work = await store.reports.report_agents(c)
    shifts_of = await store.reports.report_shifts(c.account_id, c.start_ms, c.end_ms, now_ms) if shifts else {}
    agents: dict[str, Agent] = {a.id: a for a in await store.agents.list_agents(c.account_id)}
    rows = []
    for agent_id in sorted(work.keys() | shifts_of.keys()):
        agent = agents.get(agent_id)
        done, shift = work.get(agent_id, {}), shifts_of.get(agent_id, {})
        rows.append(
            AgentRow(
                agent_id=agent_id,
                login=agent.login if agent else agent_id,
                name=agent.name if agent else agent_id,
                conversations=done.get("conversations", 0),
                resolved=done.get("resolved", 0),
                handling_s=done.get("handling_ms", 0) / 1000,
                shifts=shift.get("shifts", 0),
                shift_s=shift.get("ms", 0) / 1000,
            )
        )
    return sorted(rows, key=lambda row: (-row.conversations, row.login))


def first_inbox_name(channel: str) -> str:
    """A first inbox's name where no words are given (the console and the API name it in words)."""
    return f"{channel} (first inbox)"


def report_csv(report: Report, first_inbox: Callable[[str], str] = first_inbox_name) -> str:
    """The report as one tidy CSV: ``section, item, measure, value`` (durations in seconds); a first
    inbox named by ``first_inbox(channel)``."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "item", "measure", "value"])
    writer.writerows([inert_cell(value) for value in row] for row in report_rows(report, first_inbox))
    return out.getvalue()


def report_rows(
    report: Report, first_inbox: Callable[[str], str] = first_inbox_name
) -> list[tuple[str, str, str, int | str]]:
    """The report's figures as ``(section, item, measure, value)`` rows: a count as an integer,
    other numbers as text (integers without a decimal point, others to 3 places; "" for none)."""
    rows: list[tuple[str, str, str, int | str]] = [
        ("period", "", "from", report.since.isoformat()),
        ("period", "", "until", report.until.isoformat()),
        ("period", "", "account", report.account_id),
        *([("period", "", "inbox", report.inbox)] if report.inbox else []),
        ("conversations", "", "total", report.total),
        ("conversations", "", "resolved", report.resolved),
        ("containment", "", "contained", report.contained),
        ("containment", "", "contained_resolved", report.contained_resolved),
        ("containment", "", "escalated", report.escalated),
        ("containment", "", "rate", _number(report.containment)),
        ("sla", "first_response", "target_minutes", _number(report.sla_minutes)),
        ("sla", "first_response", "breached", report.sla_breached),
        ("sla", "first_response", "unanswered", report.sla_unanswered),
        ("sla", "next_response", "breached", report.next_breaches),
    ]
    rows += [("conversations_by_channel", channel, "count", n) for channel, n in report.by_channel]
    rows += [
        ("conversations_by_inbox", f"{row.channel}: {row.name or first_inbox(row.channel)}", "count", row.count)
        for row in report.by_inbox
    ]
    rows += [("conversations_by_day", day.isoformat(), "count", n) for day, n in report.by_day]
    rows += [("escalation_reasons", reason, "count", n) for reason, n in report.reasons]
    for t in report.timings:
        rows += [
            ("timing", t.name, "count", t.count),
            ("timing", t.name, "mean_s", _number(t.mean)),
            ("timing", t.name, "median_s", _number(t.median)),
            ("timing", t.name, "p90_s", _number(t.p90)),
        ]
    for a in report.agents:
        rows += [
            ("agents", a.login, "conversations", a.conversations),
            ("agents", a.login, "resolved", a.resolved),
            ("agents", a.login, "handling_s", _number(a.handling_s)),
            ("agents", a.login, "handling_mean_s", _number(a.handling_mean_s)),
            ("agents", a.login, "shifts", a.shifts),
            ("agents", a.login, "shift_hours", _number(a.shift_s / 3600)),
        ]
    for i in report.intents:
        rows += [("bot_intents", i.intent, "conversations", i.conversations)]
        rows += [("bot_intents", i.intent, "contained", i.contained)]
    for f in report.forms:
        rows += [("bot_forms", f.form, measure, getattr(f, measure)) for measure in _FORM_MEASURES]
    rows += satisfaction_csv_rows(report.satisfaction)
    return rows


_FORM_MEASURES = ("started", "completed", "abandoned", "handed_off")


def _number(value: float | None) -> str:
    """A number for the CSV: integers without a decimal point, others to 3 places."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
