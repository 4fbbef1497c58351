"""The normalised traffic that crosses the channel seam: frozen dataclasses built at the edge, so
nothing past a handler sees provider JSON (``Inbound``, ``MessageEdit``, ``StatusUpdate``,
``Outbound``, ``CallEvent``), and the addresses and attachments they carry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


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
    inbox_id: str | None = None  # one of the account's extra inboxes (None: its channel settings' own)


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
    # the recipient's address when the provider says they opted out (WhatsApp's 131050): recorded
    opted_out: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """A customer stopped (``stop``) or resumed (``start``) messages from the business in the
    provider's own app, not by writing to us (WhatsApp's marketing preference)."""

    account_id: str
    channel: str
    address: str  # the customer's address on the channel
    state: str  # "stop" | "start", as the consent records keep them
    at: datetime


ProviderEvent = Inbound | MessageEdit | StatusUpdate | ConsentChange  # what an adapter's ``parse`` returns


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
    window_ends_at: datetime | None = None  # the thread's reply window (WhatsApp's) when queued
    inbox_id: str | None = None  # the thread's inbox, when one of the account's extra ones


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
    inbox_id: str | None = None  # the account's SMS inbox whose number was called (None: its first)

    @property
    def missed(self) -> bool:
        """The customer called and nobody talked to them: someone should call back."""
        return self.direction == Direction.IN and not self.answered
