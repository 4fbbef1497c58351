"""The admin reports' reads: aggregation pipelines over one account's threads and shifts.

The cohort of a report is the threads *opened* in the period (``opened_at`` in ``[start, end)``),
matched on the ``(account_id, opened_at)`` index; shifts are those *started* in the period. Only
counts, sums and single values leave the server: no thread is loaded into Python.

Percentiles. MongoDB's ``$percentile`` / ``$median`` (7.0+) return nothing on the embedded server,
so they are computed by *count, then skip*: the summary counts each duration's values, then for
each wanted percentile one ``$sort`` + ``$skip`` + ``$limit 2`` query fetches the (at most two)
values around its rank, interpolated linearly (numpy's default,
``statistics.quantiles(method="inclusive")``). Chosen over ``$group`` with ``$push`` of every
duration because the result is exact and well defined on both servers (it does not rely on
``$push`` keeping the ``$sort`` order), nothing grows with the period (a pushed array is capped by
the 16 MB document limit, about a million values, and travels whole), and MongoDB runs ``$sort`` +
``$skip`` + ``$limit`` as a top-k sort holding only ``skip + 2`` values; upper percentiles sort
descending so that k stays small.

Pipelines keep to what both servers evaluate alike and what the embedded server runs fast
(measured on nx-27017 over 20,000 threads with ``bench/reports.py``): every condition that can be a
``$match`` is one, as the embedded server answers those from SQLite (the summary took 2.3 s as one
``$group`` of ``$cond`` sums, 0.9 s as it is); counts are ``$group`` sums (its ``$count`` after a
computed ``$match`` took 820 ms against 140 ms); the percentiles are separate queries (0.9 s)
rather than one ``$facet`` (6.5 s); no compound ``_id`` expressions in ``$group`` (not evaluated
there); durations are filtered with ``d >= 0`` after ``$project`` (a missing end makes ``d`` null
on both).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from pymongo import ASCENDING, IndexModel, ReadPreference

from conversations.client import IndexPlan, Repository, StoreClient
from conversations.membership import inbox_key

INDEXES: IndexPlan = {
    "threads": [
        IndexModel([("account_id", ASCENDING), ("opened_at", ASCENDING)]),
        # a report of one inbox: its threads only (a first inbox's have no inbox_id: null, and its channel)
        IndexModel([("account_id", ASCENDING), ("inbox_id", ASCENDING), ("opened_at", ASCENDING)]),
    ]
}

DAY_MS = 86_400_000
QUANTILES = (0.5, 0.9)
# the reports' read preference by its name in a MongoDB URI (the ``store.reports_read_preference`` setting)
READ_PREFERENCES = {
    "primary": ReadPreference.PRIMARY,
    "primaryPreferred": ReadPreference.PRIMARY_PREFERRED,
    "secondary": ReadPreference.SECONDARY,
    "secondaryPreferred": ReadPreference.SECONDARY_PREFERRED,
    "nearest": ReadPreference.NEAREST,
}

_QUEUED = {"$ifNull": ["$first_queued_at", "$queued_at"]}
_ASSIGNED = {"$ifNull": ["$first_assigned_at", "$assigned_at"]}
_WAIT_START = {"$ifNull": ["$first_queued_at", {"$ifNull": ["$queued_at", "$opened_at"]}]}
_WAS_QUEUED = {"queued_at": {"$gt": 0}}  # never unset once a thread was queued

# name -> (which cohort threads it applies to, the duration in ms)
DURATIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "queue_wait": (_WAS_QUEUED, {"$subtract": [_ASSIGNED, _QUEUED]}),
    "first_response": ({"first_response_at": {"$gt": 0}}, {"$subtract": ["$first_response_at", _WAIT_START]}),
    "resolution": ({"status": "resolved"}, {"$subtract": ["$resolved_at", "$opened_at"]}),
}


@dataclass(frozen=True)
class Quantile:
    """Where a quantile of ``n`` sorted values sits, as a ``$sort``/``$skip``/``$limit`` query."""

    q: float
    ascending: bool
    skip: int
    take: int
    fraction: Fraction  # weight of the upper of the two values (exact: 9 * 0.9 is 8.1, not 8.100000000000001)

    @classmethod
    def plan(cls, n: int, q: float) -> Quantile:
        position = (n - 1) * Fraction(str(q))
        low = math.floor(position)
        fraction = position - low
        take = 2 if fraction > 0 and low + 1 < n else 1
        if q <= 0.5:
            return cls(q, True, low, take, fraction)
        return cls(q, False, n - low - take, take, fraction)

    def value(self, found: list[float]) -> float | None:
        """The quantile from the values the query returned (in its sort order)."""
        if not found:
            return None
        ordered = found if self.ascending else list(reversed(found))
        if len(ordered) == 1:
            return float(ordered[0])
        low, high = Fraction(ordered[0]), Fraction(ordered[1])
        return float(low + (high - low) * self.fraction)


@dataclass(frozen=True)
class Cohort:
    """The threads a report covers: one account's opened in ``[start_ms, end_ms)``, and with
    ``inbox`` (a filter on threads, ``conversations.membership.inbox_match``) one inbox's only."""

    account_id: str
    start_ms: int
    end_ms: int
    inbox: dict[str, Any] = field(default_factory=dict)

    def match(self, **more: Any) -> dict[str, Any]:
        """The cohort's ``$match``, with ``more`` conditions."""
        return {
            "account_id": self.account_id,
            **self.inbox,
            "opened_at": {"$gte": self.start_ms, "$lt": self.end_ms},
            **more,
        }


def _computed(value: dict[str, Any] | str, where: dict[str, Any]) -> list[dict[str, Any]]:
    """Stages computing ``d`` per thread and keeping the threads where ``d`` matches ``where``."""
    return [{"$project": {"d": value}}, {"$match": {"d": where}}]


class ReportsRepository(Repository):
    """Aggregations behind ``bot/services/reports.py``, read with their own read preference: on a
    replica set they can run on a secondary, away from the primary that the message path writes to."""

    def __init__(self, client: StoreClient, read_preference: str = "primary") -> None:
        super().__init__(client)
        chosen = READ_PREFERENCES[read_preference]
        self._threads = self._db.threads.with_options(read_preference=chosen)
        self._shifts = self._db.shifts.with_options(read_preference=chosen)

    @property
    def read_preference(self) -> str:
        """The read preference of the reports' reads, by its name in a MongoDB URI."""
        return str(self._threads.read_preference.mongos_mode)

    async def _total(
        self, match: dict[str, Any], value: dict[str, Any] | str | None = None, where: dict[str, Any] | None = None
    ) -> tuple[int, int]:
        """``(how many threads match, the sum of value over them)``; with ``where``, only the
        threads whose value matches it. (A ``$group`` rather than ``$count``: the embedded
        server runs ``$count`` after a computed ``$match`` several times slower.)"""
        pipeline: list[dict[str, Any]] = [{"$match": match}]
        if value is not None:
            pipeline += _computed(value, where or {"$ne": None})
        pipeline.append({"$group": {"_id": None, "n": {"$sum": 1}, "s": {"$sum": "$d" if value else 0}}})
        found = await (await self._threads.aggregate(pipeline)).to_list()
        return (int(found[0]["n"]), int(found[0]["s"] or 0)) if found else (0, 0)

    async def report_summary(self, cohort: Cohort, now_ms: int, sla_ms: int) -> dict[str, int]:
        """Counts and sums over the cohort: containment, SLA, each duration's count and sum."""
        c = cohort.match()
        jobs = {
            "total": self._total(c),
            "resolved": self._total({**c, "status": "resolved"}),
            "escalated": self._total({**c, **_WAS_QUEUED}),
            "contained_resolved": self._total({**c, "status": "resolved", "queued_at": {"$exists": False}}),
            "sla_late": self._total(
                {**c, "first_response_at": {"$gt": 0}}, DURATIONS["first_response"][1], {"$gt": sla_ms}
            ),
            "sla_unanswered": self._total(
                {**c, **_WAS_QUEUED, "first_response_at": {"$exists": False}}, _WAIT_START, {"$lt": now_ms - sla_ms}
            ),
            "next_breaches": self._total({**c, "next_response_breaches": {"$gt": 0}}, "$next_response_breaches"),
            **{name: self._total({**c, **only}, value, {"$gte": 0}) for name, (only, value) in DURATIONS.items()},
        }
        found = dict(zip(jobs, await asyncio.gather(*jobs.values())))
        summary = {
            name: found[name][0]
            for name in ("total", "resolved", "escalated", "contained_resolved", "sla_late", "sla_unanswered")
        }
        summary["next_breaches"] = found["next_breaches"][1]
        for name in DURATIONS:
            summary[f"{name}_n"], summary[f"{name}_sum"] = found[name]
        summary["sla_breached"] = summary.pop("sla_late") + summary["sla_unanswered"]
        return summary

    async def report_quantiles(self, cohort: Cohort, counts: dict[str, int]) -> dict[str, dict[float, float | None]]:
        """Median and p90 (``QUANTILES``) of every duration, in ms, by count-then-skip."""

        async def one(name: str, plan: Quantile) -> float | None:
            only, value = DURATIONS[name]
            pipeline = [
                {"$match": cohort.match(**only)},
                *_computed(value, {"$gte": 0}),
                {"$sort": {"d": 1 if plan.ascending else -1}},
                {"$skip": plan.skip},
                {"$limit": plan.take},
            ]
            found = await (await self._threads.aggregate(pipeline, allowDiskUse=True)).to_list()
            return plan.value([doc["d"] for doc in found])

        wanted = [(name, q) for name in DURATIONS for q in QUANTILES if counts.get(name)]
        values = await asyncio.gather(*(one(name, Quantile.plan(counts[name], q)) for name, q in wanted))
        result: dict[str, dict[float, float | None]] = {name: dict.fromkeys(QUANTILES) for name in DURATIONS}
        for (name, q), value in zip(wanted, values):
            result[name][q] = value
        return result

    async def report_counts_by(
        self, cohort: Cohort, key: dict[str, Any] | str, only: dict[str, Any] | None = None
    ) -> dict[str, int]:
        """How many cohort threads per value of ``key`` (a field path or an expression)."""
        pipeline: list[dict[str, Any]] = [{"$match": cohort.match(**(only or {}))}]
        pipeline += [{"$project": {"k": key}}, {"$group": {"_id": "$k", "n": {"$sum": 1}}}]
        found = await (await self._threads.aggregate(pipeline)).to_list()
        return {_key(doc["_id"]): int(doc["n"]) for doc in found}

    async def report_bot_steps(self, cohort: Cohort) -> dict[str, int]:
        """How often each of the bot's steps (``kind:subject``, counted in the thread's dialogue
        state) occurs over the cohort's threads."""
        pipeline: list[dict[str, Any]] = [
            {"$match": cohort.match(**{"nlu_state.tally": {"$exists": True}})},
            {"$project": {"row": "$nlu_state.tally"}},
            {"$unwind": "$row"},
            {"$group": {"_id": "$row.step", "n": {"$sum": "$row.n"}}},
        ]
        found = await (await self._threads.aggregate(pipeline)).to_list()
        return {str(doc["_id"]): int(doc["n"]) for doc in found}

    async def report_agents(self, cohort: Cohort) -> dict[str, dict[str, int]]:
        """Per agent (who holds, or last held, the thread): conversations, resolved, and handling
        time (from their assignment to resolution) summed over the resolved ones, in ms."""
        c, holder = cohort.match(), {"$ifNull": ["$assignee", "$last_assignee"]}
        handled = {"$subtract": ["$resolved_at", {"$ifNull": ["$assigned_at", "$resolved_at"]}]}
        held = [
            {"$match": c},
            {"$project": {"agent": holder}},
            {"$match": {"agent": {"$gt": ""}}},
            {"$group": {"_id": "$agent", "n": {"$sum": 1}}},
        ]
        done = [
            {"$match": {**c, "status": "resolved"}},
            {"$project": {"agent": holder, "handled": handled}},
            {"$match": {"agent": {"$gt": ""}, "handled": {"$gte": 0}}},
            {"$group": {"_id": "$agent", "n": {"$sum": 1}, "ms": {"$sum": "$handled"}}},
        ]
        rows: dict[str, dict[str, int]] = {}
        for doc in await (await self._threads.aggregate(held)).to_list():
            rows[str(doc["_id"])] = {"conversations": int(doc["n"]), "resolved": 0, "handling_ms": 0}
        for doc in await (await self._threads.aggregate(done)).to_list():
            row = rows.setdefault(str(doc["_id"]), {"conversations": 0, "resolved": 0, "handling_ms": 0})
            row.update(resolved=int(doc["n"]), handling_ms=int(doc["ms"] or 0))
        return rows

    async def report_thread_inboxes(self, account_id: str, thread_ids: list[str]) -> dict[str, str]:
        """The inbox key (``conversations.membership``) of each of the account's ``thread_ids``."""
        if not thread_ids:
            return {}
        query = {"account_id": account_id, "_id": {"$in": sorted(set(thread_ids))}}
        found = await self._threads.find(query, {"inbox_id": 1, "channel": 1}).to_list()
        return {str(doc["_id"]): inbox_key(doc.get("inbox_id"), str(doc.get("channel", ""))) for doc in found}

    async def report_shifts(
        self, account_id: str, start_ms: int, end_ms: int, now_ms: int
    ) -> dict[str, dict[str, int]]:
        """Per agent: shifts started in the period and their length in ms (a running shift
        counts up to ``now_ms``)."""
        pipeline: list[dict[str, Any]] = [
            {"$match": {"account_id": account_id, "started_at": {"$gte": start_ms, "$lt": end_ms}}},
            {"$project": {"agent_id": 1, "length": {"$subtract": [{"$ifNull": ["$ended_at", now_ms]}, "$started_at"]}}},
            {"$group": {"_id": "$agent_id", "shifts": {"$sum": 1}, "ms": {"$sum": "$length"}}},
        ]
        found = await (await self._shifts.aggregate(pipeline)).to_list()
        return {str(doc["_id"]): {"shifts": int(doc["shifts"]), "ms": int(doc["ms"] or 0)} for doc in found}


def _key(value: Any) -> str:
    """A group key as text; day buckets come back as floats from the embedded server."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def day_bucket() -> dict[str, Any]:
    """The UTC day (its first millisecond) a thread was opened on."""
    return {"$subtract": ["$opened_at", {"$mod": ["$opened_at", DAY_MS]}]}
