"""One reply path: every agent's reply — typed in the console, a WhatsApp template picked there,
or posted to the REST API — goes out here, and so is checked, sent and recorded the same way:

* the channel's rules (``bot/router/replies.py``: WhatsApp's 24-hour window, templates),
* queued once per idempotency key through the outbox,
* the thread's response clock (first response, a late next response for the reports),
* the live consoles refreshed, and the audit log's ``thread.reply`` (or ``thread.template``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot import audit
from bot.handlers.kit.media import megabytes
from bot.handlers.kit.protocol import ChannelAdapter
from bot.router.outbox import Outbox
from bot.router.queue import Queue, QueueError
from bot.router.replies import Reply, ReplyRefused, reply_address, send_reply
from bot.router.thread_log import ThreadLog
from conversations.agent_models import Agent
from conversations.files import QuotaExceeded
from conversations.ids import derived_id
from conversations.membership import thread_key
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Message, Thread


class ChannelNotConfigured(ReplyRefused):
    code = "channel_not_configured"


class FilesRefused(ReplyRefused):
    code = "file_refused"


@dataclass(frozen=True, slots=True)
class AgentFile:
    """A file an agent attached to a reply, as the browser sent it."""

    name: str
    content_type: str
    data: bytes


class Replies:
    def __init__(
        self,
        store: Repositories,
        outbox: Outbox,
        adapters: Mapping[str, ChannelAdapter],
        queue: Queue,
        log: ThreadLog,
        files_quota: int = 1024 * 1_000_000,
    ) -> None:
        self._files_quota = files_quota  # bytes of files each account may keep
        self._store = store
        self._outbox = outbox
        self._adapters = adapters
        self._queue = queue
        self._log = log

    async def send(
        self, thread: Thread, reply: Reply, actor: Agent | str, *, action: str = "thread.reply", **details: Any
    ) -> Message:
        """Queue ``reply`` on ``thread`` for ``actor`` (an agent, or the API caller); raise
        :class:`ReplyRefused` (with a ``code``) when it cannot go out as asked."""
        to = reply_address(thread, self._adapters)
        adapter = self._adapters.get(to.channel)
        if adapter is None:
            raise ChannelNotConfigured(f"the {to.channel} channel is not configured here")
        message = await send_reply(self._outbox, adapter, thread, reply, to)
        now = utcnow()
        await self._store.threads.mark_agent_replied(thread.id, now, next_late=self._queue.sla.late(thread, now))
        await audit.record(self._store, thread.account_id, actor, action, thread.id, message=message.id, **details)
        await self._log.live(thread, "message", replies=(message.id,))
        return message

    async def typing(self, thread_id: str, agent: Agent) -> bool:
        """Show the customer that ``agent`` is writing in their conversation (a thread the agent
        holds; admins: any open one), where the channel has a typing indicator; whether it did."""
        thread = await self._queue.open_thread(agent, thread_id, own=True)
        adapter = self._adapters.get(thread.channel)
        if adapter is None or not thread.address:
            return False
        return await adapter.typing(thread.account_id, thread.address, thread.inbox_id)

    async def retry(self, thread_id: str, by: Agent, item_id: str) -> None:
        """Send again a reply of this conversation the outbox gave up on (the agent's own
        conversation; admins: any open one)."""
        thread = await self._queue.open_thread(by, thread_id, own=True)
        item = await self._store.outbox.get_outbox(item_id)
        if item is None or item.thread_id != thread.id:
            raise QueueError("unknown_item", "no such failed reply in this conversation", 404)
        if await self._store.outbox.revive_outbox(item.id, utcnow()) is None:
            raise QueueError("not_failed", "this reply is not waiting for a retry", 409)
        self._outbox.wake()
        await audit.record(self._store, thread.account_id, by, "outbox.retry", item.id)
        await self._store.events.emit_event(
            thread.account_id, "delivery", utcnow(), thread_id=thread.id, inbox=thread_key(thread)
        )

    async def answer(
        self, thread_id: str, agent: Agent, text: str, nonce: str, file: AgentFile | None = None
    ) -> Message:
        """The console's reply: free text, and a file where the channel carries one, on a thread
        the agent holds (admins: any open thread), sent once per form (``nonce``)."""
        thread = await self._queue.open_thread(agent, thread_id, own=True)
        document = await self._kept(thread, agent, nonce, file) if file is not None else None
        reply = Reply(
            key=f"agent:{agent.id}:{nonce}", text=text, document=document, agent=agent.id, agent_name=agent.name
        )
        return await self.send(thread, reply, agent)

    async def _kept(self, thread: Thread, agent: Agent, nonce: str, file: AgentFile) -> dict[str, Any]:
        """The agent's file in the store (once per form), as the reply's document."""
        channel = reply_address(thread, self._adapters).channel
        adapter = self._adapters.get(channel)
        if adapter is None or not adapter.capabilities.files:
            raise FilesRefused(f"files cannot be sent on {channel} from the console yet")
        limit = adapter.capabilities.max_file_bytes
        if limit is not None and len(file.data) > limit:
            raise FilesRefused(
                f"the file has {megabytes(len(file.data))}; {channel} carries at most {megabytes(limit)}"
            )
        try:
            kept = await self._store.files.keep_upload(
                upload=derived_id("upl", f"{thread.id}:{agent.id}:{nonce}"),
                account_id=thread.account_id,
                contact_id=thread.contact_id,
                thread_id=thread.id,
                name=file.name,
                content_type=file.content_type,
                data=file.data,
                quota=self._files_quota,
            )
        except QuotaExceeded as exc:
            raise FilesRefused(f"the file was not sent: {exc}") from None
        return {"file": f"{kept.message_id}:0", "name": kept.name, "mime_type": kept.content_type, "size": kept.length}

    async def template(self, thread: Thread, agent: Agent, name: str, parameters: list[str], nonce: str) -> Message:
        """A template the agent picked in the console (outside WhatsApp's window), once per form."""
        reply = Reply(
            key=f"template:{nonce}", template=name, parameters=tuple(parameters), agent=agent.id, agent_name=agent.name
        )
        return await self.send(thread, reply, agent, action="thread.template", template=name[:100])
