"""One commit for a write command of several documents on the embedded store.

nx-27017 writes a command's documents one at a time, each in its own SQLite transaction (neosqlite
runs its connections in autocommit), so every document of a batch pays for a commit: its pages
copied to the write-ahead log, the log's checksums, the index pages touched again by the next
document. ``one_commit_a_command`` runs an ``insert``, ``update`` or ``delete`` of two or more
documents in one transaction instead (``BEGIN IMMEDIATE`` … ``COMMIT``), inside the database's
lock that nx-27017 holds while the command runs: half the store's CPU a document in batches of a
hundred, 3–18 % of it a message under ``bench/load.py`` in three pairs (docs/performance.md). An
``update`` with ``multi`` and a ``delete`` without a limit count as several: neosqlite writes each
document they match with a statement of its own.

What a command's answer says is what the store holds:

* A document that fails (a duplicate key) fails its own statement only, as before: SQLite undoes
  that statement and the transaction goes on; an ordered command stops there, an unordered one
  goes on; the documents written before it are committed with the rest.
* When the commit fails, nothing of the command is written: the transaction is rolled back and the
  command answers an error, as a command that never ran. When SQLite rolls the transaction back by
  itself under the command (it may on a full disk, an I/O error or no memory), the documents after
  it are refused without a statement (they would each have been written on their own, in
  autocommit) and the command answers that error instead of its per-document results: none of
  its documents is stored.
* A command that fails as a whole (an exception out of nx-27017's code) is rolled back: its error
  answer means nothing of it is stored, where the documents before the failure stayed before.
* A crash before the commit leaves none of the command's documents, where it left the first ones
  before: a write command without a transaction is not atomic on MongoDB either, and the router
  retries a command it had no answer to.

Left as nx-27017 runs them: a command inside a client's transaction, and any command while a
session of the database has one open (its ``BEGIN`` is on the same connection, and its commit or
abort may come between our statements); one with a write concern (nx-27017 maps it onto a pragma
of the connection); GridFS collections; a database not open yet (its first command opens it); a
collection neosqlite does not list (its table is not there yet: its first write creates it, and
neosqlite remembers the collection whatever a rollback does to the table; or a name it keeps for
itself, as ``*_fts``); and a command of one document.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from typing import Any

_LOG = logging.getLogger("omnirouter.store")
_WRITES = {"insert": "documents", "update": "updates", "delete": "deletes"}  # command -> its documents
_TRANSACTIONAL = frozenset({"autocommit", "startTransaction"})
_DUPLICATE_KEY = 11000
_UNKNOWN_ERROR = 8  # what nx-27017 answers a write that failed for another reason than a duplicate key

Handle = Callable[[Any, dict[str, Any]], tuple[int, dict[str, Any]]]


class _Command(threading.local):
    """The transaction of the write command this thread runs, if any, and whether it ended."""

    db: sqlite3.Connection | None = None
    ended = False


_COMMAND = _Command()


def one_commit_a_command() -> None:
    """Make nx-27017's write commands of several documents commit once (calling it twice is
    harmless). It wraps the function inside nx-27017's ``_serialize`` (the database's lock held),
    so the server's own wrapper and the short commands the loop runs (``_nx_inline``) both reach
    it; it must run before ``keep_partial_indexes_partial`` wraps ``handle_command`` again. It
    relies on nx-27017's handler (``_serialize``, ``_conns``, ``_is_gridfs_collection``,
    ``_sessions`` and ``_sessions_lock``), which pyproject.toml pins."""
    from nx_27017 import handler as nx_handler

    if getattr(nx_handler.NeoSQLiteHandler.handle_insert.__wrapped__, "one_commit", False):
        return
    if getattr(nx_handler.NeoSQLiteHandler.handle_command, "partial_indexes", False):
        raise RuntimeError("one_commit_a_command must run before keep_partial_indexes_partial")
    for name in ("handle_insert", "handle_command"):
        handle = getattr(nx_handler.NeoSQLiteHandler, name).__wrapped__
        committed = functools.wraps(handle)(_in_one_transaction(handle))
        committed.one_commit = True  # type: ignore[attr-defined]
        setattr(nx_handler.NeoSQLiteHandler, name, nx_handler._serialize(committed))
    _refuse_writes_after_a_rollback()


def _refuse_writes_after_a_rollback() -> None:
    """Make the neosqlite writes nx-27017 runs a document at a time refuse, inside a command's
    transaction, once that transaction has ended (rolled back by SQLite)."""
    from neosqlite.collection import Collection  # type: ignore[import-untyped]

    for name in ("insert_one", "replace_one", "update_one", "update_many", "delete_one", "delete_many"):
        method = getattr(Collection, name)
        if not getattr(method, "one_commit", False):
            guarded = functools.wraps(method)(_refused_after_a_rollback(method))
            guarded.one_commit = True  # type: ignore[attr-defined]
            setattr(Collection, name, guarded)


def _refused_after_a_rollback(method: Callable[..., Any]) -> Callable[..., Any]:
    def write(self: Any, *args: Any, **kwargs: Any) -> Any:
        db = _COMMAND.db
        if db is None:
            return method(self, *args, **kwargs)
        if _COMMAND.ended:
            raise sqlite3.OperationalError("not written: the command's transaction was rolled back")
        try:
            return method(self, *args, **kwargs)
        finally:
            _COMMAND.ended = not _active(db)

    return write


def _in_one_transaction(handle: Handle) -> Handle:
    def run(self: Any, msg: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = _writes_several(self, msg)
        if body is None:
            return handle(self, msg)
        db_name, collection = str(body.get("$db", "test")), str(body[next(iter(body))])
        connection = self._conns.get(db_name)
        db = getattr(connection, "db", None)
        if (
            not isinstance(db, sqlite3.Connection)
            or db.in_transaction
            or collection not in connection.list_collection_names()  # not a table yet (or a name neosqlite hides)
            or _session_in_transaction(self, db_name)
        ):
            return handle(self, msg)
        db.execute("BEGIN IMMEDIATE")
        _COMMAND.db, _COMMAND.ended = db, False
        try:
            request_id, answer = handle(self, msg)
        except BaseException:
            _end(db, "ROLLBACK")
            raise
        finally:
            _COMMAND.db = None
        try:
            active = db.in_transaction
        except sqlite3.ProgrammingError:  # closed under the command (evicted): its close committed
            return request_id, answer
        if not active:  # SQLite rolled it back by itself: the per-document results were undone
            errors = [e for e in answer.get("writeErrors") or () if e.get("code") != _DUPLICATE_KEY]
            return request_id, _undone(str(errors[0].get("errmsg")) if errors else "the transaction ended")
        try:
            db.execute("COMMIT")
        except sqlite3.ProgrammingError:  # closed since the check above (evicted): its close committed
            return request_id, answer
        except sqlite3.Error as error:
            _end(db, "ROLLBACK")
            return request_id, _undone(str(error))
        return request_id, answer

    return run


def _writes_several(handler: Any, msg: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The body of ``msg`` when it is an insert, update or delete of two or more documents that
    this may run in one transaction; ``None`` for any other command."""
    body: Mapping[str, Any] = {}
    statements: list[Any] = []  # the command's documents or statements, from its document sequences
    for kind, data in msg.get("sections", ()):
        if kind == "body" and isinstance(data, Mapping):
            body = data
        elif kind == "payload" and isinstance(data, Mapping):
            for listed in data.values():
                statements.extend(listed if isinstance(listed, list) else [listed])
        else:
            return None
    name = str(next(iter(body), ""))
    collection = body.get(name)
    if name not in _WRITES or not isinstance(collection, str) or handler._is_gridfs_collection(collection):
        return None
    if _TRANSACTIONAL & set(body) or body.get("writeConcern"):
        return None
    inline = body.get(_WRITES[name])
    statements.extend(inline if isinstance(inline, list) else [])
    many = any(isinstance(s, Mapping) and (s.get("multi") or s.get("limit") == 0) for s in statements)
    return body if len(statements) >= 2 or (name != "insert" and many) else None


def _session_in_transaction(handler: Any, db_name: str) -> bool:
    """Whether a client session has a transaction open on ``db_name`` (nx-27017's own check before
    it evicts a database); when this cannot tell, as if it had."""
    try:
        with handler._sessions_lock:
            return any(key[1] == db_name and session.in_transaction for key, session in handler._sessions.items())
    except (AttributeError, IndexError, TypeError):
        return True


def _active(db: sqlite3.Connection) -> bool:
    """Whether ``db`` is still in its transaction; a connection closed under the command (nx-27017
    evicts one it has too many of, committing it) counts as such: its statements fail anyway."""
    try:
        return db.in_transaction
    except sqlite3.ProgrammingError:
        return True


def _end(db: sqlite3.Connection, statement: str) -> None:
    try:
        if db.in_transaction:
            db.execute(statement)
    except sqlite3.Error as error:  # the connection stays in the transaction: later writes would wait for it
        _LOG.error("store: %s after a failed write command failed: %s", statement, error)


def _undone(reason: str) -> dict[str, Any]:
    return {
        "ok": 0,
        "code": _UNKNOWN_ERROR,
        "errmsg": f"the command's writes were rolled back, none is stored: {reason}",
    }
