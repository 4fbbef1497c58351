"""The embedded server's lifecycle (start, persist, lock, stop, thread mode), who may open it
(the router's own user only: a Unix socket, a 0700 directory, 0600 files), its SQLite connections
(secure delete) and its logs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import sqlite3
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import neosqlite  # type: ignore[import-untyped]
import pytest
from pymongo import TEXT

from conversations._nx_child import erase_for_real, index_text_only_when_it_changes, narrow_text_triggers
from conversations.embedded import SOCKET_FILE, EmbeddedMode, EmbeddedMongo, EmbeddedStoreError, running_embedded_uri
from conversations.repositories import Repositories
from tests import factories
from tests.conftest import raw_database_of


async def test_data_survives_a_restart_and_the_child_is_gone_after_stop(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    pid = int((tmp_path / "store" / "nx-27017.pid").read_text())
    store = Repositories.connect(server.uri, "persist")
    await factories.account(store, "kept")
    await store.close()
    await server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the child process has exited

    again = EmbeddedMongo(tmp_path / "store")
    await again.start()
    store = Repositories.connect(again.uri, "persist")
    try:
        assert (await store.accounts.get_account("kept")) is not None
    finally:
        await store.close()
        await again.stop()


async def test_a_second_server_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    first = EmbeddedMongo(tmp_path)
    await first.start()
    try:
        with pytest.raises(EmbeddedStoreError, match="in use by another omnirouter"):
            await EmbeddedMongo(tmp_path).start()
    finally:
        await first.stop()
    second = EmbeddedMongo(tmp_path)  # the lock is released with the first server
    await second.start()
    await second.stop()


async def test_thread_mode_serves_the_same_protocol(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path, mode="thread")
    await server.start()
    store = Repositories.connect(server.uri, "threaded")
    try:
        await store.ensure_indexes()
        await store.client.ping()
    finally:
        await store.close()
        await server.stop()


async def test_stop_twice_is_harmless(tmp_path: Path) -> None:
    server = EmbeddedMongo(tmp_path)
    await server.start()
    await server.stop()
    await server.stop()
    assert not server.running


async def test_a_server_left_behind_by_a_dead_router_is_outwaited_and_replaced(tmp_path: Path) -> None:
    """A router that died leaves its server closing (or, stuck, still running) with its pid file
    in place; nx-27017 would refuse to start beside it. The next start waits it out, kills it if it
    lingers, and serves the same data."""
    first = EmbeddedMongo(tmp_path)
    await first.start()
    store = Repositories.connect(first.uri, "left")
    await factories.account(store, "kept")
    await store.close()
    orphan = first._process
    assert orphan is not None
    first._process = None  # the router "dies": its lock goes, its server stays (SIGSTOP: it cannot exit)
    os.kill(orphan.pid, signal.SIGSTOP)
    await first.stop()
    second = EmbeddedMongo(tmp_path)
    second_start = asyncio.create_task(second.start())
    try:
        await asyncio.wait_for(asyncio.shield(second_start), 1.0)
        raise AssertionError("started beside a live server of the same directory")
    except TimeoutError:
        pass  # it waits for the old server first
    os.kill(orphan.pid, signal.SIGCONT)
    orphan.terminate()  # the death signal of its parent arrives
    await orphan.wait()
    async with asyncio.timeout(30):
        await second_start
    store = Repositories.connect(second.uri, "left")
    try:
        assert (await store.accounts.get_account("kept")) is not None
    finally:
        await store.close()
        await second.stop()


# --- only the router's user may open the store ---------------------------------------------


async def _write_something(server: EmbeddedMongo) -> Repositories:
    """A store with a write in it, kept open (so the SQLite WAL and SHM files exist)."""
    store = Repositories.connect(server.uri, "private")
    await factories.agent(store, "a1", password_hash="scrypt$secret")
    return store


def _modes(data_dir: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.lstat().st_mode) for p in data_dir.iterdir()}


@pytest.mark.parametrize("mode", ["process", "thread"])
async def test_the_data_directory_is_0700_and_every_file_in_it_0600(tmp_path: Path, mode: EmbeddedMode) -> None:
    server = EmbeddedMongo(tmp_path / "store", mode=mode)
    await server.start()
    store = await _write_something(server)
    try:
        modes = _modes(tmp_path / "store")
        assert stat.S_IMODE((tmp_path / "store").stat().st_mode) == 0o700
        assert {"private.db", "private.db-wal", "private.db-shm", ".omnirouter.lock"} <= set(modes)
        if mode == "process":
            assert {"nx-27017.log", "nx-27017.console.log", "nx-27017.pid"} <= set(modes)
        assert {name: m for name, m in modes.items() if m != 0o600} == {}
    finally:
        await store.close()
        await server.stop()


def _listening_tcp_inodes() -> set[str]:
    """The socket inodes of every listening TCP socket on the machine (IPv4 and IPv6)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    return inodes


@pytest.mark.parametrize("mode", ["process", "thread"])
async def test_the_store_listens_on_no_tcp_port(tmp_path: Path, mode: EmbeddedMode) -> None:
    listening_before = _socket_inodes(os.getpid()) & _listening_tcp_inodes()
    server = EmbeddedMongo(tmp_path, mode=mode)
    await server.start()
    try:
        pid = server._process.pid if server._process is not None else os.getpid()
        assert _socket_inodes(pid) & _listening_tcp_inodes() <= listening_before
        assert unquote(urlsplit(server.uri).netloc) == str(server.socket_path)  # the URI names the socket
        assert str(server.socket_path) in Path("/proc/net/unix").read_text()
    finally:
        await server.stop()


_AS_NOBODY = """
import os, sys, pwd
from pymongo import MongoClient
from pymongo.errors import PyMongoError
uri, db_file = sys.argv[1], sys.argv[2]
nobody = pwd.getpwnam("nobody")
os.setgroups([])
os.setgid(nobody.pw_gid)
os.setuid(nobody.pw_uid)
try:
    MongoClient(uri, serverSelectionTimeoutMS=3000).admin.command("ping")
    print("connected")
except PyMongoError as exc:
    print("refused:", exc)
try:
    open(db_file, "rb").read(16)
    print("read the database file")
except OSError as exc:
    print("file refused:", exc.strerror)
"""


@pytest.mark.parametrize("mode", ["process", "thread"])
async def test_another_local_user_cannot_connect_nor_read_the_files(tmp_path: Path, mode: EmbeddedMode) -> None:
    """As root (here and in CI): a process that drops to ``nobody`` tries the store's URI and its
    database file. Not as root: the modes that make that so."""
    parent = Path(tempfile.mkdtemp(prefix="omnirouter-open-"))  # reachable by anyone, as a var/ is
    parent.chmod(0o755)
    server = EmbeddedMongo(parent / "store", mode=mode)
    await server.start()
    store = await _write_something(server)
    try:
        db_file = parent / "store" / "private.db"
        if os.geteuid() == 0:
            nobody = await asyncio.create_subprocess_exec(
                sys.executable, "-c", _AS_NOBODY, server.uri, str(db_file), stdout=asyncio.subprocess.PIPE
            )
            out = (await nobody.communicate())[0].decode()
            assert "refused:" in out and "Permission denied" in out, out
            assert "file refused: Permission denied" in out, out
        else:
            assert stat.S_IMODE(server.socket_path.stat().st_mode) == 0o600
            assert stat.S_IMODE(server.socket_path.parent.stat().st_mode) == 0o700
            assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    finally:
        await store.close()
        await server.stop()
        shutil.rmtree(parent)


async def test_an_open_directory_of_an_earlier_release_is_tightened_at_start(tmp_path: Path) -> None:
    """What the release before wrote: a 0755 directory, 0644 files, a port file."""
    data_dir = tmp_path / "store"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    with sqlite3.connect(data_dir / "kept.db") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x)")
    for name in ("nx-27017.log", "nx-27017.console.log", ".omnirouter.lock", "nx-27017.port", "kept.db-wal"):
        (data_dir / name).write_text("")
    for path in data_dir.iterdir():
        path.chmod(0o644)
    server = EmbeddedMongo(data_dir)
    await server.start()
    try:
        assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
        modes = _modes(data_dir)
        assert "nx-27017.port" not in modes and modes["kept.db"] == 0o600
        assert {name: m for name, m in modes.items() if m != 0o600} == {}
    finally:
        await server.stop()


async def test_a_data_directory_too_deep_for_a_socket_address_gets_a_private_one_elsewhere(tmp_path: Path) -> None:
    """A Unix socket's path has at most 107 bytes; a deeper data directory's socket lives in a
    0700 directory of its own, named in the data directory, the same after a restart, and the
    CLI finds it there."""
    data_dir = tmp_path / ("d" * 60) / ("e" * 60)
    server = EmbeddedMongo(data_dir)
    await server.start()
    first = server.socket_path
    try:
        assert first.parent != data_dir and stat.S_IMODE(first.parent.stat().st_mode) == 0o700
        assert len(os.fsencode(first)) <= 107
        assert (data_dir / SOCKET_FILE).read_text().strip() == str(first)
        assert running_embedded_uri(data_dir) == server.uri
        store = Repositories.connect(running_embedded_uri(data_dir) or "", "deep")
        await factories.account(store, "kept")
        await store.close()
    finally:
        await server.stop()
    again = EmbeddedMongo(data_dir, mode="thread")
    await again.start()
    try:
        assert again.socket_path == first
    finally:
        await again.stop()
        shutil.rmtree(first.parent)


async def test_the_cli_finds_a_running_routers_store_by_its_socket(tmp_path: Path) -> None:
    assert running_embedded_uri(tmp_path) is None
    server = EmbeddedMongo(tmp_path)
    await server.start()
    try:
        uri = running_embedded_uri(tmp_path)
        assert uri == server.uri
        store = Repositories.connect(uri or "", "cli")
        try:
            await store.client.ping()
        finally:
            await store.close()
    finally:
        await server.stop()
    assert running_embedded_uri(tmp_path) is None  # its socket went with it


def test_every_connection_neosqlite_opens_deletes_securely_and_is_the_owners_alone(tmp_path: Path) -> None:
    """What ``erase_for_real`` adds to each connection the server's SQLite layer configures (on
    opening a database, and again after evicting one): ``secure_delete`` on whatever SQLite's
    build default (Debian's is on, so it is switched off first), and a database file made 0600
    before its WAL and SHM files exist, whatever the umask (the thread mode's is the router's)."""
    erase_for_real()
    previous = os.umask(0o022)
    try:
        connection = neosqlite.Connection(str(tmp_path / "fresh.db"))
        connection.db.execute("CREATE TABLE t (x)")
        connection.db.execute("INSERT INTO t VALUES (1)")
    finally:
        os.umask(previous)
    assert _modes(tmp_path) == {"fresh.db": 0o600, "fresh.db-wal": 0o600, "fresh.db-shm": 0o600}
    connection.db.execute("PRAGMA secure_delete = OFF")
    connection._configure_connection()  # what neosqlite runs on every (re)connection
    assert connection.db.execute("PRAGMA secure_delete").fetchone() == (1,)
    connection.close()


async def test_the_server_logs_each_line_once_to_its_log_file(tmp_path: Path) -> None:
    """The console log holds what escapes logging (a crash's traceback), not a second copy."""
    server = EmbeddedMongo(tmp_path)
    await server.start()
    store = Repositories.connect(server.uri, "logged")
    try:
        await raw_database_of(store).command({"secure_delete": 1})  # a command nx-27017 logs at INFO
    finally:
        await store.close()
        await server.stop()
    assert "Calling db.command with" in (tmp_path / "nx-27017.log").read_text()
    assert (tmp_path / "nx-27017.console.log").read_text() == ""


def _text_update_changes(connection: Any, change: dict[str, Any]) -> int:
    """The rows SQLite wrote (the document's and its trigger's) for one update."""
    before = connection.db.total_changes
    connection["messages"].update_one({"_id": "m1"}, {"$set": change})
    return int(connection.db.total_changes - before)


def _found(connection: Any, word: str) -> list[str]:
    return [doc["_id"] for doc in connection["messages"].find({"$text": {"$search": word}})]


def test_a_text_index_is_rewritten_only_when_its_field_changes(tmp_path: Path) -> None:
    """neosqlite's update trigger re-indexes a document's text on every update (a message's
    dispatch state, decision, send result); ``index_text_only_when_it_changes`` narrows it to the
    updates that change the text, on a new index and on one an earlier release's store holds, and
    the index still follows the text."""
    index_text_only_when_it_changes()
    connection = neosqlite.Connection(str(tmp_path / "store.db"))
    connection["messages"].create_index([("search_text", TEXT)], name="search_text")
    connection["messages"].insert_one({"_id": "m1", "search_text": "parcel", "dispatch_state": "pending"})
    assert _text_update_changes(connection, {"dispatch_state": "done"}) == 1  # the row alone
    assert _text_update_changes(connection, {"search_text": "refund"}) > 1
    assert (_found(connection, "refund"), _found(connection, "parcel")) == (["m1"], [])

    # the trigger as an earlier release's store has it: narrowed when the database is opened
    [(name, sql)] = connection.db.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE '%fts_update'")
    connection.db.execute(f"DROP TRIGGER {name}")
    connection.db.execute(re.sub(r" WHEN .*?(?=\s+BEGIN)", "", sql, flags=re.DOTALL))
    assert _text_update_changes(connection, {"dispatch_state": "pending"}) > 1
    connection.close()
    connection = neosqlite.Connection(str(tmp_path / "store.db"))
    assert _text_update_changes(connection, {"dispatch_state": "done"}) == 1
    assert _text_update_changes(connection, {"search_text": "invoice"}) > 1
    assert (_found(connection, "invoice"), _found(connection, "refund")) == (["m1"], [])
    connection.close()


def test_a_text_trigger_that_cannot_be_replaced_is_left_and_the_connection_usable(tmp_path: Path) -> None:
    """Narrowing is worth a little CPU, not a database that does not open: a trigger SQLite will
    not let us replace (here a connection that may only read) stays as it was, outside any
    transaction."""
    connection = neosqlite.Connection(str(tmp_path / "store.db"))
    connection["messages"].create_index([("search_text", TEXT)], name="search_text")
    [(name, sql)] = connection.db.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE '%fts_update'")
    connection.db.execute(f"DROP TRIGGER {name}")
    wide = re.sub(r" WHEN .*?(?=\s+BEGIN)", "", sql, flags=re.DOTALL)
    connection.db.execute(wide)
    connection.db.execute("PRAGMA query_only = ON")
    narrow_text_triggers(connection.db)
    assert connection.db.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone() == (wide,)
    assert not connection.db.in_transaction
    connection.close()
