"""Replies written by agents (or their tools), checked against what the thread's channel allows
before they are queued: WhatsApp's 24-hour customer-service window, and message templates.

Outside the window a free-form reply is refused with :class:`ServiceWindowClosed`, whose message
tells the agent why and which templates can be sent instead; a template reply is checked against
its configuration (name, language, parameters) and sent as ``meta["template"]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.handlers.kit.protocol import ChannelAdapter, window_closed_message
from bot.router.outbox import Outbox
from conversations.models import utcnow
from conversations.thread_models import Message, SenderKind, Thread
from conversations.traffic import Identity


class ReplyRefused(Exception):
    """The reply cannot be sent as asked; ``code`` names why for API clients."""

    code = "reply_refused"


class ServiceWindowClosed(ReplyRefused):
    code = "service_window_closed"


class UnknownTemplate(ReplyRefused):
    code = "unknown_template"


@dataclass(frozen=True)
class Reply:
    """What an agent asked to send: free text (with options or a document) or a template."""

    key: str  # idempotency key: the same key never sends twice
    text: str = ""
    options: tuple[str, ...] = ()
    document: Mapping[str, Any] | None = None
    template: str | None = None
    parameters: Sequence[str] | Mapping[str, str] = ()
    agent: str | None = None
    agent_name: str | None = None  # shown in the thread's history beside the reply


async def _templates(adapter: ChannelAdapter, account_id: str, inbox_id: str | None = None) -> Mapping[str, Any]:
    source = getattr(adapter, "templates", None)
    return await source(account_id, inbox_id) if source is not None else {}


def _template_values(name: str, spec: Mapping[str, Any], given: Sequence[str] | Mapping[str, str]) -> list[str]:
    names = list(spec.get("parameters", []))
    if isinstance(given, Mapping):
        missing = [n for n in names if n not in given]
        if missing or len(given) != len(names):
            raise ReplyRefused(f"template {name} takes the parameters {', '.join(names) or '(none)'}")
        return [str(given[n]) for n in names]
    if len(given) != len(names):
        raise ReplyRefused(f"template {name} takes {len(names)} parameters ({', '.join(names)}), got {len(given)}")
    return [str(v) for v in given]


def _render(spec: Mapping[str, Any], values: list[str]) -> str:
    """The template as the thread shows it: its configured ``text`` ("Hi {name}") filled in."""
    try:
        return str(spec.get("text", "")).format(**dict(zip(spec.get("parameters", []), values)))
    except (KeyError, IndexError, ValueError):
        return ""


async def template_message(
    adapter: ChannelAdapter,
    account_id: str,
    name: str,
    parameters: Sequence[str] | Mapping[str, str],
    inbox_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """The text a thread shows for template ``name`` filled with ``parameters``, and what the
    channel sends (``meta["template"]``); :class:`ReplyRefused` if the channel (the account's
    inbox ``inbox_id``, or its first) has no such template or the parameters do not fit it."""
    templates = await _templates(adapter, account_id, inbox_id)
    spec = templates.get(name) if adapter.capabilities.templates else None
    if spec is None:
        known = ", ".join(sorted(templates)) or "none"
        raise UnknownTemplate(f"no template {name!r} on {adapter.name} (configured: {known})")
    values = _template_values(name, spec, parameters)
    text = _render(spec, values) or f"[template {name}] {', '.join(values)}"
    return text, {"name": name, "language": spec["language"], "parameters": values}


def reply_address(thread: Thread, adapters: Mapping[str, ChannelAdapter]) -> Identity:
    """Where a person's reply in ``thread`` goes: the address the customer asked to be answered at
    (the widget's out-of-hours form: their e-mail) when that channel is served here, else the
    thread's own."""
    asked = thread.reply_by
    if asked and asked.get("channel") in adapters and asked.get("address"):
        return Identity(str(asked["channel"]), str(asked["address"]))
    return Identity(thread.channel, thread.address or "")


async def send_reply(
    outbox: Outbox, adapter: ChannelAdapter, thread: Thread, reply: Reply, to: Identity | None = None
) -> Message:
    """Queue ``reply`` on ``thread`` through the outbox (to ``to``, else the thread's address), or
    raise :class:`ReplyRefused`."""
    meta: dict[str, Any] = {}
    text, inbox = reply.text, thread.inbox_id if adapter.name == thread.channel else None  # the thread's number
    if reply.template is not None:
        text, meta["template"] = await template_message(
            adapter, thread.account_id, reply.template, reply.parameters, inbox
        )
    else:
        if not text.strip() and reply.document is None:
            raise ReplyRefused("a reply needs text, a document or a template")
        if adapter.capabilities.window_open(thread.wa_window_ends_at, utcnow()) is False:
            ends = thread.wa_window_ends_at
            templates = await _templates(adapter, thread.account_id, inbox)
            raise ServiceWindowClosed(window_closed_message(ends.isoformat() if ends else None, templates))
        if reply.document is not None:
            meta["document"] = dict(reply.document)
    sender = {
        "kind": str(SenderKind.AGENT),
        **({"id": reply.agent} if reply.agent else {}),
        **({"name": reply.agent_name} if reply.agent_name else {}),
    }
    return await outbox.enqueue_reply(
        dedup_key=f"reply:{thread.id}:{reply.key}",
        thread=thread,
        to=to or Identity(thread.channel, thread.address or ""),
        text=text,
        sender=sender,
        options=reply.options,
        meta=meta,
    )
