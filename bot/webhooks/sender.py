"""Delivering webhook events: the outbox's leasing and backoff, for HTTP callbacks.

A worker leases a due delivery (so across router processes one delivery is in one worker's hands),
POSTs its stored body with a fresh timestamp and signature, and records the answer: 2xx is done;
410 Gone switches the subscription off; anything else (another status, a timeout, a refused
connection) is retried with exponential backoff and jitter, never sooner than a ``Retry-After``,
and given up after ``webhooks.max_attempts`` (the delivery stays listed as dead and can be sent
again). Redirects are not followed. Unless ``webhooks.allow_private_networks``, a URL that is or
resolves to a loopback, private or link-local address is refused, so an account's admin cannot
make the router call into the network it runs in.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from bot.logs import log_event
from bot.router.leasing import lease_and_work
from bot.router.outbox import backoff_delay
from bot.settings import WebhookSettings
from bot.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from conversations.models import utcnow
from conversations.store import Store
from conversations.tenant_models import DeliveryState, WebhookDelivery

log = logging.getLogger("omnirouter.webhooks.sender")
_DISABLED_PAUSE = timedelta(minutes=5)


class AddressRefused(OSError):
    """The receiver's address is not a public one."""


def is_public(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_global
    except ValueError:
        return False


class PublicResolver(ThreadedResolver):
    """Resolves host names, refusing any that leads to a non-public address (what the connection
    then uses is what was checked: no second lookup to rebind)."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await super().resolve(host, port, family)
        for entry in found:
            if not is_public(str(entry["host"])):
                raise AddressRefused(f"{host} resolves to {entry['host']}, which is not a public address")
        return found


class WebhookSender:
    """Runs this process's delivery worker."""

    def __init__(self, store: Store, settings: WebhookSettings) -> None:
        self._store = store
        self._settings = settings
        self.owner = f"webhooks-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(max(settings.concurrency, 1))
        self._sending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        self._wake.set()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = None if self._settings.allow_private_networks else PublicResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=max(self._settings.concurrency, 1) * 2),
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
                headers={"User-Agent": "omnirouter-webhooks/1"},
            )
        return self._session

    async def close(self) -> None:
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=self._settings.timeout + 1)
        if self._session is not None:
            await self._session.close()

    async def run(self) -> None:
        """Lease and deliver due events until cancelled (``webhooks.concurrency`` 0: never)."""
        if self._settings.concurrency == 0:
            return
        lease = timedelta(seconds=self._settings.lease_seconds)
        await lease_and_work(
            lambda: self._store.lease_delivery(self.owner, utcnow(), lease), self._deliver_and_release,
            slots=self._slots, wake=self._wake, poll_interval=self._settings.poll_interval, in_flight=self._sending,
            on_outage=lambda: log_event(log, "webhook.store_unavailable", logging.WARNING),
        )

    async def _deliver_and_release(self, delivery: WebhookDelivery) -> None:
        try:
            await self.deliver(delivery)
        except Exception:
            log.exception("webhook.deliver_crashed", extra={"omnirouter_fields": {"delivery": delivery.id}})
        finally:
            self._slots.release()

    async def deliver(self, delivery: WebhookDelivery) -> None:
        """One attempt at one leased delivery."""
        subscription = await self._store.get_webhook(delivery.subscription_id)
        if subscription is None or not subscription.active:
            await self._give_up(delivery, "the subscription was deleted or switched off")
            return
        if subscription.secret_problem:  # never signed with a secret that is not the one sealed for it
            await self._give_up(delivery, f"not sent: {subscription.secret_problem}")
            return
        account = await self._store.get_account(delivery.account_id)
        if account is None or account.disabled:
            await self._store.postpone_delivery(delivery, self.owner, utcnow() + _DISABLED_PAUSE)
            return
        host = urlsplit(subscription.url).hostname or ""
        if not self._settings.allow_private_networks and _is_ip(host) and not is_public(host):
            await self._give_up(delivery, f"refused: {host} is not a public address")
            return
        timestamp, body = int(time.time()), delivery.body.encode()
        headers = {
            "Content-Type": "application/json", SIGNATURE_HEADER: sign(subscription.secret, timestamp, body),
            TIMESTAMP_HEADER: str(timestamp), EVENT_HEADER: delivery.event_type, EVENT_ID_HEADER: delivery.event_id,
            DELIVERY_HEADER: delivery.id,
        }
        try:
            async with self._http().post(subscription.url, data=body, headers=headers, allow_redirects=False) as response:
                status, retry_after = response.status, response.headers.get("Retry-After", "")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):  # our resolver's refusal, wrapped by aiohttp
                await self._give_up(delivery, f"refused: {exc.os_error}")
            else:
                await self._retry(delivery, None, f"{type(exc).__name__}: {exc}", None)
            return
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self._retry(delivery, None, f"{type(exc).__name__}: {exc}", None)
            return
        if 200 <= status < 300:
            await self._store.finish_delivery(delivery, self.owner, DeliveryState.SENT, utcnow(), status=status)
            log_event(log, "webhook.delivered", delivery=delivery.id, status=status, attempts=delivery.attempts)
        elif status == 410:
            await self._store.update_webhook(subscription.account_id, subscription.id, active=False)
            await self._give_up(delivery, "the receiver answered 410 Gone: subscription switched off", status)
        else:
            wait = float(retry_after) if retry_after.isdigit() else None
            await self._retry(delivery, status, f"HTTP {status}", wait)

    async def _retry(self, delivery: WebhookDelivery, status: int | None, error: str, retry_after: float | None) -> None:
        if delivery.attempts >= self._settings.max_attempts:
            await self._give_up(delivery, error, status)
            return
        s = self._settings
        delay = backoff_delay(delivery.attempts, s.base_delay, s.max_delay, min(retry_after or 0.0, s.max_delay))
        await self._store.finish_delivery(delivery, self.owner, DeliveryState.PENDING, utcnow(), status=status,
                                          error=error, due=utcnow() + timedelta(seconds=delay))
        log_event(log, "webhook.retry", logging.WARNING, delivery=delivery.id, attempts=delivery.attempts,
                  delay=round(delay, 3), error=error[:200])

    async def _give_up(self, delivery: WebhookDelivery, error: str, status: int | None = None) -> None:
        await self._store.finish_delivery(delivery, self.owner, DeliveryState.DEAD, utcnow(), status=status, error=error)
        log_event(log, "webhook.dead", logging.ERROR, delivery=delivery.id, attempts=delivery.attempts, error=error[:200])


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False
