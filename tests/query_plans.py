"""How the embedded store runs a query, for the tests that keep queries index-backed and for the
store benchmarks (``bench/claims.py``, ``bench/scale.py``).

A query's plan comes from two places:

* the server's own ``explain`` command, which nx-27017 answers for a find's *filter* only (it
  leaves out the sort and the limit, and answers nothing useful for ``findAndModify`` or an
  ``update``, whose first statement is replayed);
* SQLite's ``EXPLAIN QUERY PLAN`` of the whole statement the server runs (filter, ORDER BY,
  LIMIT): once the server has stopped, each captured command is replayed with the server's own
  library (neosqlite) on the same data file, and the statement it executes is explained.

``SEARCH … USING INDEX`` reads through an index; ``SCAN <collection>`` reads every document, and
``USE TEMP B-TREE FOR ORDER BY`` sorts every match before the first one comes back.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from pymongo import monitoring

from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories

_LABEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("plan_label", default=None)
_EXPLAINED = ("find", "findAndModify", "aggregate", "update", "delete")


@contextmanager
def labelled(label: str) -> Iterator[None]:
    """Queries sent inside the block are captured as ``"<label>: <command> <collection>"``."""
    token = _LABEL.set(label)
    try:
        yield
    finally:
        _LABEL.reset(token)


class PlanCapture(monitoring.CommandListener):
    """Keeps the first query of each kind sent inside a ``labelled`` block (``captured``), and
    every one of them (``every``: the second and later of a kind numbered ``#2``, ``#3``…)."""

    def __init__(self) -> None:
        self.captured: dict[str, dict[str, Any]] = {}
        self.every: dict[str, dict[str, Any]] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        label = _LABEL.get()
        if label is not None and event.command_name in _EXPLAINED:
            key = f"{label}: {event.command_name} {event.command.get(event.command_name, '')}"
            command = {**event.command, "$db": event.database_name}
            self.captured.setdefault(key, command)
            n = sum(1 for seen in self.every if seen == key or seen.startswith(f"{key} #"))
            self.every[key if n == 0 else f"{key} #{n + 1}"] = command

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@asynccontextmanager
async def captured_store(data_dir: Path) -> AsyncIterator[tuple[Repositories, PlanCapture]]:
    """A store with its indexes on an embedded server in ``data_dir``, its queries captured; the
    server has stopped when the block ends, ready for ``sqlite_plans(data_dir, capture.captured)``."""
    server = EmbeddedMongo(data_dir)
    await server.start()
    capture = PlanCapture()
    store = Repositories.connect(server.uri, "plans", listeners=[capture])
    try:
        await store.ensure_indexes()
        yield store, capture
    finally:
        await store.close()
        await server.stop()


async def server_explain(db: Any, command: Mapping[str, Any]) -> list[str]:
    """The embedded server's ``explain`` of the filter of a captured command."""
    name = next((n for n in ("find", "findAndModify") if n in command), None)
    if name is None:
        return ["(the server explains finds only)"]
    flt = command.get("filter", command.get("query", {}))
    answer = await db.command({"explain": {"find": command[name], "filter": flt}})
    plan = answer.get("queryPlanner", {}).get("winningPlan", [])
    return [str(step.get("detail", step)) for step in plan] if isinstance(plan, list) else [str(plan)]


def sqlite_plans(data_dir: Path, commands: Mapping[str, Mapping[str, Any]]) -> dict[str, tuple[str, list[str]]]:
    """Replay each captured command on a *stopped* server's data files and explain the main
    statement SQLite ran for it: ``{label: (sql, plan lines)}``."""
    from neosqlite import Connection

    plans: dict[str, tuple[str, list[str]]] = {}
    connections: dict[str, Any] = {}
    try:
        for label, command in commands.items():
            db_name = str(command["$db"])
            if db_name not in connections:
                connections[db_name] = Connection(str(data_dir / f"{db_name}.db"))
            conn = connections[db_name]
            statements: list[str] = []
            conn.db.set_trace_callback(statements.append)
            try:
                _replay(conn, command)
            finally:
                conn.db.set_trace_callback(None)
            main = next(
                (
                    s
                    for s in statements
                    if s.lstrip().upper().startswith(("SELECT", "WITH"))
                    and "pragma_" not in s
                    and "sqlite_master" not in s
                    and "'main'." not in s  # SQLite FTS5 reading its own tables for a $text query
                    and not _SIZE.match(s)  # an aggregation first asks how big the collection is
                    and "FROM neosqlite_" not in s  # and may read the server's own index catalogue
                ),
                "",
            )
            rows = conn.db.execute("EXPLAIN QUERY PLAN " + main).fetchall() if main else []
            plans[label] = (main, [str(row[3]) for row in rows])
    finally:
        for conn in connections.values():
            conn.close()
    return plans


_SIZE = re.compile(r"^\s*SELECT COUNT\(1\) FROM \w+\s*$")


def _replay(conn: Any, command: Mapping[str, Any]) -> None:
    if "find" in command:
        cursor = conn[command["find"]].find(command.get("filter", {}))
        if command.get("sort"):
            cursor = cursor.sort(list(command["sort"].items()))
        if command.get("skip"):
            cursor = cursor.skip(command["skip"])
        if command.get("limit"):
            cursor = cursor.limit(command["limit"])
        list(cursor)
    elif "findAndModify" in command:
        sort = command.get("sort")
        conn[command["findAndModify"]].find_one_and_update(
            command.get("query", {}),
            command["update"],
            sort=list(sort.items()) if sort else None,
            return_document=bool(command.get("new")),
        )
    elif "update" in command:  # its first statement: the read that finds what it updates
        statement = command["updates"][0]
        write = conn[command["update"]].update_many if statement.get("multi") else conn[command["update"]].update_one
        write(statement["q"], statement["u"])
    elif "delete" in command:  # the read that finds what it deletes
        list(conn[command["delete"]].find(command["deletes"][0]["q"]))
    else:
        list(conn[command["aggregate"]].aggregate(command.get("pipeline", [])))


# the index gives the order of the leading sort keys; only runs of equal leading keys are sorted
# (the API's listings sort by time, then by id among records of the same millisecond)
_TIES = "USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"


def index_backed(plan: list[str]) -> bool:
    """No scan of a whole collection and no sort of every match."""
    return bool(plan) and not any(
        (line.startswith("SCAN ") and "VIRTUAL TABLE" not in line) or ("TEMP B-TREE" in line and line != _TIES)
        for line in plan
    )
