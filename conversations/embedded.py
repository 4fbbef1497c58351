"""The embedded store: the nx-27017 MongoDB wire-protocol server (SQLite underneath) on 127.0.0.1.

Used when no MongoDB URI is configured, and by the tests. The router talks to it over a real
socket with the same PyMongo code it uses against MongoDB.

Two ways to run it:

* ``process`` (the default): a child Python process. Its SQLite and BSON work runs on the child's
  own interpreter and GIL, so none of it competes with the router's event loop. The child dies
  with its parent (``PR_SET_PDEATHSIG``), and a lock file keeps two routers off one data directory.
* ``thread``: the same server on its own thread and event loop inside the router process. Cheaper
  to start, but every command's Python work shares the router's GIL; ``bench/ingest.py`` measures
  the difference.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, Literal

EmbeddedMode = Literal["process", "thread"]


PORT_FILE = "nx-27017.port"  # where a running router's embedded store listens (for the CLI)


def running_embedded_uri(data_dir: Path) -> str | None:
    """The URI of the embedded store another omnirouter process runs on ``data_dir``, if any."""
    try:
        port = int((Path(data_dir) / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


class EmbeddedStoreError(Exception):
    """The embedded store could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedMongo:
    """Start, stop and locate one embedded server whose data lives in ``data_dir``."""

    def __init__(self, data_dir: Path, mode: EmbeddedMode = "process", port: int | None = None):
        self.data_dir = Path(data_dir)
        self.mode = mode
        self.port = port or free_port()
        self._process: asyncio.subprocess.Process | None = None
        self._thread: _ServerThread | None = None
        self._lock_file: IO[str] | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def running(self) -> bool:
        if self._process is not None:
            return self._process.returncode is None
        return self._thread is not None

    async def start(self, timeout: float = 30.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._take_lock()
        try:
            if self.mode == "process":
                await self._outwait_orphan()
                await self._start_process()
            else:
                self._thread = _ServerThread(self.data_dir, self.port)
                self._thread.start()
            await self._wait_until_listening(timeout)
            (self.data_dir / PORT_FILE).write_text(str(self.port))
        except BaseException:
            await self.stop()
            raise

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and release the data directory; safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), timeout)
            except TimeoutError:
                process.kill()
                await process.wait()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.stop, timeout)
        if self._lock_file is not None:
            with contextlib.suppress(OSError):
                (self.data_dir / PORT_FILE).unlink()
            self._lock_file.close()
            self._lock_file = None

    def _take_lock(self) -> None:
        lock = open(self.data_dir / ".omnirouter.lock", "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EmbeddedStoreError(
                f"the embedded store in {self.data_dir} is in use by another omnirouter process; "
                "stop it, or point both at one MongoDB with OMNIROUTER_MONGODB_URI"
            ) from None
        self._lock_file = lock

    async def _outwait_orphan(self, timeout: float = 10.0) -> None:
        """Let the server of a router that died (or stopped without stopping it) finish exiting.

        We hold the data directory's lock, so that router is gone; its server got SIGTERM with it
        (``PR_SET_PDEATHSIG``) but may still be closing, and nx-27017 refuses to start while its
        pid file names a live process. Waited for, then killed if it lingers — only a process
        whose command line shows it is the embedded server of this very directory."""
        pid = _orphan_pid(self.data_dir)
        deadline = time.monotonic() + timeout
        while pid is not None and _alive(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + timeout
            await asyncio.sleep(0.05)
        with contextlib.suppress(OSError):  # what it names is gone (or a zombie nx-27017 would count)
            (self.data_dir / "nx-27017.pid").unlink()

    async def _start_process(self) -> None:
        console = open(self.data_dir / "nx-27017.console.log", "ab")
        with console:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "conversations._nx_child",
                "--data-dir",
                str(self.data_dir),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--pid-file",
                str(self.data_dir / "nx-27017.pid"),
                "--log-file",
                str(self.data_dir / "nx-27017.log"),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=console,
                stderr=console,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    async def _wait_until_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.returncode is not None:
                raise EmbeddedStoreError(
                    f"the embedded store exited with code {self._process.returncode}; "
                    f"see {self.data_dir / 'nx-27017.console.log'}"
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            await asyncio.sleep(0.05)
        raise EmbeddedStoreError(
            f"the embedded store did not listen on 127.0.0.1:{self.port} within {timeout:.0f} s"
        )


def _orphan_pid(data_dir: Path) -> int | None:
    """The pid in ``data_dir``'s nx-27017 pid file, if it is that directory's embedded server."""
    try:
        pid = int((data_dir / "nx-27017.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    ours = b"conversations._nx_child" in command and str(data_dir).encode() in command
    return pid if ours else None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, which a pid file check would count, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


class _ServerThread:
    """nx-27017 on its own thread and event loop inside this process (``mode = "thread"``)."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self._data_dir = data_dir
        self._port = port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, name="nx-27017", daemon=True)
        self._ready = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)

    def stop(self, timeout: float) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
        self._thread.join(timeout)

    def _run(self) -> None:
        from nx_27017.handler import NeoSQLiteHandler
        from nx_27017.server import handle_client

        from conversations._nx_child import erase_for_real

        erase_for_real()  # as in the child process: secure_delete, a WAL checkpoint that truncates
        handler = NeoSQLiteHandler(str(self._data_dir), data_dir=str(self._data_dir))

        async def serve() -> None:
            self._server = await asyncio.start_server(
                lambda r, w: handle_client(r, w, handler), "127.0.0.1", self._port
            )
            self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._server.serve_forever()

        try:
            self._loop.run_until_complete(serve())
        finally:
            self._ready.set()
            self._loop.close()

