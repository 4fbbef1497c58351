"""The console's template picker, behind a small interface the WhatsApp channel fills in.

Outside WhatsApp's 24-hour customer service window only an approved template may be sent. The
console asks a ``TemplateCatalog`` which templates a thread may use and hands the chosen one back
to it to send; until a channel registers a catalog (``app[TEMPLATES]``), the picker says there
are none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from bot.handlers.kit.protocol import ChannelAdapter
from bot.keys import ADAPTERS, OUTBOX
from bot.router.replies import Reply, ReplyRefused, send_reply
from conversations.agent_models import Agent
from conversations.thread_models import Thread


@dataclass(frozen=True)
class TemplateChoice:
    name: str
    language: str
    preview: str = ""
    parameters: tuple[str, ...] = ()


class TemplateCatalog(Protocol):
    async def templates(self, thread: Thread) -> list[TemplateChoice]:
        """Templates this thread's channel account may send."""

    async def send(
        self, thread: Thread, agent: Agent, name: str, parameters: Sequence[str], key: str
    ) -> None:
        """Queue the template for sending (through the outbox, once per ``key``); raise
        ``LookupError`` if it is unknown or its parameters do not fit."""


class NoTemplates:
    """The catalog when no channel offers templates: nothing to pick."""

    async def templates(self, thread: Thread) -> list[TemplateChoice]:
        return []

    async def send(
        self, thread: Thread, agent: Agent, name: str, parameters: Sequence[str], key: str
    ) -> None:
        raise LookupError("no templates are configured for this channel")


class ChannelTemplates:
    """The templates a thread's channel adapter has configured (``whatsapp.templates``), sent
    through the same checks as an API reply."""

    def __init__(self, app: web.Application) -> None:
        self._app = app  # the outbox exists only once the application has started

    @property
    def _adapters(self) -> dict[str, ChannelAdapter]:
        return self._app[ADAPTERS]

    async def templates(self, thread: Thread) -> list[TemplateChoice]:
        source = getattr(self._adapters.get(thread.channel), "templates", None)
        configured: Mapping[str, Mapping[str, object]] = await source(thread.account_id) if source else {}
        return [
            TemplateChoice(name, str(spec.get("language", "")), str(spec.get("text", "")),
                           tuple(str(p) for p in spec.get("parameters", []) or []))  # type: ignore[attr-defined]
            for name, spec in sorted(configured.items())
        ]

    async def send(
        self, thread: Thread, agent: Agent, name: str, parameters: Sequence[str], key: str
    ) -> None:
        adapter = self._adapters.get(thread.channel)
        if adapter is None:
            raise LookupError(f"the {thread.channel} channel is not configured here")
        reply = Reply(key=f"template:{key}", template=name, parameters=tuple(parameters), agent=agent.id)
        try:
            await send_reply(self._app[OUTBOX], adapter, thread, reply)
        except ReplyRefused as exc:
            raise LookupError(str(exc)) from None


TEMPLATES: web.AppKey[TemplateCatalog] = web.AppKey("templates")
