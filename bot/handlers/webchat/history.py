"""What a returning visitor sees when the chat opens (the ``welcome`` frame): their conversations on
this browser, oldest first, the resolved ones too, each resolved one closed by a ``resolved`` note."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.handlers.webchat.frames import message_frame
from bot.handlers.webchat.visitor_forms import prechat_wanted
from conversations.repositories import Repositories
from conversations.thread_models import ThreadStatus

CONVERSATIONS = 5  # the visitor's newest conversations shown
MESSAGES = 50  # the newest messages shown of them all


async def visitor_history(
    store: Repositories, account_id: str, visitor: str, url: Callable[[str], str], inbox_id: str | None = None
) -> dict[str, Any]:
    """The welcome's ``history`` (messages and ``resolved`` notes), the open conversation's
    ``thread_id`` and ``status`` (``None`` when there is none), and whether to ask the ``prechat``
    form first. Only the conversations of the web chat the page is of (``inbox_id``)."""
    contact_id = await store.contacts.contact_by_identity(account_id, "webchat", visitor)
    threads = await store.threads.contact_threads(account_id, contact_id) if contact_id else []
    mine = [t for t in threads if t.channel == "webchat" and t.address == visitor and t.inbox_id == inbox_id]
    mine = mine[-CONVERSATIONS:]
    history: list[dict[str, Any]] = []
    for thread in mine:
        history.extend(message_frame(m, url) for m in await store.messages.thread_messages(thread.id, MESSAGES))
        if thread.status == ThreadStatus.RESOLVED:
            resolved = thread.resolved_at.isoformat() if thread.resolved_at else None
            history.append({"type": "resolved", "thread_id": thread.id, "created_at": resolved})
    history = history[-MESSAGES:]
    open_thread = next((t for t in reversed(mine) if t.status != ThreadStatus.RESOLVED), None)
    return {
        "thread_id": open_thread.id if open_thread else None,
        "status": str(open_thread.status) if open_thread else None,
        "history": history,
        "prechat": await prechat_wanted(store, account_id, visitor, contact_id, bool(mine), inbox_id),
    }
