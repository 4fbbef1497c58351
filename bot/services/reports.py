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
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from bot.services.bot_report import FormRow, IntentRow, bot_rows
from bot.services.csvcells import inert_cell
from bot.services.satisfaction_report import SatisfactionReport, satisfaction_csv_rows, satisfaction_report
from conversations.agent_models import Agent
from conversations.models import epoch_ms, from_epoch_ms
from conversations.reports import DURATIONS, QUANTILES, day_bucket
from conversations.repositories import Repositories


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
    # per inbox, when the account has extra ones: (inbox name, its channel, conversations)
    by_inbox: list[tuple[str, str, int]]
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
    store: Repositories, account_id: str, since: date, until: date, *, first_response_minutes: float, now: datetime
) -> Report:
    start, end = period_bounds(since, until)
    s, e, now_ms = epoch_ms(start), epoch_ms(end), epoch_ms(now)
    sla_ms = int(first_response_minutes * 60_000)
    summary = await store.reports.report_summary(account_id, s, e, now_ms, sla_ms)
    counts = {name: summary.get(f"{name}_n", 0) for name in DURATIONS}
    quantiles, days, reasons, channels, agents, (intents, forms) = await asyncio.gather(
        store.reports.report_quantiles(account_id, s, e, counts),
        store.reports.report_counts_by(account_id, s, e, day_bucket()),
        store.reports.report_counts_by(
            account_id,
            s,
            e,
            {"$ifNull": ["$handoff_reason", {"$ifNull": ["$escalation_reason", "unknown"]}]},
            only={"queued_at": {"$gt": 0}},
        ),
        store.reports.report_counts_by(account_id, s, e, "$channel"),
        _agent_rows(store, account_id, s, e, now_ms),
        bot_rows(store, account_id, s, e),
    )
    inboxes = await _inbox_rows(store, account_id, s, e)
    asks = await store.satisfaction.asked_between(account_id, start, end)
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
        by_inbox=inboxes,
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
    )


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _every_day(since: date, until: date, counts: dict[date, int]) -> list[tuple[date, int]]:
    days = (until - since).days + 1
    return [(since + timedelta(days=n), counts.get(since + timedelta(days=n), 0)) for n in range(days)]


async def _inbox_rows(store: Repositories, account_id: str, s: int, e: int) -> list[tuple[str, str, int]]:
    """Conversations per inbox; none when the account has no extra inbox (the channels say it all).
    The account's first inbox of a channel is named by the channel."""
    extra = {inbox.id: inbox for inbox in await store.inboxes.list_inboxes(account_id)}
    if not extra:
        return []
    counts = await store.reports.report_counts_by(account_id, s, e, {"$ifNull": ["$inbox_id", "$channel"]})
    rows = [(extra[k].name, extra[k].channel) if k in extra else ("", k) for k in counts]
    return sorted(
        ((name, channel, counts[k]) for k, (name, channel) in zip(counts, rows)), key=lambda r: (-r[2], r[1], r[0])
    )


async def _agent_rows(store: Repositories, account_id: str, s: int, e: int, now_ms: int) -> list[AgentRow]:
    work = await store.reports.report_agents(account_id, s, e)
    shifts = await store.reports.report_shifts(account_id, s, e, now_ms)
    agents: dict[str, Agent] = {a.id: a for a in await store.agents.list_agents(account_id)}
    rows = []
    for agent_id in sorted(work.keys() | shifts.keys()):
        agent = agents.get(agent_id)
        done, shift = work.get(agent_id, {}), shifts.get(agent_id, {})
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


def report_csv(report: Report) -> str:
    """The report as one tidy CSV: ``section, item, measure, value`` (durations in seconds)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["section", "item", "measure", "value"])
    rows: list[tuple[str, str, str, object]] = [
        ("period", "", "from", report.since.isoformat()),
        ("period", "", "until", report.until.isoformat()),
        ("period", "", "account", report.account_id),
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
    rows += [("conversations_by_inbox", f"{channel}: {name}", "count", n) for name, channel, n in report.by_inbox]
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
    writer.writerows([inert_cell(value) for value in row] for row in rows)
    return out.getvalue()


_FORM_MEASURES = ("started", "completed", "abandoned", "handed_off")


def _number(value: float | None) -> str:
    """A number for the CSV: integers without a decimal point, others to 3 places."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.3f}"
