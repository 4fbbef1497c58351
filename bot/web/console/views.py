"""What the console shows, gathered from the store: queue rows, the agent's conversations, and a
thread with the contact's whole history across channels (messages, bot answers with their
intent, notes and what happened to the thread). Templates only format these records."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.router.dialogue.state import DialogueState
from bot.router.queue import Queue
from bot.web.i18n import N_
from conversations.agent_models import Agent, CannedResponse
from conversations.membership import member_keys, sees, thread_match
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.satisfaction import SatisfactionAsk
from conversations.thread_models import Contact, Message, Thread
from conversations.traffic import Attachment


def span(delta: timedelta) -> str:
    """A short human duration: ``45 s``, ``12 min``, ``3 h``, ``2 d``."""
    seconds = abs(int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"


@dataclass(frozen=True)
class SlaView:
    kind: str  # first_response | next_response
    due: datetime
    breached: bool
    distance: str  # how far from now the due time is


@dataclass(frozen=True)
class Row:
    """One conversation in the queue or in the agent's list."""

    thread: Thread
    contact: str
    waiting: str
    sla: SlaView | None
    unread: int = 0  # customer messages no agent has seen
    strategy: str = ""  # how it reaches an agent: its inbox's strategy, or its account's


@dataclass(frozen=True)
class HistoryItem:
    at: datetime
    kind: str  # message | event
    channel: str = ""
    direction: str = ""
    sender: str = ""  # customer | bot | agent | system, or the timeline kind for events
    who: str = ""
    text: str = ""
    delivery: str = ""
    intent: str = ""
    thread_id: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    subject: str = ""  # an e-mail's subject line
    attachments: tuple[Attachment, ...] = ()  # what came with the message (names as the sender wrote them)
    message_id: str = ""
    sent_file: dict[str, str] = field(default_factory=dict)  # an agent's file: name, href


def contact_label(contact: Contact | None, thread: Thread) -> str:
    if contact is not None and contact.name:
        return contact.name
    return thread.address or thread.contact_id


def sla_view(queue: Queue, thread: Thread, now: datetime) -> SlaView | None:
    due = queue.sla.due(thread)
    if due is None:
        return None
    kind, at = due
    return SlaView(kind, at, at <= now, span(at - now))


async def rows(store: Repositories, queue: Queue, threads: list[Thread], now: datetime) -> list[Row]:
    contacts = await store.contacts.contacts_by_id(sorted({t.contact_id for t in threads}))
    unread = await store.threads.unread_counts(threads)
    return [
        Row(
            t,
            contact_label(contacts.get(t.contact_id), t),
            span(now - (t.awaiting_since or t.queued_at or t.opened_at)),
            sla_view(queue, t, now),
            unread.get(t.id, 0),
            await queue.account_routing.strategy_of(t),
        )
        for t in threads
    ]


async def queue_rows(store: Repositories, queue: Queue, agent: Agent) -> list[Row]:
    """The head of the queue, of the agent's inboxes."""
    queued = await store.queue.queued_threads(agent.account_id, within=thread_match(agent))
    return await rows(store, queue, queued, utcnow())


async def my_rows(store: Repositories, queue: Queue, agent: Agent) -> list[Row]:
    """The agent's conversations (of their inboxes: one of an inbox they left is a supervisor's to move)."""
    mine = [t for t in await store.queue.assigned_threads(agent.id) if sees(agent, t)]
    return await rows(store, queue, mine, utcnow())


async def history(store: Repositories, contact_id: str) -> list[HistoryItem]:
    """Every message of the contact on every channel, with the threads' timelines, in order."""
    items = []
    for m in await store.messages.contact_messages(contact_id):
        sender = str(m.sender.get("kind", "customer"))
        items.append(
            HistoryItem(
                at=m.created_at,
                kind="message",
                channel=m.channel,
                direction=str(m.direction),
                sender=sender,
                who=str(m.sender.get("name", "")),
                text=m.text,
                delivery=str(m.delivery_status) if m.delivery_status else "",
                intent=str((m.nlu or {}).get("intent", "")) if sender == "bot" or m.nlu else "",
                thread_id=m.thread_id,
                subject=_subject(m),
                attachments=m.attachments,
                message_id=m.id,
                sent_file=_sent_file(m),
            )
        )
    for entry in await store.queue.contact_timeline(contact_id):
        items.append(
            HistoryItem(
                at=entry.at,
                kind="event",
                sender=entry.kind,
                who=entry.actor_name,
                text=entry.text,
                thread_id=entry.thread_id,
                details=entry.details,
            )
        )
    return sorted(items, key=lambda item: item.at)


def _sent_file(message: Message) -> dict[str, str]:
    """The file an agent sent with the message: its name and the console's address of it."""
    document = message.meta.get("document")
    if not isinstance(document, dict) or not isinstance(document.get("file"), str):
        return {}
    return {"name": str(document.get("name") or "file"), "href": f"/console/files/{document['file']}"}


def _subject(message: Message) -> str:
    mail = message.meta.get("email") if message.channel == "email" else None
    return str(mail.get("subject") or "") if isinstance(mail, dict) else ""


@dataclass(frozen=True)
class Failure:
    """A reply the outbox gave up on: its item (to retry), the provider's text and what it means."""

    item_id: str
    error: str
    words: str


@dataclass(frozen=True)
class ThreadView:
    thread: Thread
    contact: str
    identities: list[tuple[str, str]]  # (channel, address)
    items: list[HistoryItem]
    agents: list[Agent]
    teams: list[str]
    canned: list[CannedResponse]
    sla: SlaView | None
    wa_window_open: bool | None  # None: not a WhatsApp thread
    mine: bool
    bot: DialogueState | None = None  # what the bot collected and tried before a human took over
    failures: Mapping[str, Failure] = field(default_factory=dict)  # message id -> its send given up on
    ratings: list[SatisfactionAsk] = field(default_factory=list)  # the customer's ratings of this conversation
    outsiders: frozenset[str] = frozenset()  # agents who do not see the thread's inbox: not offered a transfer

    @property
    def canned_data(self) -> list[dict[str, str]]:
        """For the reply box's ``/shortcut`` suggestions (embedded as JSON, never as markup)."""
        return [{"shortcut": c.shortcut, "text": c.text} for c in self.canned]


async def thread_view(store: Repositories, queue: Queue, agent: Agent, thread: Thread) -> ThreadView:
    contact = await store.contacts.get_contact(thread.contact_id)
    agents = [a for a in await store.agents.list_agents(thread.account_id) if a.active]
    teams = sorted({team for a in agents for team in a.teams} | ({thread.team} if thread.team else set()))
    now = utcnow()
    window = queue.window_open(thread, now)
    items = await history(store, thread.contact_id)
    if member_keys(agent) is not None:  # the contact's conversations in the agent's inboxes only
        seen = {
            t.id for t in await store.threads.contact_threads(thread.account_id, thread.contact_id) if sees(agent, t)
        }
        items = [item for item in items if item.thread_id in seen]
    failed = [i.message_id for i in items if i.delivery == "failed"]
    dead = await store.outbox.dead_letters(thread.account_id, message_ids=failed) if failed else []
    return ThreadView(
        thread=thread,
        contact=contact_label(contact, thread),
        identities=[(i.channel, i.address) for i in (contact.identities if contact else [])],
        items=items,
        agents=agents,
        teams=teams,
        canned=await store.agents.list_canned(thread.account_id),
        sla=sla_view(queue, thread, now),
        wa_window_open=window,
        mine=thread.assignee == agent.id,
        bot=_bot_state(await store.threads.thread_nlu_state(thread.id)),
        failures={d.message_id: Failure(d.id, d.last_error or "", failure_words(d.last_error)) for d in dead},
        ratings=[r for r in await store.satisfaction.of_threads(thread.account_id, [thread.id]) if r.rating],
        outsiders=frozenset(a.id for a in agents if not sees(a, thread)),
    )


def _bot_state(doc: dict[str, Any]) -> DialogueState | None:
    state = DialogueState.from_doc(doc) if doc else None
    return state if state is not None and (state.intent or state.slots or state.tried) else None


FAILURE_WORDS = (  # what a provider's refusal means for the agent, by words found in it
    (("blocked", "forbidden: bot was blocked"), N_("The customer blocked the bot on this channel.")),
    (("chat not found", "user is deactivated", "not a telegram chat"), N_("The customer's chat no longer exists.")),
    (("24-hour", "window", "131047", "re-engagement"), N_("The 24-hour window is closed: send an approved template.")),
    (("unsubscribed", "21610", "stop"), N_("The customer opted out of messages on this channel (STOP).")),
    (("invalid", "not a valid", "21211", "21614"), N_("The address or number is not valid.")),
    (("timeout", "unreachable", "cannot connect", "connection"), N_("The provider could not be reached.")),
    (("429", "too many", "rate"), N_("The provider refused: too many messages.")),
)


def failure_words(error: str | None) -> str:
    """The English words (translated by the template) for a send given up on; the provider's own
    text is shown beside them."""
    low = (error or "").lower()
    for needles, words in FAILURE_WORDS:
        if any(needle in low for needle in needles):
            return words
    return N_("The provider refused the message.")
