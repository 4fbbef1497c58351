"""A database's collection names on the embedded store, read once a schema version.

nx-27017 asks neosqlite for every collection name of a database before each ``find`` and each
``insert`` (is the collection there?), and neosqlite reads them from ``sqlite_master`` each time:
a scan of every table and index the database holds, then a filter in Python (3.2 % of the store's
samples under ``bench/load.py``, and the one-commit check's own lookup 0.8 %). SQLite counts every
change to a database's schema in its schema cookie (``PRAGMA schema_version``), whichever
connection makes it. ``remember_collection_names`` keeps the names a connection read outside a
transaction with the cookie they were read at, and answers from them while the cookie is the same;
any other cookie reads the names again. Names read while a transaction was open are not kept: a
rollback takes the cookie back, and another change may then reach the same number with other
tables. A committed schema has one cookie, so names kept from one serve a transaction that has
not changed it.

nx-27017 asks for the names under the database's lock, which no transaction of that connection
begins or ends without, with two exceptions that run under the ``admin`` database's lock: a
client's ``commitTransaction`` / ``abortTransaction`` and ``listDatabases``. The router uses
neither on the embedded store; a transaction that began and ended wholly between the two checks
around a read of ``listDatabases`` could still leave its names kept until the next change.
"""

from __future__ import annotations

import functools
from typing import Any

from neosqlite import Connection  # type: ignore[import-untyped]

_KEPT = "_omnirouter_collection_names"  # on the neosqlite connection: (sqlite3 connection, cookie, names)


def remember_collection_names() -> None:
    """Make neosqlite's ``Connection.list_collection_names`` answer from the names last read at
    the database's schema cookie (calling it twice is harmless)."""
    read = Connection.list_collection_names
    if getattr(read, "_remembers", False):
        return

    @functools.wraps(read)
    def list_collection_names(self: Any) -> list[str]:
        db = self.db
        outside = not db.in_transaction  # before the read: a transaction may end under it
        cookie = db.execute("PRAGMA schema_version").fetchone()[0]
        kept = self.__dict__.get(_KEPT)
        if kept is not None and kept[0] is db and kept[1] == cookie:
            return list(kept[2])
        names: list[str] = read(self)
        if outside and not db.in_transaction:
            self.__dict__[_KEPT] = (db, cookie, tuple(names))
        return names

    list_collection_names._remembers = True  # type: ignore[attr-defined]
    Connection.list_collection_names = list_collection_names
