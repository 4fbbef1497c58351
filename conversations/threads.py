"""Threads: one conversation with a contact on a channel, from opening to resolution.

"At most one open thread per contact and channel" holds across router processes through the
partial unique index on ``open_key`` (present only while the thread is open): the loser of a race
to open one takes the winner's thread. E-mail threads open under a key of their own
(``open_keyed_thread``) and are found by their mail keys (``mail.py``). The queue's transitions of
a thread (queued, assigned, resolved) are ``queue.py``'s; the dialogue state of the bot lives on
the thread (``nlu_state``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from conversations.client import IndexPlan, Repository, StoreClient
from conversations.errors import StoreError
from conversations.filters import exactly, find_sorted, newest_page, one_of
from conversations.ids import new_id
from conversations.membership import both
from conversations.models import epoch_ms, stored
from conversations.open_threads import OpenThreads
from conversations.state_swaps import StateSwaps, Swap
from conversations.thread_models import Activity, Thread, ThreadStatus, open_key
from conversations.traffic import Direction, Identity

INDEXES: IndexPlan = {
    "threads": [
        IndexModel([("open_key", ASCENDING)], unique=True, partialFilterExpression={"open_key": {"$exists": True}}),
        IndexModel([("account_id", ASCENDING), ("contact_id", ASCENDING), ("opened_at", DESCENDING)]),
        # an agent's conversations, most recent first
        IndexModel([("assignee", ASCENDING), ("status", ASCENDING), ("last_message_at", DESCENDING)]),
        IndexModel([("account_id", ASCENDING), ("last_message_at", DESCENDING)]),  # GET /api/threads
        IndexModel([("account_id", ASCENDING), ("status", ASCENDING), ("last_message_at", DESCENDING)]),  # ?status=
        # the console's conversation lists filtered by team or by label
        IndexModel([("account_id", ASCENDING), ("team", ASCENDING), ("last_message_at", DESCENDING)]),
        IndexModel([("account_id", ASCENDING), ("labels", ASCENDING), ("last_message_at", DESCENDING)]),
        IndexModel([("account_id", ASCENDING), ("unread_since_ms", ASCENDING)]),  # unread only, and its count
    ]
}


@dataclass(frozen=True)
class ThreadFilter:
    """Which threads a console list shows: a status (or several), and optionally one channel,
    team, label, agent, and who waits (``us``: a customer message no agent answered yet;
    ``customer``: an open conversation whose last word was ours); ``unread``: only those with a
    customer message no agent has seen; ``within``: the viewer's inboxes
    (``membership.thread_match``)."""

    statuses: tuple[str, ...] = ()
    channel: str = ""
    team: str = ""
    label: str = ""
    agent: str = ""
    waiting: str = ""
    unread: bool = False
    within: Mapping[str, Any] = field(default_factory=dict)

    def query(self, account_id: str) -> dict[str, Any]:
        query = exactly(account_id=account_id)
        if len(self.statuses) == 1:
            query.update(exactly(status=self.statuses[0]))
        elif self.statuses:  # one query a status on the embedded store (``filters.find_sorted``)
            query = both(query, one_of("status", self.statuses))
        query.update(exactly(**{k: v for k, v in (("channel", self.channel), ("team", self.team)) if v}))
        if self.label:
            query["labels"] = self.label  # an array field: a bare value matches an element
        if self.agent:
            query.update(exactly(assignee=self.agent))
        if self.waiting in ("us", "customer"):  # set while a customer message waits, unset once answered
            query["awaiting_since"] = {"$exists": self.waiting == "us"}
        if self.unread:  # set by a customer message, unset once an agent saw it; a range, which its
            query["unread_since_ms"] = {"$gt": 0}  # index serves ($exists reads every thread of the account)
        return both(query, dict(self.within))


class ThreadsRepository(Repository):
    """Opening, finding and touching threads; their fields, lists and the bot's dialogue state."""

    def __init__(self, client: StoreClient) -> None:
        super().__init__(client)
        # the hot path's reads, grouped across concurrent messages (group commit)
        self._open_threads = client.batcher("threads.open", OpenThreads(client).find)
        self._thread_reads = client.batcher("threads.by_id", self._find_threads)
        self._swaps = StateSwaps(self._db.threads, lambda run: client.batcher("threads.nlu_swaps", run))

    # --- the hot path ----------------------------------------------------------------------

    async def find_open_thread(self, contact_id: str, channel: str, inbox_id: str | None = None) -> Thread | None:
        """The contact's open thread on ``channel`` (in ``inbox_id``), if any (a batched read)."""
        doc = await self._open_threads.submit(open_key(contact_id, channel, inbox_id))
        return Thread.from_doc(doc) if doc else None

    async def get_thread(self, thread_id: str) -> Thread | None:
        """One thread (a batched read)."""
        doc = await self._thread_reads.submit(thread_id)
        return Thread.from_doc(doc) if doc else None

    async def touch_thread(
        self, thread_id: str, now: datetime, window_ends_at: datetime | None = None, unread: bool = True
    ) -> None:
        """A customer message at ``now`` (``Activity``) on the thread: a batched write."""
        await self.mark_activity(thread_id, Activity(now, window_ends_at, unread))

    async def mark_activity(self, thread_id: str, activity: Activity) -> None:
        """Write a customer message's ``Activity`` on its thread (a batched write)."""
        await self._client.write("threads", UpdateOne({"_id": thread_id}, activity.update()))

    async def touch_open_thread(
        self, contact_id: str, channel: str, now: datetime, inbox_id: str | None = None
    ) -> Thread | None:
        """The contact's open thread on ``channel`` (its last activity set to ``now``), if any."""
        doc = await self._db.threads.find_one_and_update(
            exactly(open_key=open_key(contact_id, channel, inbox_id)),
            {"$set": {"last_message_at": epoch_ms(now)}},
            return_document=ReturnDocument.AFTER,
        )
        return Thread.from_doc(doc) if doc else None

    async def open_thread(
        self, account_id: str, contact_id: str, identity: Identity, now: datetime, inbox_id: str | None = None
    ) -> Thread:
        """Open a thread for the contact on the identity's channel (in ``inbox_id``), or return the
        one open there (see the module's docstring)."""
        key = open_key(contact_id, identity.channel, inbox_id)
        thread = self.new_thread(account_id, contact_id, identity, key, now)
        thread.inbox_id = inbox_id
        for _ in range(5):
            try:
                await self._db.threads.insert_one(thread.to_doc())
                return thread
            except DuplicateKeyError:
                existing = await self.touch_open_thread(contact_id, identity.channel, now, inbox_id)
                if existing is not None:
                    return existing
        raise StoreError(f"could not open a thread for {key}")

    async def open_keyed_thread(
        self,
        account_id: str,
        contact_id: str,
        identity: Identity,
        open_key: str,
        now: datetime,
        inbox_id: str | None = None,
    ) -> Thread:
        """Open a thread (in ``inbox_id``) under ``open_key`` (one per key however many processes
        race), or return the one already open under it, its last activity set to ``now``."""
        thread = self.new_thread(account_id, contact_id, identity, open_key, now)
        thread.inbox_id = inbox_id
        for _ in range(5):
            try:
                await self._db.threads.insert_one(thread.to_doc())
                return thread
            except DuplicateKeyError:
                doc = await self._db.threads.find_one_and_update(
                    exactly(open_key=open_key),
                    {"$set": {"last_message_at": epoch_ms(now)}},
                    return_document=ReturnDocument.AFTER,
                )
                if doc is not None:
                    return Thread.from_doc(doc)
        raise StoreError(f"could not open a thread for {open_key}")

    async def touch_thread_if_open(self, thread_id: str, now: datetime) -> Thread | None:
        """The thread with its last activity set to ``now``, unless it is resolved."""
        doc = await self._db.threads.find_one_and_update(
            {"_id": thread_id, "open_key": {"$exists": True}},
            {"$set": {"last_message_at": epoch_ms(now)}},
            return_document=ReturnDocument.AFTER,
        )
        return Thread.from_doc(doc) if doc else None

    async def open_thread_of(self, account_id: str, identity: Identity, inbox_id: str | None = None) -> Thread | None:
        """The open thread of whoever writes from ``identity`` on its channel (in ``inbox_id``), if any."""
        link = await self._db.identities.find_one({"_id": f"{account_id}|{identity.key}"})
        if link is None:
            return None
        doc = await self._db.threads.find_one({"open_key": open_key(link["contact_id"], identity.channel, inbox_id)})
        return Thread.from_doc(doc) if doc else None

    # --- fields ----------------------------------------------------------------------------

    async def set_thread_fields(self, thread_id: str, **values: Any) -> Thread | None:
        if "priority" in values:
            values["neg_priority"] = -int(values["priority"])  # the queue's order: see queue.QUEUE_ORDER
        doc = await self._db.threads.find_one_and_update(
            {"_id": thread_id}, {"$set": stored(values)}, return_document=ReturnDocument.AFTER
        )
        return Thread.from_doc(doc) if doc else None

    async def mark_customer_waiting(self, thread_id: str, since: datetime) -> None:
        """The customer wrote: the next-response clock starts, unless it already runs."""
        await self._db.threads.update_one(
            {"_id": thread_id, "awaiting_since": {"$exists": False}}, {"$set": {"awaiting_since": stored(since)}}
        )

    async def set_reply_by(self, thread_id: str, to: Identity) -> None:
        """Agents' replies in this thread go to ``to`` (the customer asked to be answered there)."""
        await self._db.threads.update_one({"_id": thread_id}, {"$set": {"reply_by": to.to_doc()}})

    async def mark_agent_replied(self, thread_id: str, now: datetime, next_late: bool = False) -> None:
        """An agent answered: the first response is noted once, the customer's wait ends, and a
        late next response (``next_late``) is counted for the reports."""
        await self._db.threads.update_one(
            {"_id": thread_id, "first_response_at": {"$exists": False}}, {"$set": {"first_response_at": stored(now)}}
        )
        update: dict[str, Any] = {"$unset": {"awaiting_since": ""}}
        if next_late:
            update["$inc"] = {"next_response_breaches": 1}
        await self._db.threads.update_one({"_id": thread_id}, update)

    async def mark_seen(self, account_id: str, thread_id: str, seen: datetime) -> None:
        """An agent of the account saw the thread as it was at ``seen``: read up to there (a message
        that came later stays unread; agents share one mark, as in the peers' consoles)."""
        ms = epoch_ms(seen)
        # the mark itself first: a customer message whose touch lands after this is still only
        # unread if it is newer than what was seen (unread_counts)
        await self._db.threads.update_one({"_id": thread_id, "account_id": account_id}, {"$max": {"seen_ms": ms}})
        cleared = await self._db.threads.update_one(
            {
                "_id": thread_id,
                "account_id": account_id,
                "unread_since_ms": {"$lte": ms},
                "last_inbound_ms": {"$lte": ms},
            },
            {"$unset": {"unread_since_ms": "", "unread_count": ""}},
        )
        if cleared.matched_count == 0:  # a message came after what was seen: only the later ones stay unread
            await self._recount_unread(account_id, thread_id, ms)

    async def _recount_unread(self, account_id: str, thread_id: str, seen_ms: int) -> None:
        """Unread from just after ``seen_ms``, with the count of the customer messages since then
        (the rare case of a message stored after the page was drawn). Written only if no customer
        message came meanwhile; otherwise counted again."""
        for _ in range(5):
            doc = await self._db.threads.find_one(
                exactly(_id=thread_id, account_id=account_id), {"last_inbound_ms": 1, "unread_since_ms": 1}
            )
            if doc is None or doc.get("unread_since_ms") is None or doc["unread_since_ms"] > seen_ms:
                return  # nothing unread up to what was seen
            since = {**exactly(thread_id=thread_id, direction=str(Direction.IN)), "created_at": {"$gt": seen_ms}}
            count = len(await self._db.messages.find(since, {"_id": 1}).to_list())
            written = await self._db.threads.update_one(
                {"_id": thread_id, "last_inbound_ms": doc.get("last_inbound_ms")},
                {"$set": {"unread_since_ms": seen_ms + 1, "unread_count": count}},
            )
            if written.matched_count:
                return

    async def unread_counts(self, threads: Sequence[Thread], cap: int = 99) -> dict[str, int]:
        """How many customer messages of each unread thread no agent has seen (at most ``cap``): the
        count each customer message adds to its thread in the write that exists anyway, so no read
        at all; only threads marked by an older release are counted from their messages."""
        marked = [thread for thread in threads if thread.unread_since_ms is not None]
        # counted from their messages: threads marked by an older release, which kept no count, and
        # those whose message's own update landed after an agent saw it (its count includes it)
        recount = [t for t in marked if t.unread_count is None or (t.unread_since_ms or 0) <= (t.seen_ms or -1)]
        again = {t.id for t in recount}
        counts = {t.id: min(t.unread_count or 0, cap) for t in marked if t.id not in again}
        since = {t.id: max(t.unread_since_ms or 0, (t.seen_ms or -1) + 1) for t in recount}
        if not since:
            return {thread_id: n for thread_id, n in counts.items() if n}
        # one find of the unread threads' customer messages, counted here (count_documents is an
        # aggregate, which the embedded server runs over every message in Python: 200 unread
        # threads took 20 s at 10,000 messages; a find per thread 200 round trips)
        query = {
            "thread_id": {"$in": sorted(since)},
            **exactly(direction=str(Direction.IN)),
            "created_at": {"$gte": min(since.values())},  # times are epoch ms at rest
        }
        counts.update(dict.fromkeys(since, 0))
        async for doc in self._db.messages.find(query, {"thread_id": 1, "created_at": 1, "_id": 0}):
            thread_id = str(doc["thread_id"])
            if int(doc["created_at"]) >= since[thread_id]:
                counts[thread_id] = min(counts[thread_id] + 1, cap)
        for thread in recount:  # the count put right, unless a customer message came meanwhile
            if not counts[thread.id] and thread.seen_ms is not None:  # seen after all: the mark goes
                await self._db.threads.update_one(
                    {"_id": thread.id, "last_inbound_ms": {"$lte": thread.seen_ms}},
                    {"$unset": {"unread_since_ms": "", "unread_count": ""}},
                )
            elif counts[thread.id] < cap:
                await self._db.threads.update_one(
                    {"_id": thread.id, "last_inbound_ms": thread.last_inbound_ms},
                    {"$set": {"unread_since_ms": since[thread.id], "unread_count": counts[thread.id]}},
                )
        return {thread_id: n for thread_id, n in counts.items() if n}

    async def swap_thread_nlu_state(
        self, thread_id: str, version: int, state: Mapping[str, Any], activity: Activity | None = None
    ) -> bool:
        """Replace the bot's dialogue state of the thread (language, form, slots), numbered
        ``version + 1``, if it is still at ``version`` (0: none yet) and the thread's contact was not
        erased meanwhile; ``False`` otherwise (another message's dispatch changed it first). The
        message's ``activity``, if given, is written in the same update. A ``state`` that names
        the message that wrote it (``by``) is written with concurrent ones (``state_swaps``)."""
        return await self._swaps.swap(Swap(thread_id, version, state, activity))  # batched when it has a ``by``

    async def thread_nlu_state(self, thread_id: str) -> dict[str, Any]:
        doc = await self._thread_reads.submit(thread_id)  # batched with concurrent thread reads
        return dict(doc.get("nlu_state") or {}) if doc else {}

    # --- lists -----------------------------------------------------------------------------

    async def list_threads(
        self,
        account_id: str,
        *,
        limit: int,
        before: datetime | None = None,
        before_id: str | None = None,
        within: Mapping[str, Any] | None = None,
        **match: str,
    ) -> list[Thread]:
        """The account's threads by last activity, newest first (a page after ``before`` /
        ``before_id``); ``match`` filters on status, channel, assignee or contact_id; ``within``:
        the caller's inboxes (``membership.thread_match``)."""
        query = both(exactly(account_id=account_id, **match), dict(within or {}))
        split = await self._client.is_embedded_server()
        docs = await newest_page(self._db.threads, query, "last_message_at", limit, before, before_id, split=split)
        return [Thread.from_doc(doc) for doc in docs]

    async def browse_threads(
        self,
        account_id: str,
        listed: ThreadFilter,
        *,
        limit: int,
        before: datetime | None,
        before_id: str | None,
        oldest: bool = False,
    ) -> list[Thread]:
        """A page of the console's conversation list: ``listed``'s threads, most recent activity
        first (``oldest``: least recent first), after the previous page's last one."""
        query, split = listed.query(account_id), await self._client.is_embedded_server()
        docs = await newest_page(self._db.threads, query, "last_message_at", limit, before, before_id, oldest, split)
        return [Thread.from_doc(doc) for doc in docs]

    async def count_threads(self, account_id: str, listed: ThreadFilter, cap: int = 999) -> int:
        """How many threads ``listed`` shows, up to ``cap + 1`` (more than ``cap``: "999+"). Ids
        read through the list's index, not count_documents: that is an aggregate, which the
        embedded server runs over every thread in Python (seconds at a million messages)."""
        split = await self._client.is_embedded_server()
        ids = await find_sorted(self._db.threads, listed.query(account_id), None, cap + 1, 0, {"_id": 1}, split)
        return len(ids)

    async def contact_threads(self, account_id: str, contact_id: str) -> list[Thread]:
        """The contact's threads, oldest first."""
        docs = (
            await self._db.threads.find(exactly(account_id=account_id, contact_id=contact_id))
            .sort("opened_at", ASCENDING)
            .to_list()
        )
        return [Thread.from_doc(doc) for doc in docs]

    async def import_threads(self, threads: Sequence[Thread]) -> None:
        """Store whole threads as they are, in one command (seeded data; an import of another
        system's conversations): ids and times are the records' own."""
        if threads:
            await self._db.threads.insert_many([thread.to_doc() for thread in threads], ordered=False)

    # --- helpers -----------------------------------------------------------------------------

    @staticmethod
    def new_thread(
        account_id: str, contact_id: str, identity: Identity, open_key: str, now: datetime, inbox_id: str | None = None
    ) -> Thread:
        return Thread(
            id=new_id("thr"),
            account_id=account_id,
            contact_id=contact_id,
            channel=identity.channel,
            address=identity.address,
            status=ThreadStatus.BOT,
            opened_at=now,
            last_message_at=now,
            open_key=open_key,
            inbox_id=inbox_id,
        )

    async def _find_threads(self, ids: Sequence[str]) -> list[dict[str, Any] | None]:
        docs = await self._db.threads.find({"_id": {"$in": list(set(ids))}}).to_list()
        by_id = {doc["_id"]: doc for doc in docs}
        return [by_id.get(thread_id) for thread_id in ids]
