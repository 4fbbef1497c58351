"""What the pipeline offers channels: the one way anything a customer did reaches the core.

Every adapter is given the sink once (``bind``) before its routes are served or its background
work starts, and hands it everything it received: a message (``receive``), a webhook's batch of
messages, edits and delivery reports (``record``), an ended call (``call_event``). The pipeline
(``bot/router/inbound.py``) implements it, so channels never import the router. The sink makes
every event storable (``bot/router/sanitize.py``) exactly once, whatever the channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from conversations.thread_models import Activity, Decision, Message, Thread
from conversations.traffic import CallEvent, Inbound, MessageEdit, ProviderEvent, StatusUpdate


@dataclass(frozen=True)
class Recorded:
    """An inbound message as stored, with its thread; ``duplicate`` if stored before. ``activity``:
    the message's mark on its thread not written yet (its dispatch writes it with the thread's
    dialogue state: one update instead of two)."""

    message: Message
    thread: Thread
    duplicate: bool
    activity: Activity | None = None


class InboundSink(Protocol):
    """Where channels hand what they received; each call returns once it is durably stored."""

    async def receive(self, inbound: Inbound) -> tuple[Recorded, asyncio.Task[Decision | None] | None]:
        """Record one message; returns it and the task dispatching it (``None`` for a duplicate).
        Raises ``StoreUnavailable`` when nothing could be stored (the sender must retry)."""

    async def record(self, events: Sequence[ProviderEvent]) -> dict[str, int]:
        """Record a provider payload's messages, edits and delivery reports, in order; the counts
        of each outcome. ``MalformedPayload`` if any entry is unusable, before any is stored."""

    async def apply_status(self, update: StatusUpdate) -> bool:
        """Apply a delivery report; ``False`` when it changed nothing (stale or unknown)."""

    async def apply_edit(self, edit: MessageEdit) -> Recorded | None:
        """Apply a customer's edit; the new record when the edited message was never recorded."""

    async def call_event(self, event: CallEvent, thread_channel: str) -> tuple[Message, bool]:
        """Record an ended call in the caller's thread on ``thread_channel`` (where agents answer
        phone contacts); the message and whether it was recorded before."""


@runtime_checkable
class ThreadLocator(Protocol):
    """A channel whose messages do not simply join the contact's one open thread there: e-mail
    threads by its headers, so one sender can have several conversations open at once."""

    async def locate_thread(self, inbound: Inbound, contact_id: str, now: datetime) -> Thread:
        """The thread ``inbound`` belongs to, opened if needed, its last activity set to ``now``."""


@runtime_checkable
class InboundSource(Protocol):
    """A channel that fetches its messages itself (IMAP) or listens on a socket of its own (SMTP)
    instead of being called by a webhook: started once bound to the sink, stopped by the
    adapter's ``shutdown``."""

    async def start_receiving(self) -> None: ...
