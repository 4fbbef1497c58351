"""The console's template picker, behind a small interface the WhatsApp channel fills in.

Outside WhatsApp's 24-hour customer service window only an approved template may be sent. The
console asks a ``TemplateCatalog`` which templates a thread may use; the one the agent picks is
sent through the one reply path (``bot/services/replies.py``). Until a channel registers a catalog
(``app[TEMPLATES]``), the picker says there are none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from bot.handlers.kit.protocol import ChannelAdapter
from bot.keys import ADAPTERS
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


class NoTemplates:
    """The catalog when no channel offers templates: nothing to pick."""

    async def templates(self, thread: Thread) -> list[TemplateChoice]:
        return []


class ChannelTemplates:
    """The templates a thread's channel adapter has configured (``whatsapp.templates``)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    @property
    def _adapters(self) -> dict[str, ChannelAdapter]:
        return self._app[ADAPTERS]

    async def templates(self, thread: Thread) -> list[TemplateChoice]:
        source = getattr(self._adapters.get(thread.channel), "templates", None)
        configured: Mapping[str, Mapping[str, object]] = (
            await source(thread.account_id, thread.inbox_id) if source else {}
        )
        return [
            TemplateChoice(
                name,
                str(spec.get("language", "")),
                str(spec.get("text", "")),
                tuple(str(p) for p in spec.get("parameters", []) or []),  # type: ignore[attr-defined]
            )
            for name, spec in sorted(configured.items())
        ]


TEMPLATES: web.AppKey[TemplateCatalog] = web.AppKey("templates")
