"""The data model of omnirouter as typed records.

Two families live here:

* the *normalised traffic* that crosses the channel seam (``Inbound``, ``StatusUpdate``,
  ``Outbound``): frozen dataclasses built at the edge, so nothing past a handler sees provider JSON;
* the *stored documents* (accounts, contacts, threads, messages, outbox, agents, audit), each a
  dataclass that round-trips through ``to_doc`` / ``from_doc``. Every stored document carries
  ``account_id``: one deployment serves many businesses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, ClassVar, Self


def utcnow() -> datetime:
    """Now, timezone-aware and truncated to milliseconds (what BSON dates can hold)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def epoch_ms(moment: datetime) -> int:
    """A moment as integer milliseconds since the epoch.

    Lease and schedule times are stored this way: the embedded server compares stored dates at
    one-second precision, integers it compares exactly (and so does MongoDB).
    """
    return int(moment.timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, timezone.utc)


class ThreadStatus(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        """Progress order: a status update may only move a message forward."""
        return _DELIVERY_RANK[self]


_DELIVERY_RANK = {
    DeliveryStatus.QUEUED: 0,
    DeliveryStatus.SENT: 1,
    DeliveryStatus.DELIVERED: 2,
    DeliveryStatus.READ: 3,
    DeliveryStatus.FAILED: 4,
}


class DispatchState(StrEnum):
    PENDING = "pending"
    DONE = "done"


class OutboxState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"


class SenderKind(StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class Role(StrEnum):
    AGENT = "agent"
    ADMIN = "admin"  # runs one account: agents, routing, channels, API tokens, webhooks
    SUPERADMIN = "superadmin"  # an admin who also manages the accounts of the install

    @property
    def rank(self) -> int:
        """Each role may do what the roles below it may."""
        return _ROLE_RANK[self]


_ROLE_RANK = {Role.AGENT: 0, Role.ADMIN: 1, Role.SUPERADMIN: 2}


class Presence(StrEnum):
    ONLINE = "online"
    AWAY = "away"
    OFFLINE = "offline"


class DecisionAction(StrEnum):
    ANSWERED = "answered"  # the bot replied
    QUEUED = "queued"  # the thread now waits for a human
    WAITING = "waiting"  # the thread was already waiting; the message joins it
    TO_AGENT = "to_agent"  # the thread is assigned; its agent gets the message


# --- normalised traffic ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identity:
    """One address of a person on one channel: a phone number, a chat id, an e-mail address."""

    channel: str
    address: str

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.address}"

    def to_doc(self) -> dict[str, str]:
        return {"channel": self.channel, "address": self.address}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Identity:
        return cls(channel=str(doc["channel"]), address=str(doc["address"]))


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata of a file that came with a message; the bytes stay with the provider."""

    kind: str  # image | document | audio | video | location | contact | other
    name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    url: str | None = None
    provider_ref: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Attachment:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


@dataclass(frozen=True, slots=True)
class Inbound:
    """A customer message as every channel hands it to the router."""

    account_id: str
    channel: str
    external_id: str  # the provider's id: the dedup key together with account and channel
    sender: Identity
    text: str
    sender_name: str | None = None
    attachments: tuple[Attachment, ...] = ()
    sent_at: datetime | None = None
    phone: str | None = None  # E.164, when the channel vouches for the sender's number
    meta: Mapping[str, Any] = field(default_factory=dict)
    # when the channel's customer-service window closes after this message (WhatsApp: +24 h)
    window_ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageEdit:
    """The customer changed a message they sent earlier (Telegram's ``edited_message``).

    ``message`` is the message as it reads now, under the original's external id; ``edited_at``
    orders edits, so a late delivery of an older edit changes nothing.
    """

    message: Inbound
    edited_at: datetime


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A provider's report on one of our outbound messages."""

    account_id: str
    channel: str
    external_id: str  # the provider id of *our* outbound message
    status: DeliveryStatus
    at: datetime
    error: str | None = None


ProviderEvent = Inbound | MessageEdit | StatusUpdate  # what an adapter's ``parse`` returns


@dataclass(frozen=True, slots=True)
class Outbound:
    """One message the router sends to a customer through a channel adapter."""

    account_id: str
    channel: str
    thread_id: str
    message_id: str
    to: Identity
    text: str
    options: tuple[str, ...] = ()  # quick replies; adapters without buttons append them as text
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A phone call that ended, as a voice provider reports it: shown in the contact's thread."""

    account_id: str
    channel: str  # the voice channel that reported it ("voice")
    external_id: str  # the provider's call id: one event per call
    customer: str  # the customer's number (E.164) or caller id
    direction: Direction  # IN: the customer called us
    status: str  # the provider's final call status (completed, no-answer, busy, failed, canceled)
    answered: bool
    duration: int = 0  # seconds
    at: datetime | None = None
    phone: str | None = None  # E.164, when the provider vouches for the number (contact merge)

    @property
    def missed(self) -> bool:
        """The customer called and nobody talked to them: someone should call back."""
        return self.direction == Direction.IN and not self.answered


@dataclass(frozen=True, slots=True)
class Decision:
    """What the dispatcher did with one inbound message."""

    action: DecisionAction
    reason: str
    thread_id: str
    replies: tuple[str, ...] = ()  # ids of outbound messages created for it

    def to_doc(self) -> dict[str, Any]:
        return {
            "action": str(self.action),
            "reason": self.reason,
            "thread_id": self.thread_id,
            "replies": list(self.replies),
        }


# --- stored documents -------------------------------------------------------------------------

def _load_enum(kind: type[StrEnum]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else kind(value)


def _load_identities(value: Any) -> list[Identity]:
    return [Identity.from_doc(item) for item in value or []]


def _load_identity(value: Any) -> Identity:
    return Identity.from_doc(value)


def _load_attachments(value: Any) -> tuple[Attachment, ...]:
    return tuple(Attachment.from_doc(item) for item in value or [])


def _load_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value or ())


def load_time(value: Any) -> datetime | None:
    """A stored time back as an aware datetime: epoch milliseconds (how we store every time), or
    a date or ISO string written by other tools."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return from_epoch_ms(int(value))
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    raise TypeError(f"not a stored time: {value!r}")


def stored(value: Any) -> Any:
    """A value as the store keeps it: times as epoch ms, enums as strings, records as documents.
    Wrap what goes into ``$set`` and into query comparisons with it."""
    return _dump(value)


def _dump(value: Any) -> Any:
    if isinstance(value, datetime):
        return epoch_ms(value)
    if isinstance(value, (Identity, Attachment)):
        return value.to_doc()
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_dump(item) for item in value]
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    return value


class Document:
    """A dataclass stored as one MongoDB document; ``id`` is stored as ``_id``.

    ``None`` fields are left out of the stored document, so optional keys stay absent (partial
    unique indexes rely on that). Every time is stored as integer epoch milliseconds and read back
    as an aware ``datetime``: the embedded server stores a date written by ``$set`` as a string
    and compares dates at one-second precision, while integers behave the same everywhere and
    make durations plain subtraction in aggregation pipelines. Other fields that need converting
    on load name a loader in ``LOADERS``.
    """

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {}

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            doc["_id" if f.name == "id" else f.name] = _dump(value)
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Self:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            key = "_id" if f.name == "id" else f.name
            if key not in doc:
                continue
            loader = cls.LOADERS.get(f.name)
            if loader is None and "datetime" in str(f.type):
                loader = load_time
            elif loader is None and f.type == "bool":  # the embedded server returns a $set bool as 0/1
                loader = bool
            kwargs[f.name] = loader(doc[key]) if loader else doc[key]
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        """The record for the API: ``id`` instead of ``_id``, times as ISO 8601 strings."""
        doc: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is not None:
                doc[f.name] = value.isoformat() if isinstance(value, datetime) else _dump(value)
        return doc


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
    # never stored: the secrets of ``channels`` that did not open when read ("telegram.token" ->
    # why); they are left out of ``channels``, and that channel of the account reports the problem
    sealing_problems: dict[str, str] | None = None


@dataclass(slots=True)
class Contact(Document):
    """One person, with every address they have written from."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {"identities": _load_identities}

    id: str
    account_id: str
    created_at: datetime
    updated_at: datetime
    name: str | None = None
    identities: list[Identity] = field(default_factory=list)


@dataclass(slots=True)
class Thread(Document):
    """One conversation with a contact on a channel, from opening to resolution."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {"status": _load_enum(ThreadStatus)}

    id: str
    account_id: str
    contact_id: str
    channel: str
    status: ThreadStatus
    opened_at: datetime
    last_message_at: datetime
    address: str | None = None  # the customer's address on this channel: where replies go
    # present only while the thread is open: "<contact>:<channel>", unique, so a contact has at
    # most one open thread per channel however many processes race to open one
    open_key: str | None = None
    assignee: str | None = None
    team: str | None = None
    priority: int = 0
    queued_at: datetime | None = None
    queued_by: str | None = None  # the inbound message whose dispatch queued the thread
    escalation_reason: str | None = None
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None
    email_keys: list[str] = field(default_factory=list)
    wa_window_ends_ms: int | None = None  # epoch ms when WhatsApp's customer-service window closes
    labels: list[str] = field(default_factory=list)
    awaiting_since: datetime | None = None  # oldest customer message no agent has answered yet
    last_assignee: str | None = None  # who had it before it was resolved or requeued
    reopened_at: datetime | None = None
    # for the reports: kept when requeues and reopenings change the fields above
    assigned_at: datetime | None = None  # the current (or last) assignment
    first_queued_at: datetime | None = None
    first_assigned_at: datetime | None = None
    handoff_reason: str | None = None  # why the bot handed the conversation to humans
    next_response_breaches: int = 0  # agent answers that came later than the next-response SLA

    @property
    def wa_window_ends_at(self) -> datetime | None:
        return None if self.wa_window_ends_ms is None else from_epoch_ms(self.wa_window_ends_ms)

    def to_doc(self) -> dict[str, Any]:
        doc = Document.to_doc(self)
        doc["neg_priority"] = -self.priority  # the queue's order, see queue_store.QUEUE_ORDER
        return doc


@dataclass(slots=True)
class Message(Document):
    """One message of a thread, in either direction."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "direction": _load_enum(Direction),
        "delivery_status": _load_enum(DeliveryStatus),
        "dispatch_state": _load_enum(DispatchState),
        "attachments": _load_attachments,
    }

    id: str
    account_id: str
    thread_id: str
    contact_id: str
    direction: Direction
    channel: str
    text: str
    created_at: datetime
    sender: dict[str, Any] = field(default_factory=dict)  # {"kind": SenderKind, "id"?, "name"?}
    external_id: str | None = None  # provider id; unique with account and channel when present
    attachments: tuple[Attachment, ...] = ()
    nlu: dict[str, Any] | None = None
    delivery_status: DeliveryStatus | None = None  # outbound only
    delivery_rank: int | None = None  # DeliveryStatus.rank, so updates can be "forward only"
    delivery_updated_at: datetime | None = None
    dispatch_state: DispatchState | None = None  # inbound only
    dispatch_due_ms: int | None = None  # when a sweeper may take over an unfinished dispatch
    decision: dict[str, Any] | None = None
    in_reply_to: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class OutboxItem(Document):
    """One pending outbound send: leased by one worker at a time, retried, or dead-lettered."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "state": _load_enum(OutboxState),
        "to": _load_identity,
        "options": _load_tuple,
    }

    id: str
    account_id: str
    channel: str
    thread_id: str
    message_id: str
    to: Identity
    text: str
    state: OutboxState
    due_ms: int  # epoch ms; pending: next attempt time, leased: lease expiry
    created_at: datetime
    options: tuple[str, ...] = ()
    attempts: int = 0
    lease_owner: str | None = None
    last_error: str | None = None
    sent_at: datetime | None = None
    provider_message_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_outbound(self) -> Outbound:
        return Outbound(
            account_id=self.account_id,
            channel=self.channel,
            thread_id=self.thread_id,
            message_id=self.message_id,
            to=self.to,
            text=self.text,
            options=self.options,
            meta=dict(self.meta),
        )


@dataclass(slots=True)
class Agent(Document):
    """A human who answers customers in the console."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "role": _load_enum(Role),
        "presence": _load_enum(Presence),
    }

    id: str
    account_id: str
    login: str
    name: str
    role: Role
    created_at: datetime
    password_hash: str | None = None
    teams: list[str] = field(default_factory=list)
    capacity: int = 5
    presence: Presence = Presence.OFFLINE
    # open conversations held, and free slots (capacity - load): reserved atomically before an
    # assignment, so no agent is ever given more than their capacity
    load: int = 0
    free: int = 5
    last_assigned_ms: int = 0  # round robin among equally loaded agents
    lang: str = "en"
    active: bool = True

    @property
    def is_admin(self) -> bool:
        """Admins and superadmins run the account (admin pages, any conversation)."""
        return Role(self.role).rank >= Role.ADMIN.rank


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
