"""Login throttling: failed attempts counted in the store (so every router process sees them), a
growing delay instead of a lock, and device cookies, so that a guesser cannot keep a login's owner
out.

* **Per login name** (``console.login_attempts``): the free failures; after them each attempt
  waits a delay that doubles with every failure, up to ``console.login_max_delay_seconds``. An
  attempt refused while the login waits is not counted on it, so guessing cannot push the wait past
  the cap.
* **Per client address** (four times as many; an IPv6 address counts by its /64, what one client
  is given): every attempt that gets past the address's own wait is counted on it, those the login
  then refuses included — a guesser polling for the moment a login's wait ends makes its own
  address wait, up to the same cap.
* **Device cookies** (OWASP's answer to lockout by guessing): a browser in which a login succeeded
  gets a cookie signed for that login, good for ``DEVICE_DAYS``. Its attempts at that login are
  counted on the cookie alone: neither the login's count nor the address's, which a guesser can run
  up, holds it back. A cookie whose attempts fail ``console.login_attempts`` times is revoked, and
  its browser counts like any other until its next successful login.

Each attempt is counted *before* its password is checked, by a compare-and-set on the count, so
guesses sent at once get no more checks than the free ones. A right password (or code) clears the
count it was admitted on and takes its attempt back from the address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bot.handlers.kit.signatures import same_secret
from bot.web.console import auth
from bot.web.proxies import address_block, client_address

if TYPE_CHECKING:
    from conversations.repositories import Repositories

DEVICE_COOKIE = "omnirouter_device_"  # + a keyed hash of account and login: a cookie per login a browser used
DEVICE_DAYS = 180
_DEVICE_KEY = "login-device-cookies"  # the signing key: an install secret, sealed in the store
_DEVICE_VALUE = re.compile(r"([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")
_CLAIM_TRIES = 8


@dataclass(frozen=True, slots=True)
class Device:
    """A browser's valid device cookie for one login: its random id, and when it expires."""

    id: str
    expires_ms: int


def _mac(key: bytes, *parts: str) -> str:
    digest = hmac.new(key, "\n".join(parts).encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class DeviceCookies:
    """Issues and reads device cookies (``HttpOnly; SameSite=Strict``, ``Secure`` behind HTTPS),
    each signed for one account and login with a key every router process on the store shares."""

    def __init__(self, store: Repositories) -> None:
        self._store = store
        self._key: bytes | None = None

    async def _signing_key(self) -> bytes:
        if self._key is None:
            secret, _ = await self._store.secrets.sealed_secret(_DEVICE_KEY, lambda: secrets.token_urlsafe(32))
            self._key = secret.encode()
        return self._key

    @staticmethod
    def _name(key: bytes, account_id: str, login: str) -> str:
        return DEVICE_COOKIE + _mac(key, "name", account_id, login.lower())[:16]

    async def read(self, request: web.Request, account_id: str, login: str) -> Device | None:
        """The request's device cookie for this login, if it holds one that is signed and unexpired."""
        key = await self._signing_key()
        found = _DEVICE_VALUE.fullmatch(request.cookies.get(self._name(key, account_id, login), ""))
        if found is None:
            return None
        device_id, issued, signature = found.groups()
        if not same_secret(signature, _mac(key, "device", account_id, login.lower(), device_id, issued)):
            return None
        expires_ms = (int(issued) + DEVICE_DAYS * 86400) * 1000
        return Device(device_id, expires_ms) if expires_ms > time.time() * 1000 else None

    async def issue(self, request: web.Request, response: web.StreamResponse, account_id: str, login: str) -> None:
        """A new device cookie for this login (after a successful login), replacing the browser's old one."""
        key = await self._signing_key()
        device_id, issued = secrets.token_urlsafe(16), str(int(time.time()))
        value = f"{device_id}.{issued}.{_mac(key, 'device', account_id, login.lower(), device_id, issued)}"
        auth.set_cookie(response, request, self._name(key, account_id, login), value, max_age=DEVICE_DAYS * 86400)


class LoginLimiter:
    """The counts (see the module's docstring): the first ``attempts`` failures of a login, of a
    device cookie, and four times as many of an address are free; after them a login's or an
    address's attempts wait ``delay_seconds``, doubling up to ``max_delay_seconds``; a device cookie
    is revoked. Counts are forgotten ``forget_seconds`` (at least twice the cap) after the last
    attempt; a revoked device cookie is remembered until it expires."""

    def __init__(
        self, store: Repositories, attempts: int, delay_seconds: float, max_delay_seconds: float, forget_seconds: float
    ) -> None:
        self._store = store
        self._attempts = attempts
        self._delay_ms = int(delay_seconds * 1000)
        self._max_ms = int(max_delay_seconds * 1000)
        self._forget_ms = int(max(forget_seconds * 1000, 2 * self._max_ms))
        self.devices = DeviceCookies(store)

    def _keys(self, account_id: str, login: str, address: str) -> tuple[tuple[str, int], tuple[str, int]]:
        return (
            (f"addr:{address_block(address)}", self._attempts * 4),
            (f"login:{account_id}:{login.lower()}", self._attempts),
        )

    def wait_after(self, failures: int, limit: int) -> int:
        """Milliseconds the next attempt waits after ``failures`` counted failures."""
        if failures < limit:
            return 0
        return min(self._max_ms, self._delay_ms << min(failures - limit, 32))

    async def admit(self, account_id: str, login: str, address: str, device: Device | None = None) -> int:
        """Count this attempt; returns the seconds to wait (the attempt is refused), or 0."""
        now_ms = int(time.time() * 1000)
        if device is not None and await self._claim_device(device, now_ms):
            return 0
        (address_key, address_limit), (login_key, login_limit) = self._keys(account_id, login, address)
        wait_ms = await self._claim(address_key, address_limit, now_ms)
        if not wait_ms:  # counted on the address whatever the login says: polling a login's wait costs
            wait_ms = await self._claim(login_key, login_limit, now_ms)
        return -(-wait_ms // 1000)  # rounded up

    async def _claim(self, key: str, limit: int, now_ms: int) -> int:
        """Count one attempt on ``key``; or, while it must wait, the milliseconds left (nothing counted)."""
        for _ in range(_CLAIM_TRIES):
            doc = await self._store.sign_in.login_throttle(key)
            live = doc is not None and int(doc.get("expires_ms", 0)) > now_ms
            failures = int(doc.get("failures", 0)) if doc is not None and live else 0
            wait_until_ms = int(doc.get("wait_until_ms", 0)) if doc is not None and live else 0
            if failures >= limit and wait_until_ms > now_ms:
                return wait_until_ms - now_ms
            wait_ms = self.wait_after(failures + 1, limit)
            rev = None if doc is None else int(doc.get("rev", 0))
            if await self._store.sign_in.claim_login_attempt(
                key, rev, failures + 1, now_ms + wait_ms if wait_ms else 0, now_ms + wait_ms + self._forget_ms
            ):
                return 0
        return 1000  # outrun by concurrent attempts every time: this one waits a second

    async def _claim_device(self, device: Device, now_ms: int) -> bool:
        """Count one attempt on a device cookie; ``False`` when the cookie is revoked (before, or now:
        its free failures are used up), and the attempt counts like any browser's."""
        key = f"device:{device.id}"
        for _ in range(_CLAIM_TRIES):
            doc = await self._store.sign_in.login_throttle(key)
            if doc is not None and doc.get("revoked"):
                return False
            live = doc is not None and int(doc.get("expires_ms", 0)) > now_ms
            failures = int(doc.get("failures", 0)) if doc is not None and live else 0
            if failures >= self._attempts:
                await self._store.sign_in.revoke_login_device(key, device.expires_ms)
                return False
            rev = None if doc is None else int(doc.get("rev", 0))
            if await self._store.sign_in.claim_login_attempt(key, rev, failures + 1, 0, now_ms + self._forget_ms):
                return True
        return False

    async def succeeded(self, account_id: str, login: str, address: str, device: Device | None = None) -> None:
        """A right password (or code): the count it was admitted on starts again — the device
        cookie's, or else the login's (and the address's attempt is taken back)."""
        now_ms = int(time.time() * 1000)
        if device is not None:
            doc = await self._store.sign_in.login_throttle(f"device:{device.id}")
            if doc is None or not doc.get("revoked"):
                await self._store.sign_in.forget_login_failures(f"device:{device.id}", now_ms)
                return
        (address_key, _), (login_key, _) = self._keys(account_id, login, address)
        await self._store.sign_in.forget_login_failures(login_key, now_ms)
        await self._store.sign_in.take_back_login_attempt(address_key)


LOGIN_LIMITER: web.AppKey[LoginLimiter] = web.AppKey("login_limiter")  # built by setup_web


async def admit(request: web.Request, account_id: str, login: str) -> int:
    """Count the request's attempt at ``login`` (by its device cookie, or by login and address);
    the seconds it must wait, or 0."""
    limiter = request.app[LOGIN_LIMITER]
    device = await limiter.devices.read(request, account_id, login)
    return await limiter.admit(account_id, login, client_address(request), device)


async def succeeded(request: web.Request, account_id: str, login: str) -> None:
    """The request's attempt at ``login`` was right: its count starts again."""
    limiter = request.app[LOGIN_LIMITER]
    device = await limiter.devices.read(request, account_id, login)
    await limiter.succeeded(account_id, login, client_address(request), device)


async def remember_device(request: web.Request, response: web.StreamResponse, account_id: str, login: str) -> None:
    """A login completed in this browser: give it a (new) device cookie for that login."""
    await request.app[LOGIN_LIMITER].devices.issue(request, response, account_id, login)
