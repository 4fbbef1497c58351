"""The console's template picker, behind a small interface the WhatsApp channel fills in.

Outside WhatsApp's 24-hour customer service window only an approved template may be sent. The
console asks a ``TemplateCatalog`` which templates a thread may use and hands the chosen one back
to it to send; until a channel registers a catalog (``app[TEMPLATES]``), the picker says there
are none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from conversations.models import Agent, Thread


@dataclass(frozen=True)
class TemplateChoice:
    name: str
    language: str
    preview: str = ""


class TemplateCatalog(Protocol):
    async def templates(self, thread: Thread) -> list[TemplateChoice]:
        """Templates this thread's channel account may send."""

    async def send(self, thread: Thread, agent: Agent, name: str, language: str) -> None:
        """Queue the template for sending (through the outbox); raise ``LookupError`` if unknown."""


class NoTemplates:
    """The catalog until a channel provides one: nothing to pick."""

    async def templates(self, thread: Thread) -> list[TemplateChoice]:
        return []

    async def send(self, thread: Thread, agent: Agent, name: str, language: str) -> None:
        raise LookupError("no templates are configured for this channel")


TEMPLATES: web.AppKey[TemplateCatalog] = web.AppKey("templates")
