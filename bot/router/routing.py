"""How each account's queue works right now: the settings' strategy, business hours, out-of-hours
reply, location recording and reopen window, overridden by what the account's admin saved, and by
what each inbox sets for itself. Read often (every queued message), so each account's and each
inbox's is kept for a few seconds."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

from bot.business_hours import BusinessHours
from bot.settings import QueueSettings
from conversations.filters import one_of
from conversations.repositories import Repositories
from conversations.thread_models import Thread

CACHE_SECONDS = 3.0
# the channels whose new conversations get the greeting as a message (a web chat's widget shows
# its own greeting before the first message; a call has nothing to send it in)
GREETED_CHANNELS = frozenset({"telegram", "whatsapp", "sms", "email"})
STRATEGIES = ("manual", "next", "auto")  # how queued threads reach agents (bot/router/queue.py)


@dataclass(frozen=True)
class Routing:
    """How one account's queue works right now (settings, overridden by the account's admin)."""

    strategy: str
    hours: BusinessHours
    out_of_hours_reply: str
    record_location: bool
    reopen_days: float = 7.0  # a customer writing again this soon reopens the resolved thread
    bot: bool = True  # False: an inbox whose conversations go straight to the agents
    team: str = ""  # the team an inbox's conversations are queued to
    model: str = ""  # the NLU model version an inbox is pinned to ("": the account's active one)
    greeting: str = ""  # sent once as the first message of a new conversation ("": none)


class AccountRouting:
    def __init__(self, store: Repositories, settings: QueueSettings, record_location: bool = False) -> None:
        self._store = store
        self._settings = settings
        self._record_location = record_location
        self._cached: dict[str, tuple[float, Routing]] = {}
        self._inboxes: dict[str, tuple[float, dict[str, Any]]] = {}
        self._strategies: dict[str, tuple[float, dict[str, str]]] = {}  # per account: its inboxes' own
        self._direct = {c.strip() for c in settings.direct_channels.split(",") if c.strip()}
        self._teams = dict(pair.strip().split("=", 1) for pair in settings.channel_teams.split(",") if "=" in pair)

    async def skips_bot(self, thread: Thread) -> bool:
        """Whether the thread's messages go straight to the agents: its channel does
        (``queue.direct_channels``), or its inbox has no bot."""
        if thread.channel in self._direct:
            return True
        return thread.inbox_id is not None and not (await self.get(thread.account_id, thread.inbox_id)).bot

    async def team_of(self, thread: Thread) -> str:
        """The team a thread is queued to: its inbox's, or its channel's (``queue.channel_teams``)."""
        own = (await self.get(thread.account_id, thread.inbox_id)).team if thread.inbox_id else ""
        return own or self._teams.get(thread.channel, "").strip()

    async def model_of(self, thread: Thread) -> str | None:
        """The NLU model version the thread's inbox is pinned to; ``None``: the account's active one."""
        return (await self.get(thread.account_id, thread.inbox_id)).model or None if thread.inbox_id else None

    async def greeting_of(self, thread: Thread) -> str:
        """What a new conversation in the thread's inbox is greeted with: its inbox's greeting, or
        the account's; ``""``: none (or a channel that is never greeted by message)."""
        if thread.channel not in GREETED_CHANNELS:
            return ""
        return (await self.get(thread.account_id, thread.inbox_id)).greeting.strip()

    async def get(self, account_id: str, inbox_id: str | None = None) -> Routing:
        """The account's routing, with what the inbox ``inbox_id`` sets for itself over it."""
        routing = await self._account(account_id)
        if inbox_id is None:
            return routing
        cached = self._inboxes.get(inbox_id)
        if cached and cached[0] > time.monotonic():
            own = cached[1]
        else:
            own = await self._store.inboxes.inbox_routing(inbox_id)
            self._inboxes[inbox_id] = (time.monotonic() + CACHE_SECONDS, own)
        return over(routing, own) if own else routing

    async def strategy_of(self, thread: Thread) -> str:
        """The strategy that brings the thread to an agent: its inbox's, or its account's."""
        return (await self.get(thread.account_id, thread.inbox_id)).strategy

    async def inbox_strategies(self, account_id: str) -> dict[str, str]:
        """The strategy of each of the account's inboxes that sets its own, by inbox id."""
        cached = self._strategies.get(account_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        stored = await self._store.inboxes.inbox_strategies(account_id)
        own = {inbox_id: strategy for inbox_id, strategy in stored.items() if strategy in STRATEGIES}
        self._strategies[account_id] = (time.monotonic() + CACHE_SECONDS, own)
        return own

    async def auto_assigned(self, account_id: str) -> dict[str, Any] | None:
        """Which of the account's queued threads auto-assignment hands out, as a filter of threads
        (``{}``: all of them; ``None``: none): those whose inbox's strategy, or the account's for
        its first inboxes and inboxes that set none, is ``auto``."""
        return await self._working(account_id, auto=True)

    async def taken_by_agents(self, account_id: str) -> dict[str, Any] | None:
        """Which of the account's queued threads agents take themselves (*Take next*), as
        :meth:`auto_assigned` says: those whose strategy is not ``auto``."""
        return await self._working(account_id, auto=False)

    async def _working(self, account_id: str, auto: bool) -> dict[str, Any] | None:
        """The account's threads whose strategy is ``auto`` (or, ``auto=False``, is not)."""
        account_auto = (await self._account(account_id)).strategy == "auto"
        inboxes = await self.inbox_strategies(account_id)
        differ = sorted(inbox_id for inbox_id, strategy in inboxes.items() if (strategy == "auto") != account_auto)
        if account_auto == auto:
            return {"$and": [{"inbox_id": {"$ne": inbox_id}} for inbox_id in differ]} if differ else {}
        return one_of("inbox_id", differ) if differ else None

    def forget_inbox(self, account_id: str, inbox_id: str) -> None:
        """The inbox's routing changed: read it (and its account's inboxes' strategies) again."""
        self._inboxes.pop(inbox_id, None)
        self._strategies.pop(account_id, None)

    async def _account(self, account_id: str) -> Routing:
        cached = self._cached.get(account_id)
        if cached and cached[0] > time.monotonic():
            return cached[1]
        account = await self._store.accounts.get_account(account_id)
        own: dict[str, Any] = (account.routing or {}) if account else {}
        s = self._settings
        try:
            hours = BusinessHours.parse(own.get("business_hours", s.business_hours), own.get("timezone", s.timezone))
        except (ValueError, KeyError):
            hours = BusinessHours.parse(s.business_hours, s.timezone)
        routing = Routing(
            strategy=str(own["strategy"]) if own.get("strategy") in STRATEGIES else s.strategy,
            hours=hours,
            out_of_hours_reply=own.get("out_of_hours_reply", s.out_of_hours_reply),
            record_location=bool(own.get("record_location", self._record_location)),
            reopen_days=float(own.get("reopen_days", s.reopen_days)),
            greeting=str(own.get("greeting") or ""),
        )
        self._cached[account_id] = (time.monotonic() + CACHE_SECONDS, routing)
        return routing

    async def set(self, account_id: str, **values: Any) -> None:
        """Save the admin's ``values`` over the account's routing; read again on the next ``get``."""
        account = await self._store.accounts.get_account(account_id)
        merged = {**((account.routing or {}) if account else {}), **values}
        await self._store.accounts.set_account_fields(account_id, routing=merged)
        self._cached.pop(account_id, None)


def over(routing: Routing, own: dict[str, Any]) -> Routing:
    """``routing`` (an account's) with an inbox's ``own`` settings over it; hours that do not
    parse and a strategy that is none (both checked when saved) leave the account's."""
    hours = routing.hours
    if own.get("business_hours") or own.get("timezone"):
        try:
            hours = BusinessHours.parse(own.get("business_hours") or hours.spec, own.get("timezone") or hours.zone.key)
        except (ValueError, KeyError):
            pass
    strategy = own.get("strategy")
    return dataclasses.replace(
        routing,
        strategy=str(strategy) if strategy in STRATEGIES else routing.strategy,
        hours=hours,
        out_of_hours_reply=own.get("out_of_hours_reply") or routing.out_of_hours_reply,
        bot=own.get("bot") is not False,
        team=str(own.get("team") or ""),
        model=str(own.get("model") or ""),
        greeting=str(own.get("greeting") or routing.greeting),
    )
