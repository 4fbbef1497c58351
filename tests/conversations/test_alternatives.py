"""A query with ``$or`` lists (an agent's inboxes, several statuses, an agent's teams) is asked of
the embedded store as plain queries, one an alternative, and their answers merged: the same
threads, in the same order and pages, as the query asked whole (``filters.find_sorted``)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from conversations.agent_models import Agent, Role
from conversations.filters import MOST_ALTERNATIVES, MOST_PARTS, alternatives, exactly, find_sorted, one_of, plain_parts
from conversations.membership import FIRST, both, thread_match
from conversations.models import utcnow
from conversations.personal_data import Erasure
from conversations.queue import QUEUE_ORDER
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus
from conversations.threads import ThreadFilter
from tests.conftest import raw_database_of
from tests.factories import inbound, record

START = utcnow() - timedelta(hours=1)
# (inbox_id, channel) of each thread in turn: a member of inb_1 and of the first web chat inbox
# sees the threads of those two, never inb_2's nor the first SMS inbox's
PLACES = [("inb_1", "webchat"), (None, "webchat"), ("inb_2", "webchat"), (None, "sms"), ("inb_1", "sms")]


def _thread(n: int, status: ThreadStatus = ThreadStatus.QUEUED) -> Thread:
    inbox_id, channel = PLACES[n % len(PLACES)]
    at = START + timedelta(seconds=n // 2)  # two threads a second: ties the pages must break by id
    return Thread(
        id=f"thr_{n:03}",
        account_id="default",
        contact_id=f"con_{n}",
        channel=channel,
        status=status,
        opened_at=at,
        last_message_at=at,
        queued_at=at,
        inbox_id=inbox_id,
        priority=n % 3,
    )


def _member(**fields: Any) -> Agent:
    return Agent(id="agt_m", account_id="default", login="m", name="M", role=Role.AGENT, created_at=START, **fields)


MEMBER = _member(inboxes=["inb_1", f"{FIRST}webchat"])
SEEN = [n for n in range(40) if PLACES[n % len(PLACES)] in (("inb_1", "webchat"), ("inb_1", "sms"), (None, "webchat"))]


async def _stored(store: Repositories) -> None:
    statuses = (ThreadStatus.QUEUED, ThreadStatus.ASSIGNED, ThreadStatus.RESOLVED)
    await store.threads.import_threads([_thread(n, statuses[n % 3]) for n in range(40)])


async def test_a_member_s_pages_of_threads_are_theirs_in_order_without_a_gap_or_a_repeat(store: Repositories) -> None:
    await _stored(store)
    listed = ThreadFilter(within=thread_match(MEMBER))
    pages: list[list[str]] = []
    before, before_id = None, None
    while True:
        page = await store.threads.browse_threads("default", listed, limit=4, before=before, before_id=before_id)
        if not page:
            break
        pages.append([t.id for t in page])
        before, before_id = page[-1].last_message_at, page[-1].id
    newest_first = sorted(SEEN, key=lambda n: (n // 2, n), reverse=True)
    assert [tid for page in pages for tid in page] == [f"thr_{n:03}" for n in newest_first]
    assert {len(page) for page in pages[:-1]} == {4}
    assert await store.threads.count_threads("default", listed) == len(SEEN)
    assert await store.threads.count_threads("default", listed, cap=5) == 6  # "5+": capped


async def test_a_member_s_queue_in_urgency_order_page_after_page(store: Repositories) -> None:
    await _stored(store)
    within = thread_match(MEMBER)
    heads = [await store.queue.queued_threads("default", limit=3, skip=skip, within=within) for skip in (0, 3, 6)]
    queued = [n for n in SEEN if n % 3 == 0]
    urgent_first = sorted(queued, key=lambda n: (-(n % 3), n // 2))  # (neg_priority, queued_at)
    assert [t.id for head in heads for t in head] == [f"thr_{n:03}" for n in urgent_first][:9]


async def test_several_statuses_and_the_same_answers_whole_or_split(store: Repositories) -> None:
    """Asked whole (the embedded server then reads every thread in Python, as MongoDB's single
    query would answer) or split, each query gives the same documents in the same order."""
    await _stored(store)
    threads = raw_database_of(store).threads
    for query, order in (
        (ThreadFilter(("queued", "assigned")).query("default"), [("last_message_at", -1), ("_id", -1)]),
        (ThreadFilter(("queued", "resolved"), within=thread_match(MEMBER)).query("default"), [("_id", 1)]),
        (both(exactly(status="queued"), thread_match(MEMBER), one_of("team", [None, ""])), QUEUE_ORDER),
    ):
        whole = await find_sorted(threads, query, order, 7, skip=2)
        split = await find_sorted(threads, query, order, 7, skip=2, split=True)
        assert [d["_id"] for d in split] == [d["_id"] for d in whole], query
        assert len(split) == 7


def test_the_alternatives_of_a_query() -> None:
    base = exactly(account_id="a", status="queued")
    member = both(base, thread_match(MEMBER))
    assert alternatives(member) == [
        {**base, "inbox_id": {"$eq": "inb_1"}},
        {**base, "inbox_id": {"$eq": None}, "channel": {"$eq": "webchat"}},
    ]
    # an alternative that contradicts the rest is left out; one the rest implies is kept plain
    on_sms = both(exactly(account_id="a", channel="sms"), thread_match(MEMBER))
    assert alternatives(on_sms) == [{**exactly(account_id="a", channel="sms"), "inbox_id": {"$eq": "inb_1"}}]
    same = both(exactly(status="queued"), one_of("status", ["queued", "open"]))
    assert alternatives(same) == [exactly(status="queued")]
    # an inbox taken by hand beside the agent's: "not inb_2" is implied by "inb_1", and refuses inb_2
    not_two = both(thread_match(_member(inboxes=["inb_1", "inb_2"])), {"$and": [{"inbox_id": {"$ne": "inb_2"}}]})
    assert alternatives(not_two) == [{"inbox_id": {"$eq": "inb_1"}}]
    # the teams an agent takes, times their inboxes: every pair, each a plain query
    teams = both(thread_match(MEMBER), one_of("team", [None, "sales"]))
    assert len(alternatives(teams)) == 4 and all("$and" not in q for q in alternatives(teams))
    # nothing to split, or too much: the query as it is
    assert alternatives(base) == [base]
    wide = {"$and": [{"$or": [{"a": n} for n in range(9)]}, {"$or": [{"b": n} for n in range(9)]}]}
    assert 9 * 9 > MOST_ALTERNATIVES and alternatives(wide) == [wide]
    # a condition that is not an equality stays in the query's own $and
    ranged = {"$and": [{"$or": [{"n": {"$gt": 1}}]}], "n": {"$lt": 5}}
    assert alternatives(ranged) == [{"n": {"$lt": 5}, "$and": [{"n": {"$gt": 1}}]}]
    twice = {**ranged, "$and": [*ranged["$and"], {"$or": [{"n": {"$gt": 2}}, {"n": {"$lt": 9}}]}]}
    assert alternatives(twice) == [  # each its own $and: never another alternative's conditions
        {"n": {"$lt": 5}, "$and": [{"n": {"$gt": 1}}, {"n": {"$gt": 2}}]},
        {"n": {"$lt": 5}, "$and": [{"n": {"$gt": 1}}, {"n": {"$lt": 9}}]},
    ]
    # bare values may be an array field's elements: two of them are no contradiction
    labels = {"labels": "vip", "$and": [{"$or": [{"labels": "new"}, {"labels": "vip"}]}]}
    assert alternatives(labels) == [{"labels": "vip", "$and": [{"labels": "new"}]}, {"labels": "vip"}]


@pytest.mark.parametrize("inboxes", [[], ["inb_9"]])
async def test_a_member_of_no_inbox_or_of_an_empty_one_sees_nothing(store: Repositories, inboxes: list[str]) -> None:
    await _stored(store)
    listed = ThreadFilter(within=thread_match(dataclasses.replace(MEMBER, inboxes=inboxes)))
    assert await store.threads.browse_threads("default", listed, limit=10, before=None, before_id=None) == []
    assert await store.threads.count_threads("default", listed) == 0


async def test_take_next_of_a_member_of_two_inboxes_takes_the_most_urgent_of_both(store: Repositories) -> None:
    """The head of each inbox's queue is read on its own; the claim takes the most urgent of the
    heads, not the first inbox's (the merge orders by the queue's fields, read with the ids)."""
    later_normal = dataclasses.replace(_thread(0), id="thr_a", queued_at=START + timedelta(seconds=200), priority=0)
    earlier_urgent = dataclasses.replace(_thread(1), id="thr_b", queued_at=START + timedelta(seconds=100), priority=2)
    assert (later_normal.inbox_id, earlier_urgent.inbox_id) == ("inb_1", None)  # one in each of MEMBER's inboxes
    await store.threads.import_threads([later_normal, earlier_urgent])
    match = thread_match(MEMBER)
    first = await store.queue.claim_next_queued("default", "agt_m", utcnow(), **match)
    second = await store.queue.claim_next_queued("default", "agt_m", utcnow(), **match)
    assert (first and first.id, second and second.id) == ("thr_b", "thr_a")
    assert await store.queue.claim_next_queued("default", "agt_m", utcnow(), **match) is None


def test_the_plain_parts_of_a_holder_s_query() -> None:
    """An erasure's or export's query on the embedded store: each ``$in`` value (not ``_id``'s)
    and each ``$or`` alternative asked on its own, the account kept in every part."""
    mine = {"$or": [{"contact_id": {"$in": ["c1", "c2"]}}, {"_id": {"$in": ["m1", "m2"]}}], "account_id": "a"}
    assert plain_parts(mine) == [
        {"account_id": "a", "contact_id": {"$eq": "c1"}},
        {"account_id": "a", "contact_id": {"$eq": "c2"}},
        {"account_id": "a", "_id": {"$in": ["m1", "m2"]}},
    ]
    # past the 64 alternatives of an $or: one query a value up to MOST_PARTS, then the query whole
    many = {"message_id": {"$in": [f"m{n}" for n in range(500)]}, "account_id": "a"}
    assert plain_parts(many) == [{"message_id": {"$eq": f"m{n}"}, "account_id": "a"} for n in range(500)]
    too_many = {"message_id": {"$in": [f"m{n}" for n in range(MOST_PARTS + 1)]}}
    assert plain_parts(too_many) == [too_many]
    # a tuple is an array to the driver: its $or is split like a list's, never dropped
    tupled = {"$or": ({"a": 1}, {"b": 2}), "contact_id": {"$in": ["c1"]}}
    assert plain_parts(tupled) == [{"contact_id": {"$eq": "c1"}, "a": 1}, {"contact_id": {"$eq": "c1"}, "b": 2}]
    assert plain_parts({"message_id": {"$in": []}}) == []  # matches nothing
    assert plain_parts({"a": 1, "$and": [{"b": 2}]}) == [{"a": 1, "$and": [{"b": 2}]}]


async def test_an_erasure_reaches_each_of_many_messages_and_nothing_of_another_account(store: Repositories) -> None:
    """More messages than an $or's alternatives, each found through the contact's parts: all of
    them erased with what hangs off them (their SMS parts, looked up by message id), another
    account's customer at the same address kept."""
    now = utcnow()
    recorded = [await record(store, inbound(f"m{n}", account="default"), now) for n in range(70)]
    other, _, _ = await record(store, inbound("m0", account="other"), now)
    for n, (message, _, _) in enumerate(recorded):
        await store.phone.note_sms_part(message.id, 0, f"SM{n}")
    await store.phone.note_sms_part(other.id, 0, "SM-other")
    contact = recorded[0][1].contact_id
    scope = await store.privacy.contact_scope("default", contact)
    assert scope is not None and len(scope.message_ids) == 70
    counts = await store.privacy.erase_personal_data(scope, Erasure("era_test", now))
    assert (counts["messages"], counts["sms_parts"]) == (70, 70)
    raw = raw_database_of(store)
    assert [d["_id"] for d in await raw.messages.find({}, {"_id": 1}).to_list()] == [other.id]
    assert [d["message_id"] for d in await raw.sms_parts.find({}, {"message_id": 1}).to_list()] == [other.id]


async def test_a_page_orders_a_time_another_tool_stored_as_a_date_after_epoch_milliseconds(store: Repositories) -> None:
    """Times are epoch milliseconds, but a contact another tool wrote may carry a date: a page is
    ordered in the router among a millisecond's records, and orders it as MongoDB does (dates
    after numbers) instead of failing the comparison."""
    raw = raw_database_of(store)
    ms = 1_795_640_928_544
    await raw.contacts.insert_many(
        [
            {"_id": "con_a", "account_id": "default", "created_at": ms, "updated_at": ms},
            {"_id": "con_b", "account_id": "default", "created_at": ms, "updated_at": ms + 1},
            {"_id": "con_c", "account_id": "default", "created_at": ms, "updated_at": START},
        ]
    )
    newest = await store.contacts.list_contacts("default", limit=3)
    assert [c.id for c in newest] == ["con_c", "con_b", "con_a"]
