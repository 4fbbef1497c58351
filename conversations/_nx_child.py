"""The embedded store's server: nx-27017 on a Unix socket, as a child process that dies with its parent.

Run as ``python -m conversations._nx_child --data-dir DIR --socket PATH --pid-file F --log-file F``
by ``EmbeddedMongo``; its thread mode uses ``build_handler`` and ``serve`` inside the router.

nx-27017 has no authentication and listens on TCP when run its own way; here it listens only on a
Unix socket (mode 0600, in a 0700 directory), so only the user the router runs as can reach it.
The child's umask is 0o077: its log, pid file and SQLite files are 0600. In the thread mode the
umask is the router's, so every connection makes its database file 0600 before SQLite creates the
WAL and SHM files beside it (SQLite gives them the database file's mode): see ``erase_for_real``.
The child logs to its log file only; the console log (its stdout and stderr) holds what escapes
logging, such as a crash's traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from nx_27017.handler import NeoSQLiteHandler
from nx_27017.server import handle_client

from conversations._nx_catalog import remember_collection_names
from conversations._nx_commits import one_commit_a_command
from conversations._nx_indexes import keep_partial_indexes_partial, rewrite_schema
from conversations._nx_inline import run_short_commands_on_the_loop
from conversations.children import die_with_parent
from conversations.collector import settle_collector
from conversations.private_files import PRIVATE_FILE

_LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - [%(process)d] - %(message)s"  # nx-27017's own


def build_handler(data_dir: str) -> NeoSQLiteHandler:
    """The wire-protocol handler over the SQLite files in ``data_dir`` (one per database), each
    readable by its owner only, deleting for real, a write of several documents in one commit, partial indexes partial,
    collection names read once a schema version; short commands run on the server's loop."""
    erase_for_real()
    remember_collection_names()
    index_text_only_when_it_changes()
    one_commit_a_command()  # before keep_partial_indexes_partial, which wraps handle_command again
    keep_partial_indexes_partial()
    run_short_commands_on_the_loop()
    return NeoSQLiteHandler(data_dir, data_dir=data_dir)


async def serve(
    handler: NeoSQLiteHandler, socket_path: str, listening: Callable[[asyncio.Server], None] = lambda server: None
) -> None:
    """Serve ``handler`` on a Unix socket at ``socket_path`` (0600) until the server is closed;
    the socket file goes with it. The caller holds the data directory's lock, so a socket file
    already there was left by a server that died."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    server = await asyncio.start_unix_server(lambda r, w: handle_client(r, w, handler), path=socket_path)
    try:
        os.chmod(socket_path, PRIVATE_FILE)
        listening(server)
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve_forever()
    finally:
        server.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)


def _exit(signum: int, frame: FrameType | None) -> None:
    """Before the event loop runs, a stop signal ends the process at once."""
    sys.exit(0)


async def _serve_until_stopped(handler: NeoSQLiteHandler, socket_path: str) -> None:
    """Serve until SIGTERM or SIGINT. The loop takes the signals and cancels this task, so the
    server closes from the loop: an exception raised by a Python signal handler lands in whatever
    frame runs at that moment, and in a finalizer (``__del__``) it is printed and ignored, leaving
    the server running until its parent kills it."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)
    settle_collector()
    await serve(handler, socket_path)


def erase_for_real() -> None:
    """Make SQLite under nx-27017 leave no copy of deleted data in the store's files, and no file
    others could read.

    * ``PRAGMA secure_delete = ON`` on every connection: deleted rows, index entries and freed
      pages are overwritten with zeros instead of lingering in the file. nx-27017 opens its
      connections itself (one neosqlite ``Connection`` per database file, reopened after it
      evicts one) and neither it nor neosqlite takes pragmas, so this wraps the one method
      neosqlite runs on every (re)connection, ``Connection._configure_connection``. The same
      wrapper makes the database file 0600 before the first pragma (the WAL and SHM files SQLite
      creates afterwards take its mode), whatever the umask.
    * neosqlite's ``wal_checkpoint`` command takes its mode only as a Python keyword, which nx
      never passes (it hands over the command document): wrapped to read ``mode`` from the
      document, so the store's ``{"wal_checkpoint": 1, "mode": "TRUNCATE"}`` (sent after an
      erasure, ``StoreClient.checkpoint_embedded``) empties the write-ahead log instead of leaving it.
      Before it checkpoints, the same command merges every full-text index of the database
      (FTS5 ``optimize``, the text indexes ``$text`` runs on): a deleted document's terms stay in
      an FTS5 index's older segments, beside a deletion marker, until a merge drops them, and
      SQLite 3.40 has no FTS5 ``secure-delete``. The merge rewrites the index (its freed pages
      zeroed by ``secure_delete``), so it costs what the index holds.

    Both must run before the server opens its first database; calling it twice is harmless.
    """
    from neosqlite import connection  # type: ignore[import-untyped]

    configure = connection.Connection._configure_connection
    if getattr(configure, "secure_delete", False):
        return

    def configure_securely(self: Any) -> None:
        with contextlib.suppress(FileNotFoundError):  # an in-memory database has no file
            os.chmod(self.db_path, PRIVATE_FILE)
        configure(self)
        self.db.execute("PRAGMA secure_delete = ON")

    checkpoint = connection._COMMAND_DISPATCH["wal_checkpoint"]

    def checkpoint_in_mode(self: Any, command: Any, **options: Any) -> Any:
        if isinstance(command, dict) and "mode" in command:
            options.setdefault("mode", command["mode"])
            _merge_text_indexes(self.db)
        return checkpoint(self, command, **options)

    configure_securely.secure_delete = True  # type: ignore[attr-defined]
    connection.Connection._configure_connection = configure_securely
    connection._COMMAND_DISPATCH["wal_checkpoint"] = checkpoint_in_mode


# a text index's update trigger as neosqlite writes it for a top-level field: the event, and the path
_TEXT_UPDATE_TRIGGER = re.compile(
    r"(?P<event>AFTER UPDATE ON \S+)(?P<body>\s+BEGIN\s.*?lower\(json_extract\(new\.data, '(?P<path>\$[^']*)'\)\).*)",
    re.DOTALL,
)


def index_text_only_when_it_changes() -> None:
    """Make a text index of the embedded store re-index a document only when an update changes
    the indexed field (or the row).

    neosqlite keeps each text index (an FTS5 table) in step with triggers, and its update trigger
    deletes and re-inserts the document's terms on every update, whatever it changes: a message's
    dispatch state, decision or send result would rewrite its search terms each time (about a
    sixth of such an update's cost to the store, ``bench/store_ops.py``). The trigger gets a
    ``WHEN`` clause comparing the old and the new field; what the index holds is the same.
    Triggers are narrowed when neosqlite creates a text index and whenever it opens a database
    (those an earlier release created), so this must run before the server opens its first
    database; calling it twice is harmless. A text index over a nested field (neosqlite's
    ``json_tree`` form) is left as it is, and so is a trigger SQLite would not let us replace."""
    from neosqlite import connection
    from neosqlite.collection import index_manager  # type: ignore[import-untyped]

    configure = connection.Connection._configure_connection
    if getattr(configure, "text_triggers_narrowed", False):
        return

    @functools.wraps(configure)  # keeps erase_for_real's mark
    def configure_and_narrow(self: Any) -> None:
        configure(self)
        narrow_text_triggers(self.db)

    create_text_index = index_manager.IndexManager._create_fts_index

    @functools.wraps(create_text_index)
    def create_narrowed(self: Any, *args: Any, **kwargs: Any) -> Any:
        created = create_text_index(self, *args, **kwargs)
        narrow_text_triggers(self.collection.db)
        return created

    configure_and_narrow.text_triggers_narrowed = True  # type: ignore[attr-defined]
    connection.Connection._configure_connection = configure_and_narrow
    index_manager.IndexManager._create_fts_index = create_narrowed


def narrow_text_triggers(db: Any) -> None:
    """Give every text index update trigger of ``db`` that has none its ``WHEN`` clause."""
    triggers = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '%\\_fts\\_update' ESCAPE '\\'"
    ).fetchall()
    for name, sql in triggers:
        found = _TEXT_UPDATE_TRIGGER.search(sql)
        if found is None:  # narrowed already, or a nested field's
            continue
        path = found["path"]
        changed = f"old.id IS NOT new.id OR json_extract(old.data, '{path}') IS NOT json_extract(new.data, '{path}')"
        quoted = '"' + str(name).replace('"', '""') + '"'
        narrowed = f"{sql[: found.end('event')]} WHEN {changed}{sql[found.end('event') :]}"
        rewrite_schema(db, f"DROP TRIGGER {quoted}", narrowed, f"text trigger {name}")


def _merge_text_indexes(db: Any) -> None:
    """Merge every FTS5 table of ``db`` into one segment, dropping what deletions marked."""
    tables = db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%USING FTS5%'"
    ).fetchall()
    for (name,) in tables:
        quoted = '"' + str(name).replace('"', '""') + '"'
        db.execute(f"INSERT INTO {quoted}({quoted}) VALUES ('optimize')")
    db.commit()


def main() -> None:
    die_with_parent()
    os.umask(0o077)
    parser = argparse.ArgumentParser(prog="nx-27017")
    for option in ("--data-dir", "--socket", "--pid-file", "--log-file"):
        parser.add_argument(option, required=True)
    args = parser.parse_args()
    from nx_27017.daemon import remove_pid_file, write_pid_file

    to_file = logging.FileHandler(args.log_file)
    to_file.setFormatter(logging.Formatter(_LOG_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[to_file])  # the log file alone, once
    if not write_pid_file(args.pid_file):  # nx-27017's own check: no second server beside a live one
        sys.exit(1)
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(_serve_until_stopped(build_handler(args.data_dir), args.socket))
    finally:
        remove_pid_file(args.pid_file)


if __name__ == "__main__":
    main()
