"""``omnirouter serve``: run the router until Ctrl+C or SIGTERM, with a banner of where things are
(the web chat, the console, the API and its install token, the first admin's password)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from bot.cli.common import CliError, redact
from bot.install_token import InstallTokenError
from bot.logs import configure_logging
from bot.nlu.responses import ResponsesError
from bot.router.dialogue.domain import DomainError
from bot.secret_key import SecretKeyError
from bot.settings import Settings
from bot.web.keys import FIRST_ADMIN
from conversations.collector import settle_collector
from conversations.embedded import EmbeddedStoreError
from conversations.errors import StoreUnavailable
from conversations.private_files import write_private


def serve(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.server.log_format, settings.server.log_level)
    try:
        with asyncio.Runner(loop_factory=event_loop_factory(settings.server.event_loop)) as runner:
            runner.run(_run_server(settings))
    except EmbeddedStoreError as exc:
        raise CliError(str(exc)) from None
    except (SecretKeyError, ResponsesError, DomainError, InstallTokenError) as exc:
        raise CliError(str(exc), code=2) from None
    except StoreUnavailable:
        where = settings.store.mongodb_uri or "the embedded store"
        raise CliError(f"cannot reach the store at {redact(where)}; is MongoDB running?") from None
    return 0


UV_LOOKUP_THREADS = "16"  # libuv's pool: half of it looks host names up, the default 4 threads let 2


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the router's event loop: uvloop's, or the standard library's (``asyncio``).
    On uvloop, host names are looked up on libuv's thread pool, not the default executor: it is
    given 16 threads (``UV_THREADPOOL_SIZE`` unless set), so that a few slow names (a webhook
    receiver's) do not hold up every other lookup, the providers' included."""
    if name != "uvloop":
        return asyncio.new_event_loop
    os.environ.setdefault("UV_THREADPOOL_SIZE", UV_LOOKUP_THREADS)  # read when the pool first starts
    try:
        import uvloop
    except ImportError:
        raise CliError(
            'uvloop is not installed here: set server.event_loop = "asyncio" (OMNIROUTER_SERVER_EVENT_LOOP=asyncio)'
        ) from None
    return uvloop.new_event_loop


async def _run_server(settings: Settings) -> None:
    from bot.app import create_app

    runner = web.AppRunner(create_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    host, port = settings.server.host, settings.server.port
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise CliError(
                f"port {port} on {host} is in use (another omnirouter?); choose another with --port or OMNIROUTER_PORT"
            ) from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    _print_banner(settings, runner.app[FIRST_ADMIN])
    settle_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        print("omnirouter: stopping…", file=sys.stderr)
        await runner.cleanup()


def _print_banner(settings: Settings, first_admin: tuple[str, str] | None) -> None:
    base = settings.server.local_url
    store = (
        f"embedded, data in {settings.store.embedded_dir}/"
        if not settings.store.mongodb_uri
        else f"MongoDB at {redact(settings.store.mongodb_uri)}"
    )
    say = "" if base == "http://127.0.0.1:8080" else f" --server {base}"
    token_at = "api.token (settings)" if settings.api.token else settings.api.token_file
    print(
        f"omnirouter is running on {base} (store: {store}; event loop: {_running_loop()})\n"
        f"  web chat:  {base}/chat\n"
        f"  health:    {base}/healthz    metrics: {base}/metrics\n"
        f'  try it:    .venv/bin/omnirouter say "where is my order?"{say}\n'
        f"  console:   {base}/console\n"
        f"  API:       {base}/api    install token (superadmin): {token_at}",
        flush=True,
    )
    if first_admin is not None:
        _show_first_admin(settings, *first_admin)
    print("Stop with Ctrl+C.", flush=True)


def _running_loop() -> str:
    """The event loop's kind as the banner names it: ``uvloop`` or ``asyncio``."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


def _show_first_admin(settings: Settings, login: str, password: str) -> None:
    """The first admin's password on the terminal; when the output is not one (a service's log, a
    pipe), in a file only its owner can read, and the output says where."""
    if sys.stdout.isatty():
        print(
            f"  first run: log in as {login!r} with password {password!r} — shown only this once;\n"
            "             add agents under Admin or with `omnirouter agent add NAME`",
            flush=True,
        )
        return
    path = Path(settings.console.first_admin_file)
    try:
        write_private(path, f"login: {login}\npassword: {password}\n")
    except OSError as exc:
        print(
            f"  first run: could not write the admin's password to {path} ({exc.strerror}); "
            "add a superadmin with `omnirouter agent add NAME --role superadmin`",
            flush=True,
        )
        return
    print(
        f"  first run: log in as {login!r} with the password in {path} (readable by this user only;\n"
        "             delete it once you have logged in); add agents under Admin or with "
        "`omnirouter agent add NAME`",
        flush=True,
    )
