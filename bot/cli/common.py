"""What the ``omnirouter`` commands share: the one-line error and its exit status, the settings
(file, environment, command-line overrides), the store (the configured one, or the embedded store a
running router holds), and the install token for a running router's API.

Every command module imports from here and from nowhere else in ``bot.cli``, so the package has
no circle: ``bot.cli`` -> ``bot.cli.parser`` -> (when a command runs) its module -> ``bot.cli.common``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.install_token import InstallTokenError, token_for_cli
from bot.settings import Settings, load_settings
from conversations.embedded import EmbeddedMongo, EmbeddedStoreError, running_embedded_uri
from conversations.errors import StoreUnavailable
from conversations.models import utcnow
from conversations.repositories import Repositories


class CliError(Exception):
    """A problem to report in one line; ``code`` is the exit status (1: the router or the store,
    2: what the user asked cannot work)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings file (``--config``) and environment, with ``serve``'s overrides applied."""
    settings = load_settings(args.config)
    overrides = {
        key: value
        for key, value in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "log_format": getattr(args, "log_format", None),
        }.items()
        if value is not None
    }
    return settings.replace("server", **overrides) if overrides else settings


def router_url(args: argparse.Namespace, settings: Settings) -> str:
    """The running router to talk to: ``--server``, or the settings' local address."""
    return str(args.server or settings.server.local_url).rstrip("/")


def unreachable(server: str, exc: BaseException) -> CliError:
    return CliError(f"cannot reach the router at {server} ({exc.__class__.__name__}); is `omnirouter serve` running?")


def install_token(settings: Settings) -> str:
    """The install token for a running router's API (the superadmin's credential)."""
    try:
        return token_for_cli(settings.api)
    except InstallTokenError as exc:
        raise CliError(str(exc), code=2) from None


def bearer(settings: Settings) -> dict[str, str]:
    """The ``Authorization`` header of the install token."""
    return {"Authorization": f"Bearer {install_token(settings)}"}


def redact(uri: str) -> str:
    """A MongoDB URI without its password."""
    scheme, sep, rest = uri.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return uri


def run_with_store(settings: Settings, work: Callable[[Repositories], Awaitable[int]]) -> int:
    """``with_store`` for a CLI command: store trouble becomes a one-line ``CliError``."""
    try:
        return asyncio.run(with_store(settings, work))
    except StoreUnavailable:
        raise CliError("cannot reach the store; is MongoDB running?") from None
    except EmbeddedStoreError as exc:
        raise CliError(str(exc)) from None


async def with_store(settings: Settings, work: Callable[[Repositories], Awaitable[int]]) -> int:
    """Run ``work`` against the configured store, starting the embedded one if nobody runs it
    (and using a running router's embedded store when one holds it)."""
    uri, embedded = settings.store.mongodb_uri, None
    if not uri:
        data_dir = Path(settings.store.embedded_dir)
        candidate = EmbeddedMongo(data_dir, mode="thread")
        try:
            await candidate.start()
            embedded, uri = candidate, candidate.uri
        except EmbeddedStoreError:
            uri = running_embedded_uri(data_dir) or ""
            if not uri:
                raise
    store = Repositories.connect(uri, settings.store.database, timeout_ms=settings.store.timeout_ms)
    try:
        await store.ensure_indexes()
        await store.accounts.ensure_account(settings.account.id, settings.account.name, utcnow())
        return await work(store)
    finally:
        await store.close()
        if embedded is not None:
            await embedded.stop()


def held_by_router(data_dir: Path) -> bool:
    """Whether a running router holds the embedded store in ``data_dir`` (its lock is taken)."""
    lock = data_dir / ".omnirouter.lock"
    if not lock.exists():
        return False
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
