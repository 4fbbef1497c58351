"""Stored records of running omnirouter for many businesses: accounts (tenants), their API tokens,
webhook subscriptions and deliveries, and the audit log. Every one carries ``account_id``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from conversations.models import Document

SCOPES = ("read", "write")  # read: GET routes; write: everything else
EVENT_TYPES = ("thread.created", "thread.queued", "thread.assigned", "thread.resolved", "thread.message")


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


@dataclass(slots=True)
class Account(Document):
    """A business (tenant) with its channels, business hours and retention policy."""

    id: str
    name: str
    created_at: datetime
    channels: dict[str, Any] = field(default_factory=dict)
    business_hours: dict[str, Any] | None = None
    retention_days: int | None = None
    routing: dict[str, Any] | None = None  # queue strategy and console options set by an admin
    disabled: bool = False  # by a superadmin: no logins, no API, no channels; data kept
    require_two_factor: bool = False  # by its admin: every agent signs in with an authenticator app
    contact_attributes: list[dict[str, Any]] = field(default_factory=list)  # bot.services.contact_fields
    satisfaction: dict[str, Any] | None = None  # the rating question after resolution (bot.router.satisfaction)
    # the website widget (bot.handlers.webchat.widget): "sites" (origins allowed to embed the chat),
    # "color", "title", "greeting"; an account stored before the widget has none of them
    widget: dict[str, Any] = field(default_factory=dict)
    # never stored: the secrets of ``channels`` that did not open when read ("telegram.token" ->
    # why); they are left out of ``channels``, and that channel of the account reports the problem
    sealing_problems: dict[str, str] | None = None


@dataclass(slots=True)
class Inbox(Document):
    """One more channel instance of an account beside the one its channel settings describe (a
    second Telegram bot, a second WhatsApp number). ``config`` holds the same fields as that
    channel's settings, secrets sealed at rest for this inbox alone; ``route`` is what the provider
    names it by in a webhook (``whatsapp:<phone_number_id>``), unique across the install."""

    id: str
    account_id: str
    channel: str
    name: str
    created_at: datetime
    config: dict[str, Any] = field(default_factory=dict)
    route: str | None = None
    disabled: bool = False
    # how its conversations are handled where not the account's: bot (False: straight to the
    # agents), team, business_hours, timezone, out_of_hours_reply (``bot/router/routing.py``)
    routing: dict[str, Any] | None = None
    # a mailbox whose address another account took back by verifying its mail domain: that
    # domain and when (the inbox was disabled and lost its route; a new address clears both)
    released_domain: str | None = None
    released_at: datetime | None = None
    # never stored: the secrets of ``config`` that did not open when read (field -> why)
    sealing_problems: dict[str, str] | None = None


@dataclass(slots=True)
class ApiToken(Document):
    """A bearer token of one account's REST API. Only the SHA-256 of the token is stored; the
    token itself is shown once, when it is created. ``prefix`` (its first characters) tells
    tokens apart in lists."""

    id: str
    account_id: str
    name: str
    token_hash: str
    prefix: str
    created_at: datetime
    scopes: list[str] = field(default_factory=lambda: list(SCOPES))
    created_by: str = ""
    last_used_ms: int | None = None
    # a token that acts for one agent of the account: their role and inboxes, the conversation
    # routes only (``bot/web/api/kit.py``); None: the account's own (an admin's rights)
    agent_id: str | None = None

    def public(self) -> dict[str, Any]:
        doc = self.to_json()
        doc.pop("token_hash", None)
        return doc


@dataclass(slots=True)
class WebhookSubscription(Document):
    """Where one account's thread events are POSTed. ``secret`` signs each delivery; it is
    stored sealed and shown once (at creation and when it is replaced)."""

    id: str
    account_id: str
    url: str
    events: list[str]
    secret: str
    created_at: datetime
    description: str = ""
    active: bool = True
    secret_problem: str | None = None  # never stored: why the stored secret did not open when read

    def wants(self, event_type: str) -> bool:
        return self.active and event_type in self.events

    def public(self) -> dict[str, Any]:
        doc = self.to_json()
        doc.pop("secret", None)
        return doc


@dataclass(slots=True)
class WebhookDelivery(Document):
    """One event on its way to one subscription: leased by one worker at a time, retried with
    backoff, dead after the last attempt. ``body`` is the exact JSON sent every time, so a
    receiver deduplicates retries by the event id inside it."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {"state": lambda v: DeliveryState(v)}

    id: str
    account_id: str
    subscription_id: str
    event_id: str
    event_type: str
    body: str
    state: DeliveryState
    due_ms: int
    created_at: datetime
    attempts: int = 0
    lease_owner: str | None = None
    last_error: str | None = None
    last_status: int | None = None
    sent_at: datetime | None = None
    thread_id: str | None = None  # what the event is about: how export, erasure and retention find it
    message_id: str | None = None

    def public(self) -> dict[str, Any]:
        doc = self.to_json()
        for key in ("body", "lease_owner", "due_ms"):
            doc.pop(key, None)
        return doc


@dataclass(slots=True)
class AuditEntry(Document):
    """Who did what to which record, and when."""

    id: str
    account_id: str
    actor: str
    action: str
    target: str
    at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    actor_name: str = ""  # the actor's login when it was recorded
