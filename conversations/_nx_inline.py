"""The embedded store's short commands run on its event loop when their database is free.

nx-27017 hands every command to a worker thread (``asyncio.to_thread``) so that a long one (a
report, an export, an index build) leaves its event loop answering the others, the driver's
heartbeats among them. Commands on one database run one at a time anyway (nx-27017 holds a lock
per database while one runs), so for a command that touches a few documents by their ``_id``,
the thread only adds its own cost: the hand-over, the wake-up of the loop with the answer, the
two threads taking turns at the interpreter (about a tenth of the store's CPU per message of
``bench/load.py``: docs/performance.md).

A command runs on the loop when its shape bounds its work, whatever the collection (``short``):
an insert of at most ``MOST`` documents, or a find, update, delete or findAndModify whose every
filter (at most ``MOST``) names its documents by ``_id``, one value or an ``$in`` list of at most
``MOST``. And only when its database's lock is free at that moment: taken without waiting, held
while it runs. Any other command goes to a thread as before, so the loop never waits for a lock a
long command holds, nor runs a scan.
"""

from __future__ import annotations

import asyncio
import threading
import types
from collections.abc import Callable, Mapping
from typing import Any

MOST = 256
_FILTERS = {"find": "filter", "findAndModify": "query"}  # where a command keeps its one filter
_STATEMENTS = {"update": "updates", "delete": "deletes"}  # and where its statements, each with a "q"


def short(msg: Mapping[str, Any]) -> bool:
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
    name = next(iter(body), None)
    if name == "insert":
        return set(sequences) <= {"documents"} and len(_listed(body, "documents", sequences)) <= MOST
    if name in _STATEMENTS:
        if not set(sequences) <= {_STATEMENTS[name]}:
            return False
        statements = _listed(body, _STATEMENTS[name], sequences)
        filters = [s.get("q") if isinstance(s, Mapping) else None for s in statements]
    elif name in _FILTERS and not sequences:
        filters = [body.get(_FILTERS[name])]
    else:
        return False
    return 0 < len(filters) <= MOST and all(_by_id(f) for f in filters)


def _listed(body: Mapping[str, Any], field: str, sequences: Mapping[str, list[Any]]) -> list[Any]:
    """A command's documents of ``field``: in its body, in a document sequence, or both."""
    inline = body.get(field)
    return (list(inline) if isinstance(inline, list) else []) + sequences.get(field, [])


def _by_id(query: Any) -> bool:
    if not isinstance(query, Mapping) or "_id" not in query or any(str(key).startswith("$") for key in query):
        return False  # beside the _id, a $text, $where or $or could make it a scan
    value = query["_id"]
    if not isinstance(value, Mapping):
        return True
    if set(value) == {"$eq"}:
        return not isinstance(value["$eq"], Mapping)
    if set(value) == {"$in"}:
        return isinstance(value["$in"], list) and len(value["$in"]) <= MOST
    return not any(str(key).startswith("$") for key in value)  # an embedded document as the _id


class _LoopFirst(types.ModuleType):
    """``asyncio`` as nx-27017's connection loop sees it, but for ``to_thread``."""

    def __init__(self, lock_of: Callable[[Any, Mapping[str, Any]], threading.RLock | None]) -> None:
        super().__init__("asyncio")
        self._lock_of = lock_of

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def to_thread(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        handler = getattr(func, "__self__", None)
        msg = args[0] if len(args) == 1 and not kwargs else None
        if handler is not None and isinstance(msg, dict) and short(msg):
            lock = self._lock_of(handler, msg)
            if lock is not None and lock.acquire(blocking=False):
                try:
                    return func(msg)
                finally:
                    lock.release()
        return await asyncio.to_thread(func, *args, **kwargs)


def run_short_commands_on_the_loop() -> None:
    """Make nx-27017's connection loop run short commands itself (calling it twice is harmless)."""
    from nx_27017 import handler as nx_handler
    from nx_27017 import server as nx_server

    if isinstance(nx_server.asyncio, _LoopFirst):
        return

    def lock_of(handler: Any, msg: Mapping[str, Any]) -> threading.RLock | None:
        lock_for = getattr(handler, "_lock_for", None)
        return lock_for(nx_handler._msg_db_name(msg)) if lock_for is not None else None

    nx_server.asyncio = _LoopFirst(lock_of)
