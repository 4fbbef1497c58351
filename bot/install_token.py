"""The install token: the superadmin's bearer token for ``/api``, found (or made) at start-up.

No request is the superadmin for where it comes from (loopback included): only this token makes
one. ``api.token`` is the token when set (an operator running processes on several hosts may set
it). Otherwise the first start generates one and keeps it sealed in the store, so every router
process on that store accepts the same token, and writes it to ``api.token_file`` (mode 0600) for
the CLI on this host. A later start leaves the file alone; it writes it again only when it is
missing (and says so) or holds another token. The token itself is never logged.

``omnirouter api-token --rotate`` replaces the stored token and the file; every running process
accepts only the new one within ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from bot.handlers.kit.signatures import same_secret
from bot.logs import log_event
from bot.network_settings import ApiSettings
from conversations.errors import StoreUnavailable
from conversations.private_files import PRIVATE_FILE, write_private
from conversations.repositories import Repositories
from conversations.sealing import SealingError

log = logging.getLogger("omnirouter.api")
SECRET_NAME = "api-install-token"
PREFIX = "omi_"  # an install token; account tokens start with omr_
REFRESH_SECONDS = 2.0
T = TypeVar("T")


class InstallTokenError(Exception):
    """No install token to be had (no file, unreadable, not writable); the message is one line."""


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


class InstallToken:
    """What a bearer token is compared with to be the superadmin: ``api.token``, or the store's
    token (looked up again at most every ``REFRESH_SECONDS``, so a rotation reaches this process)."""

    def __init__(self, value: str, store: Repositories | None = None, path: Path | None = None) -> None:
        self._value = value
        self._store, self._path = store, path
        self._due = time.monotonic() + REFRESH_SECONDS

    async def matches(self, given: str) -> bool:
        if self._store is not None and time.monotonic() >= self._due:
            await self._refresh(self._store)
        return same_secret(given, self._value)

    async def _refresh(self, store: Repositories) -> None:
        self._due = time.monotonic() + REFRESH_SECONDS  # before the read: one look-up at a time
        try:
            value = await store.secrets.read_sealed_secret(SECRET_NAME)
        except (StoreUnavailable, SealingError):
            return  # keep the token in hand; the next request past the due time looks again
        if value and value != self._value:
            self._value = value
            log_event(log, "api.install_token_changed", logging.WARNING)


async def open_install_token(settings: ApiSettings, store: Repositories) -> InstallToken:
    """The install's token, made and written down on the first start (the store's sealer must be
    in use)."""
    if settings.token:
        log_event(log, "api.install_token", source="api.token")
        return InstallToken(settings.token)
    path = Path(settings.token_file)
    try:
        value, created = await store.secrets.sealed_secret(SECRET_NAME, new_token)
    except SealingError as exc:
        raise InstallTokenError(f"{exc}; make a new install token with `omnirouter api-token --rotate`") from None
    found = await _file_io(_look_at_file, path, value)
    if found == "missing":
        await _file_io(_write_if_missing, path, value)
        _log_file("created" if created else "written_again", path)
    elif found is not None:
        _log_file(found, path)
    log_event(log, "api.install_token", source=str(path))
    return InstallToken(value, store, path)


async def rotate(settings: ApiSettings, store: Repositories) -> Path:
    """A new install token, in the store and in the token file; returns the file's path."""
    if settings.token:
        raise InstallTokenError("api.token is set in the settings: change it there (and in every router process)")
    path, value = Path(settings.token_file), new_token()
    await store.secrets.replace_sealed_secret(SECRET_NAME, value)
    await _file_io(write_private, path, value + "\n")
    _log_file("rotated", path)
    return path


_ROTATE = "run `omnirouter api-token --rotate` to replace it"
_FILE_EVENTS: dict[str, tuple[int, str | None]] = {
    "created": (logging.INFO, None),
    "rotated": (logging.INFO, None),
    "written_again": (logging.WARNING, None),
    "exposed": (logging.WARNING, f"the token was readable by other users of this machine (now 0600): {_ROTATE}"),
    "differs": (
        logging.WARNING,
        "it holds another token than the store's (rotated on another host?), so the CLI's "
        f"calls are refused: copy the file from there, or {_ROTATE}",
    ),
}


def _log_file(what: str, path: Path) -> None:
    """The event ``api.token_file_<what>``: where, and what to do about it; never the token."""
    level, advice = _FILE_EVENTS[what]
    log_event(
        log, f"api.token_file_{what}", level, path=str(path), mode="0600", **({"advice": advice} if advice else {})
    )


async def _file_io(work: Callable[..., T], *args: Any) -> T:
    """``work(*args)`` off the event loop; an ``OSError`` becomes one ``InstallTokenError`` line."""
    try:
        return await asyncio.to_thread(work, *args)
    except OSError as exc:
        raise InstallTokenError(f"cannot use the install token file {args[0]}: {exc.strerror}") from None


def _look_at_file(path: Path, value: str) -> str | None:
    """What the token file needs saying: ``missing``, ``exposed`` (it holds ``value`` but others
    could read it: closed now), ``differs`` (it holds another token: left alone, only a rotation
    replaces it), or ``None``."""
    try:
        held = path.read_text().strip()
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return "missing"
    if mode & 0o077:
        path.chmod(PRIVATE_FILE)
    if held != value:
        return "differs"
    return "exposed" if mode & 0o077 else None


def _write_if_missing(path: Path, value: str) -> None:
    """The token file made with ``value`` (0600), unless another process made it meanwhile."""
    with contextlib.suppress(FileExistsError):
        write_private(path, value + "\n", replace=False)


def token_for_cli(settings: ApiSettings) -> str:
    """The install token a CLI command sends to ``/api``: ``api.token``, else the token file."""
    if settings.token:
        return settings.token
    path = Path(settings.token_file)
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise InstallTokenError(
            f"no install token: {path} does not exist. The router writes it on its first start: run this "
            "where `omnirouter serve` runs (same directory and settings), or set api.token (OMNIROUTER_API_TOKEN)"
        ) from None
    except OSError as exc:
        raise InstallTokenError(
            f"cannot read the install token file {path}: {exc.strerror} (it is readable by the router's user only)"
        ) from None
    if not value:
        raise InstallTokenError(f"the install token file {path} is empty: delete it and restart the router")
    return value
