"""Entry point of the embedded store's child process: nx-27017 that dies with its parent.

Run as ``python -m conversations._nx_child --data-dir DIR --port N ...`` by ``EmbeddedMongo``.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Any


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so no server is orphaned."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def erase_for_real() -> None:
    """Make SQLite under nx-27017 leave no copy of deleted data in the store's files.

    * ``PRAGMA secure_delete = ON`` on every connection: deleted rows, index entries and freed
      pages are overwritten with zeros instead of lingering in the file. nx-27017 opens its
      connections itself (one neosqlite ``Connection`` per database file, reopened after it
      evicts one) and neither it nor neosqlite takes pragmas, so this wraps the one method
      neosqlite runs on every (re)connection, ``Connection._configure_connection``.
    * neosqlite's ``wal_checkpoint`` command takes its mode only as a Python keyword, which nx
      never passes (it hands over the command document): wrapped to read ``mode`` from the
      document, so the store's ``{"wal_checkpoint": 1, "mode": "TRUNCATE"}`` (sent after an
      erasure, ``Store.checkpoint_embedded``) empties the write-ahead log instead of leaving it.

    Both must run before the server opens its first database; calling it twice is harmless.
    """
    from neosqlite import connection  # type: ignore[import-untyped]

    configure = connection.Connection._configure_connection
    if getattr(configure, "secure_delete", False):
        return

    def configure_securely(self: Any) -> None:
        configure(self)
        self.db.execute("PRAGMA secure_delete = ON")

    checkpoint = connection._COMMAND_DISPATCH["wal_checkpoint"]

    def checkpoint_in_mode(self: Any, command: Any, **options: Any) -> Any:
        if isinstance(command, dict) and "mode" in command:
            options.setdefault("mode", command["mode"])
        return checkpoint(self, command, **options)

    configure_securely.secure_delete = True  # type: ignore[attr-defined]
    connection.Connection._configure_connection = configure_securely
    connection._COMMAND_DISPATCH["wal_checkpoint"] = checkpoint_in_mode


def main() -> None:
    _die_with_parent()
    erase_for_real()
    from nx_27017.nx_27017 import main as nx_main

    sys.argv[0] = "nx-27017"
    nx_main()


if __name__ == "__main__":
    main()
