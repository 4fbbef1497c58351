"""Delivering webhook events: the outbox's leasing and backoff, for HTTP callbacks.

A worker leases a due delivery (so across router processes one delivery is in one worker's hands),
POSTs its stored body with a fresh timestamp and signature, and records the answer: 2xx is done;
410 Gone switches the subscription off; anything else (another status, a timeout, a refused
connection) is retried with exponential backoff and jitter, never sooner than a ``Retry-After``,
and given up after ``webhooks.max_attempts`` (the delivery stays listed as dead and can be sent
again). Redirects are not followed: a 3xx answer is retried like any other status, its
``Location`` never called (a receiver that moved gets its subscription's URL changed). Every
delivery goes through the webhooks' egress guard (``bot.handlers.kit.egress_guards``): a URL that is or
resolves to a loopback, private, link-local or metadata address, or the router's own, is refused
(and the delivery given up at once), so an account's admin cannot make the router call into the
network it runs in — unless the operator allows the host by name (``egress.allowed_destinations``;
the deprecated ``webhooks.allow_private_networks`` allows every address but the metadata ones and
the router's). The hosts of the install's own Rasa and provider API servers are not allowed here.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import timedelta

import aiohttp

from bot.handlers.kit.egress import Egress, refusal
from bot.logs import log_event
from bot.network_settings import WebhookSettings
from bot.router.leasing import LoopStop, lease_and_work
from bot.router.send_failures import backoff_delay
from bot.router.webhooks.signing import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import DeliveryState, WebhookDelivery

log = logging.getLogger("omnirouter.webhooks.sender")
_DISABLED_PAUSE = timedelta(minutes=5)


class WebhookSender:
    """Runs this process's delivery worker."""

    def __init__(self, store: Repositories, settings: WebhookSettings, egress: Egress) -> None:
        self._store = store
        self._settings = settings
        self._egress = egress
        if settings.allow_private_networks:
            log_event(
                log,
                "webhook.allow_private_networks_deprecated",
                logging.WARNING,
                hint="name the receivers' hosts in egress.allowed_destinations instead",
            )
        self.owner = f"webhooks-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()
        self._stop = LoopStop(self._wake)  # at shutdown: lease no more
        self._slots = asyncio.Semaphore(max(settings.concurrency, 1))
        self._sending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        self._wake.set()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = self._egress.session(
                limit=max(self._settings.concurrency, 1) * 2,
                timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
                headers={"User-Agent": "omnirouter-webhooks/1"},
            )
        return self._session

    async def stop(self, timeout: float = 10.0) -> None:
        """At shutdown: the worker leases no more (its loop ends between two leases, so a delivery
        it leased is not left leased with no task, waiting out its lease to be delivered)."""
        await self._stop(timeout)

    async def close(self) -> None:
        """Wait for the deliveries in flight, then close the HTTP session."""
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
            lambda: self._store.webhooks.lease_delivery(self.owner, utcnow(), lease),
            self._deliver_and_release,
            slots=self._slots,
            wake=self._wake,
            poll_interval=self._settings.poll_interval,
            in_flight=self._sending,
            on_outage=lambda: log_event(log, "webhook.store_unavailable", logging.WARNING),
            stop=self._stop,
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
        subscription = await self._store.webhooks.get_webhook(delivery.subscription_id)
        if subscription is None or not subscription.active:
            await self._give_up(delivery, "the subscription was deleted or switched off")
            return
        if subscription.secret_problem:  # never signed with a secret that is not the one sealed for it
            await self._give_up(delivery, f"not sent: {subscription.secret_problem}")
            return
        account = await self._store.accounts.get_account(delivery.account_id)
        if account is None or account.disabled:
            await self._store.webhooks.postpone_delivery(delivery, self.owner, utcnow() + _DISABLED_PAUSE)
            return
        timestamp, body = int(time.time()), delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(subscription.secret, timestamp, body),
            TIMESTAMP_HEADER: str(timestamp),
            EVENT_HEADER: delivery.event_type,
            EVENT_ID_HEADER: delivery.event_id,
            DELIVERY_HEADER: delivery.id,
        }
        try:
            async with self._http().post(
                subscription.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status, retry_after = response.status, response.headers.get("Retry-After", "")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if refused := refusal(exc):  # the egress guard's: no retry will change it
                await self._give_up(delivery, f"refused: {refused}")
            else:
                await self._retry(delivery, None, f"{type(exc).__name__}: {exc}", None)
            return
        if 200 <= status < 300:
            await self._store.webhooks.finish_delivery(
                delivery, self.owner, DeliveryState.SENT, utcnow(), status=status
            )
            log_event(log, "webhook.delivered", delivery=delivery.id, status=status, attempts=delivery.attempts)
        elif status == 410:
            await self._store.webhooks.update_webhook(subscription.account_id, subscription.id, active=False)
            await self._give_up(delivery, "the receiver answered 410 Gone: subscription switched off", status)
        else:
            wait = float(retry_after) if retry_after.isdigit() else None
            await self._retry(delivery, status, f"HTTP {status}", wait)

    async def _retry(
        self, delivery: WebhookDelivery, status: int | None, error: str, retry_after: float | None
    ) -> None:
        if delivery.attempts >= self._settings.max_attempts:
            await self._give_up(delivery, error, status)
            return
        s = self._settings
        delay = backoff_delay(delivery.attempts, s.base_delay, s.max_delay, min(retry_after or 0.0, s.max_delay))
        await self._store.webhooks.finish_delivery(
            delivery,
            self.owner,
            DeliveryState.PENDING,
            utcnow(),
            status=status,
            error=error,
            due=utcnow() + timedelta(seconds=delay),
        )
        log_event(
            log,
            "webhook.retry",
            logging.WARNING,
            delivery=delivery.id,
            attempts=delivery.attempts,
            delay=round(delay, 3),
            error=error[:200],
        )

    async def _give_up(self, delivery: WebhookDelivery, error: str, status: int | None = None) -> None:
        await self._store.webhooks.finish_delivery(
            delivery, self.owner, DeliveryState.DEAD, utcnow(), status=status, error=error
        )
        log_event(
            log, "webhook.dead", logging.ERROR, delivery=delivery.id, attempts=delivery.attempts, error=error[:200]
        )
