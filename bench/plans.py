"""Figures for the store benchmarks (``bench/claims.py``, ``bench/scale.py``): round trips and their
latency per measured call, percentiles, and the query plans (see ``tests/query_plans.py``)."""

from __future__ import annotations

import contextvars
import statistics
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from pymongo import monitoring

from tests.query_plans import PlanCapture

_CALL: contextvars.ContextVar[list[tuple[str, str, float]] | None] = contextvars.ContextVar("bench_call", default=None)


@contextmanager
def timed_commands() -> Iterator[list[tuple[str, str, float]]]:
    """Every command sent inside the block, as (command, collection, round-trip seconds)."""
    record: list[tuple[str, str, float]] = []
    token = _CALL.set(record)
    try:
        yield record
    finally:
        _CALL.reset(token)


class CommandLog(PlanCapture):
    """Counts round trips, times them inside ``timed_commands``, and keeps the queries to explain."""

    def __init__(self) -> None:
        super().__init__()
        self.round_trips = 0
        self._pending: dict[int, tuple[list[tuple[str, str, float]], str, str]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        super().started(event)
        self.round_trips += 1
        record = _CALL.get()
        if record is not None:
            collection = str(event.command.get(event.command_name, ""))
            self._pending[event.request_id] = (record, event.command_name, collection)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finish(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finish(event.request_id, event.duration_micros)

    def _finish(self, request_id: int, micros: int) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is not None:
            record, name, collection = pending
            record.append((name, collection, micros / 1e6))


@dataclass
class Latencies:
    """Seconds per call of one measured operation."""

    name: str
    seconds: list[float] = field(default_factory=list)

    def pct(self, p: float) -> float:
        ordered = sorted(self.seconds)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.seconds)

    def row(self, base: Latencies | None = None) -> str:
        ratio = f"{self.p50 / base.p50:7.2f}" if base is not None else "      —"
        return (
            f"  {self.name:<58} {len(self.seconds):>6} {self.p50 * 1e3:8.2f} {self.pct(90) * 1e3:8.2f} "
            f"{self.pct(99) * 1e3:8.2f} {ratio}"
        )


HEADER = f"  {'':<58} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'× read':>7}"


def print_plans(title: str, server: Mapping[str, list[str]], sqlite: Mapping[str, tuple[str, list[str]]]) -> None:
    print(f"\n{title}")
    for label, (sql, plan) in sqlite.items():
        print(f"  {label}")
        print(f"    server explain (filter): {' | '.join(server.get(label, []))}")
        print(f"    SQLite plan (statement): {' | '.join(plan)}")
        print(f"    statement: {_short(sql)}")


def _short(sql: str, width: int = 220) -> str:
    sql = " ".join(sql.split())
    return sql if len(sql) <= width else sql[: width - 1] + "…"
