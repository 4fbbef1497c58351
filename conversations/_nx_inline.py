"""The embedded store's point commands run on its event loop when their database is free.

nx-27017 hands every command to a worker thread (``asyncio.to_thread``) so that a long one (a
report, an export, an index build) leaves its event loop answering the others, the driver's
heartbeats among them. Commands on one database run one at a time anyway (nx-27017 holds a lock
per database while one runs), so for a command that reads or writes a few documents by their
``_id`` the thread only adds its own cost: the hand-over, the wake-up of the loop with the
answer, two threads taking turns at the interpreter. One at a time, such a read or update costs
the store 0.1–0.2 ms of CPU less on the loop (``bench/store_ops.py``); under ``bench/load.py``,
where most commands carry several documents, the difference is within the runs' spread
(docs/performance.md).

A command runs on the loop when its shape bounds its work (``bounded_by_shape``): an insert of at
most ``MOST_DOCUMENTS`` documents holding no bytes, or a find, update, delete or findAndModify
whose filters name at most ``MOST_DOCUMENTS`` documents by their ``_id`` (one value or a non-empty
``$in`` list each, counted over the whole command), with other fields beside the ``_id`` only when
it names one document, and then compared with plain values; only options its command knows, no
write concern that waits for the disk; on one of the message path's collections (``HOT``), whose
documents are small, so that a command naming a few of them is short whatever they hold. Values
neosqlite would take for dates (a string starting ``2024-05-01``) are never among them: it compares
those by scanning. And only when its database is open and its lock free at that moment: taken
without waiting and held while the command runs. Any other command goes to a thread as before, so
the loop does not wait for a lock a long command holds, nor run a scan. On the loop, the command
may still wait briefly for nx-27017's own dictionary of databases (held long only while a
database file is opened or closed) and do SQLite's work for its few rows, a write-ahead log
checkpoint among it: an exception to "no blocking I/O in a coroutine", bounded by its shape.
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any

from neosqlite.collection.datetime_utils import is_datetime_value  # type: ignore[import-untyped]

MOST_DOCUMENTS = 64
HOT = frozenset({"messages", "threads", "identities", "contacts", "consent", "webchat_tokens"})
_COMMON = frozenset(
    {"$db", "lsid", "txnNumber", "$clusterTime", "$readPreference", "readConcern", "writeConcern", "maxTimeMS"}
    | {"comment", "apiVersion", "apiStrict", "apiDeprecationErrors", "startTransaction", "autocommit", "let"}
)
_OPTIONS = {  # what each command may carry beside _COMMON: anything else is not asked of the loop
    "insert": {"documents", "ordered", "bypassDocumentValidation"},
    "update": {"updates", "ordered", "bypassDocumentValidation"},
    "delete": {"deletes", "ordered"},
    "find": {"filter", "projection", "sort", "limit", "skip", "batchSize", "singleBatch", "hint", "collation"},
    "findAndModify": {"query", "update", "remove", "new", "fields", "upsert", "sort", "arrayFilters", "collation"}
    | {"hint", "bypassDocumentValidation"},
}
_FILTERS = {"find": "filter", "findAndModify": "query"}  # where a command keeps its one filter
_STATEMENTS = {"update": "updates", "delete": "deletes"}  # or its statements, each with a "q"
_COMPARISONS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"})
_PLAIN = (str, int, float, bool, type(None))  # what neosqlite compares in SQL, but for dates


def bounded_by_shape(msg: Mapping[str, Any]) -> bool:
    """Whether the OP_MSG ``msg`` (as nx-27017 parses it) is a command whose shape bounds its
    work: see the module's docstring."""
    body: Mapping[str, Any] = {}
    sequences: dict[str, list[Any]] = {}  # the document sequences (kind 1) by their field
    for kind, data in msg.get("sections", ()):
        if kind == "body" and isinstance(data, Mapping):
            body = data
        elif kind == "payload" and isinstance(data, Mapping):
            for field, docs in data.items():
                sequences.setdefault(str(field), []).extend(docs if isinstance(docs, list) else [docs])
        else:  # nx-27017's own kind 2, or something unknown
            return False
    name = str(next(iter(body), ""))
    collection = body.get(name)
    if name not in _OPTIONS or not isinstance(collection, str) or collection not in HOT:
        return False
    if not set(body) - {name} <= _OPTIONS[name] | _COMMON or not set(sequences) <= _OPTIONS[name]:
        return False
    concern = body.get("writeConcern")
    if isinstance(concern, Mapping) and (concern.get("j") or concern.get("fsync")):
        return False  # nx-27017 would make the database wait for the disk at every commit
    if name == "insert":
        documents = _listed(body, "documents", sequences)
        return len(documents) <= MOST_DOCUMENTS and not any(_holds_bytes(d) for d in documents)
    if name in _STATEMENTS:
        statements = _listed(body, _STATEMENTS[name], sequences)
        if len(statements) > MOST_DOCUMENTS:  # each names one document at least
            return False
        filters = [s.get("q") if isinstance(s, Mapping) else None for s in statements]
    else:
        filters = [body.get(_FILTERS[name])]
    named = 0
    for query in filters:
        count = _named_by_id(query)
        if count is None or (named := named + count) > MOST_DOCUMENTS:
            return False
    return named > 0


def _listed(body: Mapping[str, Any], field: str, sequences: Mapping[str, list[Any]]) -> list[Any]:
    """A command's documents of ``field``: in its body, in a document sequence, or both."""
    inline = body.get(field)
    return (list(inline) if isinstance(inline, list) else []) + sequences.get(field, [])


def _holds_bytes(document: Any) -> bool:
    return isinstance(document, Mapping) and any(isinstance(v, bytes | bytearray) for v in document.values())


def _named_by_id(query: Any) -> int | None:
    """How many documents ``query`` names by ``_id``; ``None`` when it does not name them so, or
    when another of its conditions could make the store read more than those."""
    if not isinstance(query, Mapping) or "_id" not in query:
        return None
    if any(str(key).startswith("$") for key in query):
        return None  # a $text, $where or $or beside the _id could make it a scan
    value = query["_id"]
    if isinstance(value, Mapping) and set(value) == {"$eq"}:
        value = value["$eq"]
    if _plain(value):
        ids = [value]
    elif isinstance(value, Mapping) and set(value) == {"$in"} and isinstance(value["$in"], list):
        ids = value["$in"]
    else:
        return None
    if not ids or not all(_plain(v) for v in ids):
        return None  # an empty $in is no lookup for neosqlite: it reads every document
    others = [condition for key, condition in query.items() if key != "_id"]
    if others and (len(ids) > 1 or not all(_plain_condition(c) for c in others)):
        return None  # with several ids SQLite may choose another field's index over the _id's
    return len(ids)


def _plain(value: Any) -> bool:
    """A value neosqlite compares in SQL: not a document nor a list, nor a string it takes for a
    date (those it compares by scanning)."""
    return isinstance(value, _PLAIN) and not is_datetime_value(value)


def _plain_condition(value: Any) -> bool:
    """A field's condition the store checks on the named document alone: a plain value, or
    comparisons with plain values (a ``$regex`` or ``$type`` it may evaluate on every document)."""
    if _plain(value):
        return True
    if not isinstance(value, Mapping) or not value or not set(value) <= _COMPARISONS:
        return False
    for operator, operand in value.items():
        if operator == "$exists":
            ok = isinstance(operand, bool)
        elif operator in ("$in", "$nin"):
            ok = isinstance(operand, list) and bool(operand) and all(_plain(v) for v in operand)
        else:
            ok = _plain(operand)
        if not ok:
            return False
    return True


class _ShortCommandsOnTheLoop(types.ModuleType):
    """``asyncio`` as nx-27017's connection loop sees it, but for ``to_thread``."""

    def __init__(self, lock_of: Callable[[Any, Mapping[str, Any]], threading.RLock | None]) -> None:
        super().__init__("asyncio")
        self._lock_of = lock_of

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def to_thread(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        handler = getattr(func, "__self__", None)
        msg = args[0] if len(args) == 1 and not kwargs else None
        if handler is not None and isinstance(msg, dict) and bounded_by_shape(msg):
            lock = self._lock_of(handler, msg)
            if lock is not None and lock.acquire(blocking=False):
                # one wrapper in: for an insert the command under nx-27017's wrapper that looks the
                # lock up again (under the dictionary lock); handle_command, wrapped once more for
                # createIndexes (_nx_indexes), gets that wrapper: the same lock, re-entrant (the
                # dictionary only grows)
                unwrapped = getattr(getattr(func, "__func__", None), "__wrapped__", None)
                try:
                    return unwrapped(handler, msg) if unwrapped is not None else func(msg)
                finally:
                    lock.release()
        return await asyncio.to_thread(func, *args, **kwargs)


def run_short_commands_on_the_loop() -> None:
    """Make nx-27017's connection loop run short commands itself (calling it twice is harmless).
    It relies on nx-27017's internals, which pyproject.toml pins: its server's ``asyncio`` name,
    its handler's ``_locks``, ``_conns`` and ``_dict_lock`` and its ``_msg_db_name``."""
    from nx_27017 import handler as nx_handler
    from nx_27017 import server as nx_server

    if isinstance(nx_server.asyncio, _ShortCommandsOnTheLoop):
        return

    def lock_of(handler: Any, msg: Mapping[str, Any]) -> threading.RLock | None:
        """The lock of ``msg``'s database if the loop can take it without waiting for another
        lock: the database open (opening one runs a migration, under nx's dictionary lock) and
        that lock free."""
        try:
            name = nx_handler._msg_db_name(msg)
            if name not in handler._conns or handler._dict_lock.locked():
                return None
            lock: threading.RLock | None = handler._locks.get(name)
            return lock
        except AttributeError:  # a handler without them (another mode or release): a thread
            return None

    nx_server.asyncio = _ShortCommandsOnTheLoop(lock_of)
