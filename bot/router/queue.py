"""The human queue: threads waiting for an agent, and how they reach one.

Strategies, per account (``queue.strategy``, changeable by an admin) or per inbox that sets its own:

* ``manual`` — agents pick threads from the queue;
* ``next`` — an agent asks for the next one: the oldest of the highest priority in their teams;
* ``auto`` — each queued thread goes to the least-loaded online agent of its team with a free slot,
  round robin among equals.

Every assignment first *reserves* a slot of the agent (atomically, only if they are online and below
capacity), then claims the thread with a ``find_one_and_update`` guarded by its status; a claim that
loses, or fails, gives the slot back. So however many agents and router processes race, a thread is assigned
once and nobody is over capacity; an agent who cannot take one (offline, away, full) gets none.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from bot.logs import log_event
from bot.router.hours import Sla
from bot.router.queue_errors import CannotTake as CannotTake
from bot.router.queue_errors import QueueError as QueueError
from bot.router.routing import AccountRouting, Routing
from bot.router.thread_log import SYSTEM, ThreadLog
from bot.router.webhooks.events import who
from bot.settings import QueueSettings
from bot.tasks import pause
from conversations.agent_models import Agent
from conversations.errors import StoreClosed, StoreUnavailable
from conversations.filters import one_of
from conversations.membership import both, members_of, sees, thread_key, thread_match
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.thread_models import (
    Decision,
    DecisionAction,
    Message,
    SenderKind,
    Thread,
    ThreadStatus,
    TimelineKind,
)
from conversations.traffic import Identity

if TYPE_CHECKING:
    from bot.router.outbox import Outbox
    from bot.router.webhooks.events import ThreadEvents

log = logging.getLogger("omnirouter.router.queue")

_ACCOUNTS_SECONDS = 30.0  # how long the sweep trusts its list of auto-assigning accounts
_ASSIGN_PAGE = 100  # queued threads auto-assignment reads at a time


class Queue:
    def __init__(
        self,
        store: Repositories,
        settings: QueueSettings | None = None,
        outbox: Outbox | None = None,
        record_location: bool = False,
        events: ThreadEvents | None = None,
    ) -> None:
        self._store = store
        self._log = ThreadLog(store, events)
        self._settings = settings or QueueSettings()
        self._outbox = outbox
        # what an account's and an inbox's routing says (the dispatcher asks it too: bot or not, model)
        self.account_routing = AccountRouting(store, self._settings, record_location)
        self._auto_accounts_until = 0.0  # when keep_assigning reads its list of accounts again
        s = self._settings
        self.sla = Sla(timedelta(minutes=s.first_response_minutes), timedelta(minutes=s.next_response_minutes))

    # --- from the dispatcher -------------------------------------------------------------

    async def escalate(self, thread: Thread, reason: str, by_message: str) -> Thread | None:
        """Queue a thread the bot holds; ``None`` if it is not the bot's (already queued)."""
        queued = await self._store.queue.queue_thread(thread.id, reason, by_message, utcnow())
        team = await self.account_routing.team_of(thread)
        if queued is not None and team and not queued.team:
            queued = await self._store.threads.set_thread_fields(thread.id, team=team) or queued
        return queued

    async def depth(self, account_id: str | None = None) -> int:
        return await self._store.queue.queue_depth(account_id)

    async def after_dispatch(self, message: Message, thread: Thread, decision: Decision) -> None:
        """Bookkeeping after a customer message was dispatched: the response clock, the
        out-of-hours reply, auto-assignment, and the live consoles. Never fails the dispatch."""
        try:
            await self._after_dispatch(message, thread, decision)
        except Exception:
            log.warning(
                "queue.after_dispatch_failed", exc_info=True, extra={"omnirouter_fields": {"message": message.id}}
            )

    async def _after_dispatch(self, message: Message, thread: Thread, decision: Decision) -> None:
        now = utcnow()
        human = decision.action in (DecisionAction.QUEUED, DecisionAction.WAITING, DecisionAction.TO_AGENT)
        unanswerable = thread.status == ThreadStatus.RESOLVED and message.meta.get("no_auto_reply")  # a bounce
        if human and not unanswerable:  # kept in a resolved conversation, it starts no agent's clock
            await self._store.threads.mark_customer_waiting(thread.id, message.created_at)
        replies = list(decision.replies)  # named by the event: relay.py of the web chat
        if decision.action == DecisionAction.QUEUED:
            await self._log.timeline(thread, TimelineKind.QUEUED, None, decision.reason)
            routing = await self.routing(thread.account_id, thread.inbox_id)
            if not routing.hours.is_open(now) and self._outbox is not None:
                notice = await self._outbox.enqueue_reply(
                    dedup_key=f"{message.id}:out-of-hours",
                    thread=thread,
                    to=Identity(thread.channel, thread.address or str(message.sender.get("address", ""))),
                    text=routing.out_of_hours_reply,
                    sender={"kind": str(SenderKind.SYSTEM)},
                    in_reply_to=message.id,
                )
                replies.append(notice.id)
        # a thread the bot answered stays the bot's: only a human decision can have queued it
        current = (await self._store.threads.get_thread(thread.id) or thread) if human else thread
        alert = "queued" if decision.action == DecisionAction.QUEUED else "customer_message" if human else None
        if current.status == ThreadStatus.QUEUED and await self.auto_assign(thread.account_id):
            current = await self._store.threads.get_thread(thread.id) or current
        if alert == "queued" and current.status != ThreadStatus.QUEUED:
            alert = None  # assigned at once: its agent is told that, the queue nothing
        if human or not replies:  # a reply stored is the live feed's event already (events.py)
            await self._log.live(current, "message", alert=alert, replies=replies)

    # --- routing of an account and its inboxes -------------------------------------------

    async def routing(self, account_id: str, inbox_id: str | None = None) -> Routing:
        return await self.account_routing.get(account_id, inbox_id)

    async def set_routing(self, account_id: str, **values: Any) -> None:
        await self.account_routing.set(account_id, **values)
        self._auto_accounts_until = 0.0

    def inbox_routing_changed(self, account_id: str, inbox_id: str) -> None:
        """An inbox's routing was saved: this process follows it at once (others within seconds)."""
        self.account_routing.forget_inbox(account_id, inbox_id)
        self._auto_accounts_until = 0.0

    # --- agents taking work --------------------------------------------------------------

    async def take(self, agent: Agent, thread_id: str) -> Thread:
        """The agent takes one queued thread (the ``manual`` strategy's action)."""
        thread = await self.open_thread(agent, thread_id)
        if thread.status != ThreadStatus.QUEUED:
            raise QueueError("taken", "someone else already took this conversation")
        if not agent.oversees and thread.team and thread.team not in agent.teams:
            raise QueueError("other_team", f"this conversation waits for team {thread.team}", 403)
        return await self._claim_for(agent, {"_id": thread_id})

    async def take_next(self, agent: Agent) -> Thread | None:
        """The oldest of the most urgent queued threads of the agent's inboxes their teams may take;
        for an agent, not one of those automatic assignment hands out (an ``auto`` strategy's)."""
        match = both(thread_match(agent), {} if agent.oversees else one_of("team", [None, "", *agent.teams]))
        by_hand = {} if agent.oversees else await self.account_routing.taken_by_agents(agent.account_id)
        if by_hand is None:
            return None
        if by_hand:  # beside, never over, the agent's own inbox match
            match = both(match, by_hand if set(by_hand) == {"$and"} else {"$and": [by_hand]})
        try:
            return await self._claim_for(agent, match, read_first=bool(by_hand))
        except QueueError as exc:
            if exc.code == "empty":
                return None
            raise

    async def _claim_for(self, agent: Agent, match: dict[str, Any], read_first: bool = False) -> Thread:
        now = utcnow()
        reserved = await self._store.queue.reserve_agent(agent.account_id, epoch_ms(now), _id=agent.id)
        if reserved is None:
            fresh = await self._store.agents.get_agent(agent.id)
            if fresh is None or fresh.presence != "online":
                raise QueueError("not_on_shift", "start your shift to take conversations")
            raise QueueError("no_capacity", f"you already have {fresh.load} of {fresh.capacity} conversations")
        claim = self._store.queue.claim_next_queued(agent.account_id, agent.id, now, read_first, **match)
        thread = await self._store.queue.or_release(agent.id, claim, match.get("_id"))
        if thread is None:
            raise QueueError("empty" if "_id" not in match else "taken", "no conversation to take")
        await self._assigned(thread, agent, agent)
        return thread

    async def auto_assign(self, account_id: str) -> int:
        """Hand queued threads whose strategy (their inbox's, or else the account's) is ``auto`` to agents
        with room who see their inbox; returns how many. Read a page at a time after those passed over (a
        page nobody can take hides none behind it); a team and inbox with no free agent is not tried again."""
        if (within := await self.account_routing.auto_assigned(account_id)) is None:
            return 0
        assigned, passed, full = 0, 0, set[tuple[str, str]]()
        while True:
            page = await self._store.queue.queued_threads(account_id, limit=_ASSIGN_PAGE, skip=passed, within=within)
            for thread in page:
                passed += 1
                if (thread.team or "", thread_key(thread)) in full:
                    continue
                team = {"teams": thread.team} if thread.team else {}
                members = members_of(thread_key(thread))
                agent = await self._store.queue.reserve_agent(account_id, epoch_ms(utcnow()), **team, **members)
                if agent is None:
                    if not await self._store.queue.anyone_free(account_id):
                        return assigned
                    full.add((thread.team or "", thread_key(thread)))
                    continue
                claim = self._store.queue.claim_next_queued(account_id, agent.id, utcnow(), _id=thread.id)
                claimed = await self._store.queue.or_release(agent.id, claim, thread.id)
                if claimed is None:  # taken meanwhile: out of the queue too
                    passed -= 1
                    continue
                await self._assigned(claimed, agent, None)
                assigned, passed = assigned + 1, passed - 1  # out of the queue: not passed over
            if len(page) < _ASSIGN_PAGE:
                return assigned

    async def keep_assigning(self, interval: float) -> None:
        """Background worker: auto-assign what events did not (an agent freed a slot elsewhere, an outage passed)."""
        accounts: list[str] = []
        while True:
            for account_id in (None, *accounts):  # None: the accounts, read again every _ACCOUNTS_SECONDS
                try:
                    if account_id is not None:
                        await self.auto_assign(account_id)  # one account failing holds back no other
                    elif self._auto_accounts_until < time.monotonic():
                        accounts = await self._store.accounts.auto_assigning_accounts(self._settings.strategy == "auto")
                        self._auto_accounts_until = time.monotonic() + _ACCOUNTS_SECONDS
                except StoreUnavailable:
                    log_event(log, "queue.assign_store_unavailable", logging.WARNING)
                except StoreClosed:  # the process is stopping
                    return
                except Exception:  # nothing restarts this worker
                    log.exception("queue.assign_failed", extra={"omnirouter_fields": {"account": account_id}})
            await pause(interval)

    async def note_bot_action(self, thread: Thread, text: str, entry_id: str) -> None:
        """On the thread's timeline, once under ``entry_id``: what the bot's action did (why it handed over)."""
        await self._log.timeline(thread, TimelineKind.ACTION, None, text, entry_id=entry_id)

    async def _assigned(self, thread: Thread, agent: Agent, actor: Agent | None) -> None:
        await self._log.timeline(thread, TimelineKind.ASSIGNED, actor, agent.name, to=agent.id)
        await self._log.live(thread, "assigned", agent_id=agent.id, by=actor.id if actor else None)
        await self._log.publish("thread.assigned", thread, agent=who(agent), by=who(actor))
        log_event(log, "queue.assigned", thread=thread.id, agent=agent.id, by=actor.id if actor else SYSTEM)

    # --- moving work on ------------------------------------------------------------------

    async def transfer(
        self,
        thread_id: str,
        by: Agent,
        *,
        to_agent: str | None = None,
        to_team: str | None = None,
        note: str = "",
        fallback: bool = True,
    ) -> Thread:
        """Hand a thread to an agent or to a team's queue. To an agent who cannot take it now: to their
        team's queue with ``fallback``, else :class:`CannotTake` says why and offers that queue."""
        thread = await self.open_thread(by, thread_id, own=True)
        now = utcnow()
        target = await self._store.agents.get_agent(to_agent) if to_agent else None
        if to_agent and (target is None or target.account_id != by.account_id):
            raise QueueError("unknown_agent", "no such agent", 400)
        if target is not None and not sees(target, thread):
            raise QueueError("not_member", f"{target.name} is not a member of this conversation's inbox", 400)
        if target is not None:
            moved = await self._move_to(thread, target, now)
            if moved is not None:
                await self._log.timeline(moved, TimelineKind.TRANSFERRED, by, note, to=target.id, to_name=target.name)
                await self._log.live(moved, "assigned", agent_id=target.id, by=by.id)
                await self._log.publish("thread.assigned", moved, agent=who(target), by=who(by))
                return moved
            to_team = to_team or (target.teams[0] if target.teams else thread.team or "")
            if not fallback:
                raise CannotTake(target, to_team)
            note = f"{note} ({target.name} cannot take it now)".strip()
        requeued = await self._store.queue.requeue(
            thread.id, thread.assignee, to_team or thread.team or "", "transfer", now
        )
        if requeued is None:
            raise QueueError("changed", "the conversation changed meanwhile; reload")
        if thread.assignee:
            await self._store.queue.release_agent(thread.assignee)
        await self._log.timeline(requeued, TimelineKind.TRANSFERRED, by, note, team=requeued.team or "")
        await self._log.live(requeued, "queue")
        await self._log.publish("thread.queued", requeued, reason="transfer", by=who(by))
        await self.auto_assign(by.account_id)
        return requeued

    async def _move_to(self, thread: Thread, target: Agent, now: datetime) -> Thread | None:
        if thread.assignee == target.id:
            return thread
        if await self._store.queue.reserve_agent(target.account_id, epoch_ms(now), _id=target.id) is None:
            return None
        if thread.status == ThreadStatus.ASSIGNED and thread.assignee:
            move = self._store.queue.move_assignment(thread.id, thread.assignee, target.id, now)
        else:
            move = self._store.queue.claim_next_queued(thread.account_id, target.id, now, _id=thread.id)
        moved = await self._store.queue.or_release(target.id, move, thread.id)
        if moved is None:
            raise QueueError("changed", "the conversation changed meanwhile; reload")
        if thread.status == ThreadStatus.ASSIGNED and thread.assignee:
            await self._store.queue.release_agent(thread.assignee)
        return moved

    async def resolve(self, thread_id: str, by: Agent) -> Thread:
        thread = await self.open_thread(by, thread_id, own=True)
        before = await self._store.queue.resolve(thread.id, utcnow(), thread.assignee)
        if before is None:
            raise QueueError("changed", "the conversation changed meanwhile; reload")
        if before.assignee:
            await self._store.queue.release_agent(before.assignee)
        await self._log.timeline(before, TimelineKind.RESOLVED, by, "")
        await self._log.live(before, "queue")
        await self._log.publish("thread.resolved", before, by=who(by))
        await self.auto_assign(by.account_id)
        return before

    async def requeue_agent(self, agent: Agent, reason: str = "agent_offline") -> int:
        """Return every conversation the agent holds to the queue (their shift ended)."""
        count = 0
        for thread in await self._store.queue.assigned_threads(agent.id):
            requeued = await self._store.queue.requeue(thread.id, agent.id, thread.team or "", reason, utcnow())
            if requeued is not None:
                await self._store.queue.release_agent(agent.id)
                await self._log.timeline(requeued, TimelineKind.QUEUED, agent, reason)
                await self._log.live(requeued, "queue")
                await self._log.publish("thread.queued", requeued, reason=reason, by=who(agent))
                count += 1
        if count:
            await self.auto_assign(agent.account_id)
        return count

    async def reopen(
        self, account_id: str, contact_id: str, identity: Identity, now: datetime, inbox_id: str | None = None
    ) -> Thread | None:
        """A resolved thread (of ``inbox_id``) the contact writes to again within the account's reopen
        window (``queue.reopen_days`` unless its admin set another): back to its last agent if they
        can take it, else to the queue. ``None``: open a new thread."""
        if not (reopen_days := (await self.routing(account_id)).reopen_days):
            return None
        since = now - timedelta(days=reopen_days)
        old = await self._store.queue.last_resolved(account_id, contact_id, identity.channel, since, inbox_id)
        if old is None:
            return None
        agent = None
        if old.last_assignee:  # if they still see its inbox
            members = members_of(thread_key(old))
            agent = await self._store.queue.reserve_agent(account_id, epoch_ms(now), _id=old.last_assignee, **members)
        reopening = self._store.queue.reopen(old, agent.id if agent else None, now)
        thread = await (self._store.queue.or_release(agent.id, reopening, old.id) if agent is not None else reopening)
        if thread is None:
            return None
        await self._log.timeline(thread, TimelineKind.REOPENED, None, agent.name if agent else "")
        await self._log.live(thread, "assigned" if agent else "queue", agent_id=agent.id if agent else None)
        said: dict[str, Any] = {"agent": who(agent), "reopened": True} if agent else {"reason": "reopened"}
        await self._log.publish("thread.assigned" if agent else "thread.queued", thread, **said)
        return thread

    # --- working a thread ----------------------------------------------------------------

    def window_open(self, thread: Thread, now: datetime) -> bool | None:
        """Whether a free-form reply may go out on ``thread`` now (its channel's reply window);
        ``None`` on a channel without one."""
        capabilities = self._outbox.capabilities(thread.channel) if self._outbox else None
        return capabilities.window_open(thread.wa_window_ends_at, now) if capabilities is not None else None

    async def note(self, thread_id: str, agent: Agent, text: str) -> None:
        thread = await self._visible_thread(agent, thread_id)
        await self._log.timeline(thread, TimelineKind.NOTE, agent, text)
        await self._log.live(thread, "thread")

    async def set_labels(self, thread_id: str, agent: Agent, labels: list[str]) -> Thread:
        thread = await self._visible_thread(agent, thread_id)
        updated = await self._store.threads.set_thread_fields(thread.id, labels=labels) or thread
        await self._log.timeline(thread, TimelineKind.LABELS, agent, ", ".join(labels))
        await self._log.live(thread, "thread")
        return updated

    async def _visible_thread(self, agent: Agent, thread_id: str) -> Thread:
        thread = await self._store.threads.get_thread(thread_id)
        if thread is None or not sees(agent, thread):  # another account's or another inbox's
            raise QueueError("not_found", "no such conversation", 404)
        return thread

    async def open_thread(self, agent: Agent, thread_id: str, own: bool = False) -> Thread:
        """The thread, checked: open, and (``own``) the agent's — admins may act on any."""
        thread = await self._visible_thread(agent, thread_id)
        if thread.status not in (ThreadStatus.QUEUED, ThreadStatus.ASSIGNED):
            raise QueueError("not_open", "this conversation is not waiting for an agent")
        if own and not agent.oversees and thread.assignee != agent.id:
            raise QueueError("not_yours", "take the conversation first", 403)
        return thread
