"""The channel seam: the adapter protocol every channel implements, and the ``CHANNELS`` table.

A new channel is one module in ``bot/handlers/`` with a class satisfying :class:`ChannelAdapter`,
one line in ``CHANNELS``, and recorded provider payloads under ``tests/fixtures/<channel>/``.
Adapters normalise provider traffic into ``Inbound`` / ``StatusUpdate`` at the edge and turn an
``Outbound`` into one provider call; nothing past them sees provider JSON.
"""

from __future__ import annotations

from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from aiohttp import web

from bot.metrics import Metrics
from conversations.traffic import Outbound, ProviderEvent

if TYPE_CHECKING:
    from bot.handlers.kit.egress_guards import EgressGuards
    from bot.handlers.kit.sink import InboundSink
    from bot.settings import Settings
    from conversations.repositories import Repositories


# --- errors -----------------------------------------------------------------------------------


class VerificationError(Exception):
    """A request's signature or secret is missing or wrong: 401/403, nothing stored."""

    status = 401

    @classmethod
    def forbidden(cls, message: str) -> VerificationError:
        """The credential was presented but is wrong: 403."""
        error = cls(message)
        error.status = 403
        return error


class MalformedPayload(ValueError):
    """A payload cannot be understood: 400 with this one-line reason, nothing stored."""


class UnsupportedEvent(Exception):
    """A well-formed provider event we do not handle: logged and acknowledged with 2xx."""


class SendError(Exception):
    """Base of the errors an adapter's ``send`` raises."""


class RetryableSendError(SendError):
    """The provider may accept the send later (rate limit, 5xx, network)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(SendError):
    """The provider will never accept this send (bad recipient, blocked, 4xx): dead-letter it."""


# --- the protocol -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a channel can carry beyond plain text."""

    buttons: bool = False
    media: bool = False
    files: bool = False  # an agent's file, uploaded to the store, goes out on it
    templates: bool = False
    service_window_hours: int | None = None  # WhatsApp's 24-hour customer service window
    max_text_length: int | None = None
    max_file_bytes: int | None = None  # the largest file the channel carries; None: the router's upload limit

    @property
    def reply_window(self) -> bool:
        """Whether free-form replies may go out only while the customer's last message is recent."""
        return self.service_window_hours is not None

    def window_open(self, ends_at: datetime | None, now: datetime) -> bool | None:
        """Whether a free-form reply may go out at ``now`` on a thread whose window ends at
        ``ends_at`` (``Thread.wa_window_ends_at``, or ``Outbound.window_ends_at`` as queued);
        ``None`` on a channel without a reply window. Every customer message moves the end forward;
        the queue, replies, the console and the adapter all ask this one rule."""
        if not self.reply_window:
            return None
        return ends_at is not None and ends_at > now


def window_closed_message(closed_at: str | None, templates: Mapping[str, Any]) -> str:
    """What the agent is told when a free-form WhatsApp message is refused."""
    when = f"closed at {closed_at}" if closed_at else "is not open (the customer has not written yet)"
    names = ", ".join(sorted(templates)) or "none configured (see whatsapp.templates)"
    return (
        f"WhatsApp's 24-hour customer service window for this conversation {when}; "
        f"free-form messages are refused until the customer writes again. Send a template instead: {names}"
    )


@runtime_checkable
class ChannelAdapter(Protocol):
    """One channel: verifies and parses what the provider sends us, sends what we answer."""

    name: str
    capabilities: Capabilities

    async def verify(self, request: web.Request, body: bytes) -> None:
        """Raise ``VerificationError`` unless the request really comes from the provider."""

    def parse(self, body: bytes, headers: Mapping[str, str]) -> list[ProviderEvent]:
        """Normalise one provider payload (every entry of a batch); ``MalformedPayload`` if bad."""

    async def send(self, outbound: Outbound) -> str:
        """Send one message; returns the provider's message id. Raises a ``SendError``."""

    async def typing(self, account_id: str, address: str, inbox_id: str | None = None) -> bool:
        """Show the customer at ``address`` that an agent is typing, where the channel can (best
        effort: nothing is stored or retried); whether it was shown."""

    def routes(self) -> list[web.RouteDef]:
        """The HTTP routes (webhooks, sockets, pages) this channel serves."""

    async def start(self, store: Repositories) -> None:
        """Start-up work that needs I/O (secrets from the store, provider sessions)."""

    def bind(self, sink: InboundSink) -> None:
        """Where everything received goes; called once, before routes are served or background work
        or receiving starts."""

    async def shutdown(self) -> None:
        """The router is stopping: end long-lived connections so requests in flight can drain."""

    def background(self) -> list[Coroutine[Any, Any, None]]:
        """Long-running work the channel needs once bound to the sink (Telegram polling)."""

    async def close(self) -> None:
        """Release connections and sessions."""


class BaseAdapter:
    """Shared behaviour: rich output falls back to text on channels that cannot carry it."""

    name = "base"
    capabilities = Capabilities()
    _sink: InboundSink | None = None

    @property
    def sink(self) -> InboundSink:
        """The sink this adapter hands what it receives to (``bind`` first)."""
        if self._sink is None:
            raise RuntimeError(f"the {self.name} channel is not bound to a sink: bind() first")
        return self._sink

    def bind(self, sink: InboundSink) -> None:
        self._sink = sink

    def render_text(self, outbound: Outbound) -> str:
        """The message as plain text: options become a numbered list when there are no buttons."""
        text = outbound.text
        if outbound.options and not self.capabilities.buttons:
            lines = [f"{i}. {option}" for i, option in enumerate(outbound.options, start=1)]
            text = "\n".join([text, "", *lines]) if text else "\n".join(lines)
        limit = self.capabilities.max_text_length
        return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"

    async def verify(self, request: web.Request, body: bytes) -> None:
        return None

    async def typing(self, account_id: str, address: str, inbox_id: str | None = None) -> bool:
        return False  # the channel has no typing indicator

    def routes(self) -> list[web.RouteDef]:
        return []

    async def start(self, store: Repositories) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def background(self) -> list[Coroutine[Any, Any, None]]:
        return []

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class ChannelContext:
    """What an adapter is built from (no I/O happens at construction)."""

    settings: Settings
    account_id: str
    egress: EgressGuards  # the install's egress guards: a channel's clients go through its own
    metrics: Metrics = field(default_factory=Metrics)  # the install's (the web chat counts its sockets)


@runtime_checkable
class FollowsEvents(Protocol):
    """A channel that acts on the store's event log of every router process, followed once per
    process with the consoles' live feed (the web chat pushes the replies another process sent)."""

    def following(self) -> bool:
        """Whether it has anything to act on now (the feed is polled only while someone listens)."""

    async def follow(self, event: Mapping[str, Any]) -> None:
        """One event; never raises."""
