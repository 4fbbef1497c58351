"""Partial indexes that are partial on the embedded store too.

MongoDB keeps in a partial index only the documents its ``partialFilterExpression`` matches;
nx-27017 drops the option and neosqlite indexes every document, so each insert and each update of
a message paid for all of the collection's indexes, those that can never hold it among them (a
customer's message in the outbox's, a reply in the campaigns'): about a third of the store's CPU
for a document (``bench/store_ops.py``).

``keep_partial_indexes_partial`` gives each such SQLite index a ``WHERE`` clause after nx-27017
has created it: every field the filter names must be there (``<field> IS NOT NULL``). The
index holds a superset of what MongoDB's would (a ``send.state`` index for pending items holds
every outbox item), never less, and SQLite reads through it only for a query that implies the
clause, as ``send.state = ?`` or ``meta.campaign IS NOT NULL`` do: a query that does not
still runs, without that index, as it would on MongoDB. A filter this cannot express that way
(an operator at its top, ``$exists: false``, a null) leaves the index whole, as before.

The clause is also how an existing store is upgraded: an index a release before this one made
whole is dropped and made again with it when the router next creates its indexes (at start-up),
in one SQLite savepoint, so a failure leaves the index as it was.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import sqlite3
from collections.abc import Mapping
from typing import Any

_LOG = logging.getLogger("omnirouter.store")
# an expression index as neosqlite writes it: its function family (json or jsonb) and no clause yet
_INDEX_SQL = re.compile(r"^(?P<base>CREATE (?:UNIQUE )?INDEX .*?\)\))(?: WHERE .*)?$", re.DOTALL)
_FUNCTION = re.compile(r"\b(?P<fn>jsonb?)_extract\(data, ")
_WHOLE_VALUES = frozenset({"$exists", "$type", "$eq", "$gt", "$gte", "$lt", "$lte"})


def keep_partial_indexes_partial() -> None:
    """Make nx-27017's ``createIndexes`` keep a partial index partial (calling it twice is
    harmless). It relies on nx-27017's handler (its ``handle_command``, ``_lock_for`` and
    ``get_database``) and on neosqlite's index names, which pyproject.toml pins."""
    from nx_27017 import handler as nx_handler

    handle = nx_handler.NeoSQLiteHandler.handle_command
    if getattr(handle, "partial_indexes", False):
        return

    @functools.wraps(handle)
    def handle_and_narrow(self: Any, msg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = next((doc for kind, doc in msg.get("sections", ()) if kind == "body"), None)
        if not isinstance(body, dict) or "createIndexes" not in body:
            answered: tuple[int, dict[str, Any]] = handle(self, msg)
            return answered
        db_name = str(body.get("$db", "test"))
        with self._lock_for(db_name):  # the lock handle_command takes (re-entrant): no write between
            request_id, answer = handle(self, msg)
            if answer.get("ok") == 1:
                for spec in body.get("indexes") or ():
                    narrow_index(self.get_database(db_name).db, str(body["createIndexes"]), spec)
        return request_id, answer

    handle_and_narrow.partial_indexes = True  # type: ignore[attr-defined]
    nx_handler.NeoSQLiteHandler.handle_command = handle_and_narrow


def narrow_index(db: sqlite3.Connection, collection: str, spec: Mapping[str, Any]) -> None:
    """Give the SQLite index neosqlite made for ``spec`` the clause of its partial filter, if it
    has a filter this can express and the index has not that clause already."""
    fields = where_fields(spec.get("partialFilterExpression"))
    keys = list(dict(spec.get("key") or {}))
    if not fields or not keys or "_id" in keys or any(not isinstance(v, int) for v in dict(spec["key"]).values()):
        return  # a whole index, the _id's, or a text or other special index: as nx made it
    name = f"idx_{collection}_{'_'.join(keys).replace('.', '_')}"  # neosqlite's name for these keys
    row = db.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)).fetchone()
    made = _INDEX_SQL.match(str(row[0])) if row and row[0] else None
    function = _FUNCTION.search(made["base"]) if made else None
    if made is None or function is None:
        return
    from neosqlite.collection.json_path_utils import parse_json_path  # type: ignore[import-untyped]

    # no space after "data,", unlike the keys: neosqlite lists an index's keys by reading every
    # "json_extract(data, '…')" of its SQL, and the clause's fields are none of them
    clause = " AND ".join(f"{function['fn']}_extract(data,'{parse_json_path(f)}') IS NOT NULL" for f in fields)
    wanted = f"{made['base']} WHERE {clause}"
    if row[0] != wanted:
        rewrite_schema(db, f'DROP INDEX "{name}"', wanted, f"index {name}")


def where_fields(expression: Any) -> list[str]:
    """The fields a partial filter requires to be there, if each of its conditions requires its
    field to hold some value (an equality with a value, ``$exists: true``, a range, a type);
    none otherwise (the index then stays whole)."""
    if not isinstance(expression, Mapping) or not expression:
        return []
    fields: list[str] = []
    for field, condition in expression.items():
        if not isinstance(field, str) or field.startswith("$") or "'" in field or condition is None:
            return []
        if isinstance(condition, Mapping):
            ops = dict(condition)
            if not ops or not set(ops) <= _WHOLE_VALUES or any(v is None for v in ops.values()):
                return []
            if ops.get("$exists", True) is not True or ops.get("$type", "string") in ("null", 10):
                return []
        fields.append(field)
    return sorted(fields)


def rewrite_schema(db: sqlite3.Connection, drop: str, create: str, what: str) -> bool:
    """Replace a schema object (``drop``, then ``create``) in one savepoint: if SQLite refuses,
    the object stays as it was, which is right, only dearer, and the refusal is logged."""
    try:
        db.execute("SAVEPOINT rewrite_schema")
        db.execute(drop)
        db.execute(create)
        db.execute("RELEASE rewrite_schema")
        return True
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK TO rewrite_schema")
            db.execute("RELEASE rewrite_schema")
        _LOG.warning("%s not rewritten: %s", what, exc)
        return False
