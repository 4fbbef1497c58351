"""Stored records of conversations: contacts, threads with their timelines, messages, the
dispatcher's decisions and the send state of outbound messages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from conversations.models import Document, epoch_ms, from_epoch_ms, load_enum, load_tuple
from conversations.search_words import search_text
from conversations.traffic import Attachment, DeliveryStatus, Direction, Identity, Outbound


class ThreadStatus(StrEnum):
    BOT = "bot"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    RESOLVED = "resolved"


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


class DecisionAction(StrEnum):
    ANSWERED = "answered"  # the bot replied
    QUEUED = "queued"  # the thread now waits for a human
    WAITING = "waiting"  # the thread was already waiting; the message joins it
    TO_AGENT = "to_agent"  # the thread is assigned; its agent gets the message


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


def _load_identities(value: Any) -> list[Identity]:
    return [Identity.from_doc(item) for item in value or []]


def _load_identity(value: Any) -> Identity:
    return Identity.from_doc(value)


def _load_attachments(value: Any) -> tuple[Attachment, ...]:
    return tuple(Attachment.from_doc(item) for item in value or [])


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
    attributes: dict[str, Any] = field(default_factory=dict)  # the account's custom attributes, by key
    # what the website widget's pre-chat form asked and was given: consent (with its time and the
    # privacy notice's address), when the form was filled
    prechat: dict[str, Any] | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = Document.to_doc(self)
        doc["search_text"] = search_text(self.name or "")  # what contact search finds it by
        return doc


def open_key(contact_id: str, channel: str, inbox_id: str | None = None) -> str:
    """What a contact's open thread on a channel is unique by: ``<contact>:<channel>`` in the
    account's first inbox of the channel (as every release before inboxes wrote it), with
    ``@<inbox>`` added in any other."""
    return f"{contact_id}:{channel}" if inbox_id is None else f"{contact_id}:{channel}@{inbox_id}"


@dataclass(frozen=True)
class Activity:
    """A customer message's mark on its thread: the last activity moved forward to ``at``, the
    WhatsApp service window's end to ``window_ends_at`` if later; with ``unread`` (not a
    redelivery) the thread is unread from the oldest message no agent has seen. Every part only
    moves forward, so writing it alone or with the dialogue state reads the same.

    Kept as epoch milliseconds with ``$max``: the embedded server compares dates at one-second
    precision, stores a date written by ``$set`` as a string, and under load sometimes fails to
    match an ``$or`` / ``$exists`` guard on a just-inserted document."""

    at: datetime
    window_ends_at: datetime | None = None
    unread: bool = True

    @classmethod
    def left_unwritten(cls, message: Message, thread: Thread) -> Activity | None:
        """A message's activity its recorder may have left to its dispatch (which died): the thread
        has not seen it yet. A rating in a resolved conversation never marks it. The thread as read
        is given the reply window the message opened (WhatsApp's), which its reply is checked against."""
        if message.meta.get("satisfaction") or (thread.last_inbound_ms or 0) >= epoch_ms(message.created_at):
            return None
        if message.window_ends_ms is None:
            return cls(message.created_at)
        thread.wa_window_ends_ms = max(thread.wa_window_ends_ms or 0, message.window_ends_ms)  # its reply's window
        return cls(message.created_at, from_epoch_ms(message.window_ends_ms))

    def update(self) -> dict[str, Any]:
        fields = {"last_message_at": epoch_ms(self.at)}
        if self.window_ends_at is not None:
            fields["wa_window_ends_ms"] = epoch_ms(self.window_ends_at)
        update: dict[str, Any] = {"$max": fields}
        if self.unread:  # a new customer message: unread from it on, unless an earlier one is unread already
            fields["last_inbound_ms"] = epoch_ms(self.at)
            update["$min"] = {"unread_since_ms": epoch_ms(self.at)}
            update["$inc"] = {"unread_count": 1}
        return update


@dataclass(slots=True)
class Thread(Document):
    """One conversation with a contact on a channel, from opening to resolution."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {"status": load_enum(ThreadStatus)}

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
    inbox_id: str | None = None  # one of the account's extra inboxes (conversations/inboxes.py)
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
    last_inbound_ms: int | None = None  # epoch ms of the customer's last message
    unread_since_ms: int | None = None  # epoch ms of the oldest customer message no agent has seen
    seen_ms: int | None = None  # epoch ms up to which an agent of the account saw the thread
    unread_count: int | None = None  # customer messages since unread_since_ms (None: written by an older release)
    # where the customer asked to be answered instead of the thread's channel, {"channel", "address"}
    # (the widget's out-of-hours form: their e-mail)
    reply_by: dict[str, str] | None = None
    # the bot's dialogue state as read with the thread, so deciding a message needs no second
    # read; only ``ThreadsRepository.swap_thread_nlu_state`` writes it (versioned), never to_doc
    nlu_state: dict[str, Any] | None = None

    @property
    def wa_window_ends_at(self) -> datetime | None:
        return None if self.wa_window_ends_ms is None else from_epoch_ms(self.wa_window_ends_ms)

    def to_doc(self) -> dict[str, Any]:
        doc = Document.to_doc(self)
        doc.pop("nlu_state", None)
        doc["neg_priority"] = -self.priority  # the queue's order, see queue.QUEUE_ORDER
        return doc

    def to_json(self) -> dict[str, Any]:
        doc = Document.to_json(self)
        doc.pop("nlu_state", None)  # the console's thread view shows it, summarised
        return doc


@dataclass(slots=True)
class Message(Document):
    """One message of a thread, in either direction."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "direction": load_enum(Direction),
        "delivery_status": load_enum(DeliveryStatus),
        "dispatch_state": load_enum(DispatchState),
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
    window_ends_ms: int | None = None  # inbound only: the reply window it opens (WhatsApp's), epoch ms
    decision: dict[str, Any] | None = None
    in_reply_to: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc = Document.to_json(self)
        doc.pop("window_ends_ms", None)  # kept for a sweeper's dispatch: the thread's is the one to read
        return doc

    def to_doc(self, terms: str | None = None) -> dict[str, Any]:
        """The stored document, with ``terms`` as its ``search_text`` (made here when not given)."""
        doc = Document.to_doc(self)
        doc["search_text"] = search_text(self.text) if terms is None else terms  # what search finds it by
        return doc


@dataclass(slots=True)
class OutboxItem(Document):
    """The send of one outbound message (stored on the message, ``send``; ``id`` is the
    message's): leased by one worker at a time, retried, or dead-lettered."""

    LOADERS: ClassVar[dict[str, Callable[[Any], Any]]] = {
        "state": load_enum(OutboxState),
        "to": _load_identity,
        "options": load_tuple,
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
    window_ends_ms: int | None = None  # the thread's WhatsApp window when queued: checked at send, no read
    inbox_id: str | None = None  # the thread's inbox, when one of the account's extra ones
    # never sent again after an attempt that ended with no outcome recorded (a campaign message)
    at_most_once: bool | None = None
    # set by a lease, never stored: the worker whose attempt before this lease ended with no
    # outcome recorded (it died, or lost the store, between leasing the item and recording a result)
    lapsed_owner: str | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = Document.to_doc(self)
        doc.pop("lapsed_owner", None)  # what one lease found, not a fact about the item
        return doc

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
            window_ends_at=None if self.window_ends_ms is None else from_epoch_ms(self.window_ends_ms),
            inbox_id=self.inbox_id,
        )


class TimelineKind(StrEnum):
    NOTE = "note"  # a private note: agents see it, the customer never does
    QUEUED = "queued"
    ASSIGNED = "assigned"
    TRANSFERRED = "transferred"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    LABELS = "labels"
    ACTION = "action"  # the bot ran a custom action: which, and how it ended


@dataclass(slots=True)
class TimelineEntry(Document):
    """Something that happened to a thread besides messages: notes, assignments, transfers."""

    id: str
    account_id: str
    thread_id: str
    contact_id: str
    kind: str
    at: datetime
    actor: str = ""  # agent id, or "system"
    actor_name: str = ""
    text: str = ""
    details: dict[str, Any] = field(default_factory=dict)
