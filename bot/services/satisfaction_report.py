"""Customer satisfaction in the admin reports: the questions asked in the period, and their ratings
by agent, team, channel and day.

CSAT is the share of ratings that are 4 or 5 ("satisfied"), the usual definition; the average
rating is shown beside it. ``skipped`` counts questions not sent (WhatsApp's window had closed,
or e-mail without ``server.public_url``); ``unanswered`` those sent and not rated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from conversations.satisfaction import SatisfactionAsk

SATISFIED = 4  # ratings from this up count as satisfied
COMMENTS_SHOWN = 20


@dataclass(frozen=True)
class RatingRow:
    """The ratings of one agent, team, channel or day."""

    key: str
    label: str
    rated: int = 0
    satisfied: int = 0
    rating_sum: int = 0

    @property
    def csat(self) -> float | None:
        return self.satisfied / self.rated if self.rated else None

    @property
    def average(self) -> float | None:
        return self.rating_sum / self.rated if self.rated else None


@dataclass(frozen=True)
class SatisfactionReport:
    asked: int = 0
    skipped: int = 0
    overall: RatingRow = field(default_factory=lambda: RatingRow("all", ""))
    by_agent: list[RatingRow] = field(default_factory=list)
    by_team: list[RatingRow] = field(default_factory=list)
    by_channel: list[RatingRow] = field(default_factory=list)
    by_day: list[RatingRow] = field(default_factory=list)
    comments: list[SatisfactionAsk] = field(default_factory=list)  # newest first

    @property
    def unanswered(self) -> int:
        return self.asked - self.skipped - self.overall.rated


def satisfaction_report(asks: Iterable[SatisfactionAsk], agent_names: dict[str, str]) -> SatisfactionReport:
    """The report of ``asks`` (the questions of one account asked in the period); agents by login."""
    asks = list(asks)
    rated = [a for a in asks if a.rating is not None]

    def rows(key: Callable[[SatisfactionAsk], str], label: Callable[[str], str]) -> list[RatingRow]:
        groups: dict[str, list[int]] = defaultdict(list)
        for ask in rated:
            groups[key(ask)].append(int(ask.rating or 0))
        return sorted((_row(k, label(k), r) for k, r in groups.items()), key=lambda row: (-row.rated, row.label))

    def day_of(ask: SatisfactionAsk) -> str:
        return _day(ask.asked_at).isoformat()

    return SatisfactionReport(
        asked=len(asks),
        skipped=sum(1 for a in asks if a.skipped),
        overall=_row("all", "", [int(a.rating or 0) for a in rated]),
        by_agent=rows(lambda a: a.agent_id or "", lambda k: agent_names.get(k, k) or "—"),
        by_team=rows(lambda a: a.team or "", lambda k: k or "—"),
        by_channel=rows(lambda a: a.channel, lambda k: k),
        by_day=sorted(rows(day_of, lambda k: k), key=lambda row: row.key),
        comments=sorted((a for a in rated if a.comment), key=lambda a: a.rated_at or a.asked_at, reverse=True)[
            :COMMENTS_SHOWN
        ],
    )


def _row(key: str, label: str, ratings: list[int]) -> RatingRow:
    return RatingRow(key, label, len(ratings), sum(1 for r in ratings if r >= SATISFIED), sum(ratings))


def _day(moment: datetime) -> date:
    return moment.date()


def satisfaction_csv_rows(report: SatisfactionReport) -> list[tuple[str, str, str, int | str]]:
    """The CSV rows of the report (``section, item, measure, value``)."""
    out: list[tuple[str, str, str, int | str]] = [
        ("satisfaction", "", "asked", report.asked),
        ("satisfaction", "", "skipped", report.skipped),
        ("satisfaction", "", "unanswered", report.unanswered),
    ]
    out += _measures("satisfaction", report.overall, "")
    for section, rows in (
        ("satisfaction_by_agent", report.by_agent),
        ("satisfaction_by_team", report.by_team),
        ("satisfaction_by_channel", report.by_channel),
        ("satisfaction_by_day", report.by_day),
    ):
        for row in rows:
            out += _measures(section, row, row.label)
    return out


def _measures(section: str, row: RatingRow, item: str) -> list[tuple[str, str, str, int | str]]:
    return [
        (section, item, "rated", row.rated),
        (section, item, "satisfied", row.satisfied),
        (section, item, "csat", "" if row.csat is None else f"{row.csat:.3f}"),
        (section, item, "average", "" if row.average is None else f"{row.average:.2f}"),
    ]
