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
import logging
import os
import secrets
import stat
import time
from pathlib import Path

from bot.handlers.signatures import same_secret
from bot.logs import log_event
from bot.settings import ApiSettings
from conversations.errors import StoreUnavailable
from conversations.repositories import Repositories
from conversations.sealing import SealingError

log = logging.getLogger("omnirouter.api")
SECRET_NAME = "api-install-token"
PREFIX = "omi_"  # an install token; account tokens start with omr_
REFRESH_SECONDS = 2.0


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
            if self._path is not None:
                try:
                    await _keep_file(self._path, value, missing="written_again")
                except InstallTokenError as exc:
                    log_event(log, "api.token_file_failed", logging.WARNING, problem=str(exc))


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
        raise InstallTokenError(str(exc)) from None
    await _keep_file(path, value, missing="created" if created else "written_again")
    log_event(log, "api.install_token", source=str(path))
    return InstallToken(value, store, path)


async def rotate(settings: ApiSettings, store: Repositories) -> Path:
    """A new install token, in the store and in the token file; returns the file's path."""
    if settings.token:
        raise InstallTokenError("api.token is set in the settings: change it there (and in every router process)")
    path, value = Path(settings.token_file), new_token()
    await store.secrets.replace_sealed_secret(SECRET_NAME, value)
    await _keep_file(path, value, missing="rotated", different="rotated")
    return path


async def _keep_file(path: Path, value: str, missing: str, different: str = "replaced") -> None:
    """Write ``value`` to ``path`` (0600) unless it holds it already, and log why (the event
    ``api.token_file_<missing>`` or ``…_<different>``) and where, never what."""
    found = await asyncio.to_thread(_write_if_needed, path, value)
    if found is not None:
        why = missing if found == "missing" else different
        level = logging.INFO if why in ("created", "rotated") else logging.WARNING
        log_event(log, f"api.token_file_{why}", level, path=str(path), mode="0600")


def _write_if_needed(path: Path, value: str) -> str | None:
    """``None`` if ``path`` holds ``value``; else writes it, returning what was there: ``missing``
    or ``different``."""
    found = "different"
    try:
        if path.read_text().strip() == value:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                path.chmod(0o600)  # a copy others could read: theirs no more
            return None
    except FileNotFoundError:
        found = "missing"
    except OSError as exc:
        raise InstallTokenError(f"cannot read the install token file {path}: {exc.strerror}") from None
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        os.replace(temporary, path)  # whole or not at all, for a CLI reading it meanwhile
    except OSError as exc:
        raise InstallTokenError(f"cannot write the install token file {path}: {exc.strerror}") from None
    return found


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
        raise InstallTokenError(f"cannot read the install token file {path}: {exc.strerror} "
                                "(it is readable by the router's user only)") from None
    if not value:
        raise InstallTokenError(f"the install token file {path} is empty: delete it and restart the router")
    return value
