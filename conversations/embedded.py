"""The embedded store: the nx-27017 MongoDB wire-protocol server (SQLite underneath) on a Unix socket.

Used when no MongoDB URI is configured, and by the tests. The router talks to it over a real
socket with the same PyMongo code it uses against MongoDB.

nx-27017 has no authentication, so only the router's own user may reach it: it listens on a Unix
socket (0600) in a 0700 directory and on no TCP port; its data directory is 0700 and every file in
it 0600 (a directory an earlier release left open is tightened at start). The socket lives in the
data directory when its path fits a socket address (107 bytes), else in a private directory under
``$XDG_RUNTIME_DIR`` or the temporary directory; ``nx-27017.socket`` in the data directory names
it either way (how the CLI finds a running router's store).

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
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import quote

from conversations.private_files import PRIVATE_DIR, PRIVATE_FILE, open_private, write_private

EmbeddedMode = Literal["process", "thread"]

SOCKET_NAME = "nx-27017.sock"  # PyMongo takes a host ending in .sock for a Unix socket
SOCKET_FILE = "nx-27017.socket"  # in the data directory: the path of the socket (for the CLI)
_MAX_SOCKET_PATH = 107  # bytes in a Unix socket address, less the terminating NUL


def socket_uri(path: Path) -> str:
    """The MongoDB URI of a server on the Unix socket at ``path``."""
    return f"mongodb://{quote(str(path), safe='')}/?directConnection=true"


def running_embedded_uri(data_dir: Path) -> str | None:
    """The URI of the embedded store another omnirouter process runs on ``data_dir``, if any."""
    try:
        path = Path((Path(data_dir) / SOCKET_FILE).read_text().strip())
        if not stat.S_ISSOCK(path.stat().st_mode):
            return None
    except (OSError, ValueError):
        return None
    return socket_uri(path)


class EmbeddedStoreError(Exception):
    """The embedded store could not be started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedMongo:
    """Start, stop and locate one embedded server whose data lives in ``data_dir``."""

    def __init__(self, data_dir: Path, mode: EmbeddedMode = "process"):
        self.data_dir = Path(data_dir)
        self.mode = mode
        self._socket: Path | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._thread: _ServerThread | None = None
        self._lock_file: IO[str] | None = None

    @property
    def socket_path(self) -> Path:
        """Where the server listens (known once ``start`` has begun; the same after a restart)."""
        if self._socket is None:
            raise EmbeddedStoreError("the embedded store has not been started")
        return self._socket

    @property
    def uri(self) -> str:
        return socket_uri(self.socket_path)

    @property
    def running(self) -> bool:
        if self._process is not None:
            return self._process.returncode is None
        return self._thread is not None

    async def start(self, timeout: float = 30.0) -> None:
        try:
            make_private(self.data_dir)
            self._take_lock()
        except PermissionError as exc:
            raise EmbeddedStoreError(
                f"cannot open the embedded store in {self.data_dir} ({exc.strerror}): only the user the router "
                "runs as may"
            ) from None
        try:
            self._socket = _socket_path(self.data_dir)
            if self.mode == "process":
                await self._outwait_orphan()
                await self._start_process()
            else:
                self._thread = _ServerThread(self.data_dir, self._socket)
                self._thread.start()
            await self._wait_until_listening(timeout)
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
            if self._socket is not None:  # a server that was killed leaves its socket file
                with contextlib.suppress(OSError):
                    self._socket.unlink()
            self._lock_file.close()
            self._lock_file = None

    def _take_lock(self) -> None:
        lock = os.fdopen(open_private(self.data_dir / ".omnirouter.lock", os.O_RDWR), "a+")
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
        console = os.fdopen(open_private(self.data_dir / "nx-27017.console.log", os.O_WRONLY | os.O_APPEND), "ab")
        with console:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "conversations._nx_child",
                "--data-dir",
                str(self.data_dir),
                "--socket",
                str(self.socket_path),
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
                _, writer = await asyncio.open_unix_connection(self.socket_path)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return
            await asyncio.sleep(0.05)
        raise EmbeddedStoreError(f"the embedded store did not listen on {self.socket_path} within {timeout:.0f} s")


def make_private(data_dir: Path) -> None:
    """The data directory made (or tightened to) 0700 and each file in it 0600: nx-27017 has no
    authentication, so its files are the store's only guard. Files only, not subdirectories: the
    server keeps everything at the top."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    os.chmod(data_dir, PRIVATE_DIR)
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                os.chmod(entry.path, PRIVATE_FILE)
    with contextlib.suppress(FileNotFoundError):
        (data_dir / "nx-27017.port").unlink()  # where an earlier release's server listened, on TCP


def _socket_path(data_dir: Path) -> Path:
    """Where the server of ``data_dir`` listens, written to its ``SOCKET_FILE``: the data
    directory itself when the path fits a socket address, else a private directory elsewhere
    (the one named before, if it is still ours and private, so a restart listens where clients
    expect it)."""
    path = data_dir.absolute() / SOCKET_NAME  # a client may run elsewhere (another directory)
    if len(os.fsencode(path)) > _MAX_SOCKET_PATH:
        path = _private_runtime_dir(data_dir) / SOCKET_NAME
    write_private(data_dir / SOCKET_FILE, f"{path}\n")
    return path


def _private_runtime_dir(data_dir: Path) -> Path:
    with contextlib.suppress(OSError, ValueError):
        before = Path((data_dir / SOCKET_FILE).read_text().strip()).parent
        info = before.lstat()
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == PRIVATE_DIR:
            return before
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = runtime if runtime and len(os.fsencode(runtime)) < 60 and os.access(runtime, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="omnirouter-", dir=base))  # 0700, a name nobody could guess


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

    def __init__(self, data_dir: Path, socket_path: Path) -> None:
        self._data_dir = data_dir
        self._socket_path = socket_path
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

    def _listening(self, server: asyncio.Server) -> None:
        self._server = server
        self._ready.set()

    def _run(self) -> None:
        from conversations._nx_child import build_handler, serve

        try:
            handler = build_handler(str(self._data_dir))
            self._loop.run_until_complete(serve(handler, str(self._socket_path), self._listening))
        finally:
            # the connections' handlers outlive the server: ended here, not destroyed pending at close
            # (and their cancellation is no error to report: Python 3.11's stream callback would)
            self._loop.set_exception_handler(_quiet_about_cancellation)
            leftover = asyncio.all_tasks(self._loop)
            for task in leftover:
                task.cancel()
            if leftover:
                self._loop.run_until_complete(asyncio.gather(*leftover, return_exceptions=True))
            self._ready.set()
            self._loop.close()


def _quiet_about_cancellation(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    if not isinstance(context.get("exception"), asyncio.CancelledError):
        loop.default_exception_handler(context)
