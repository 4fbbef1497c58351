"""The queue's and the console's queries are answered from an index on the embedded store, and
the query shapes that make them so keep their meaning (order, accounts, teams, old documents)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.router.queue import Queue
from bot.services.contact_merge import merge, unmerge
from bot.web.console import views
from conversations.agent_models import Agent, Presence, Role
from conversations.audit import AuditQuery
from conversations.campaigns import Audience, Campaign, CampaignState, audience_position
from conversations.membership import FIRST, thread_match
from conversations.models import epoch_ms, utcnow
from conversations.nlu_retirement import claim_retrain, queue_retrain
from conversations.personal_data import Erasure
from conversations.repositories import Repositories
from conversations.satisfaction import SatisfactionAsk
from conversations.tenant_models import DeliveryState, WebhookSubscription
from conversations.thread_models import Contact, DispatchState, Message, OutboxState, Thread, ThreadStatus
from conversations.threads import ThreadFilter
from conversations.traffic import DeliveryStatus, Direction, Identity, StatusUpdate
from conversations.training import HUMAN_ACTIONS, UNSURE_REASONS
from tests.factories import inbound, record
from tests.query_plans import captured_store, index_backed, labelled, sqlite_plans
from tests.router.test_queue import make_agent

_SENDS_BY_STATE = "idx_messages_account_id_send_state_created_at"  # the embedded server names it by its keys


def queued(n: int, account: str = "default", team: str | None = None, priority: int = 0) -> Thread:
    now = utcnow()
    return Thread(
        id=f"thr_{account}_{n}",
        account_id=account,
        contact_id=f"con_{n}",
        channel="webchat",
        status=ThreadStatus.QUEUED,
        opened_at=now,
        last_message_at=now,
        queued_at=now,
        team=team,
        priority=priority,
    )


async def test_the_queue_console_and_api_queries_are_index_backed(tmp_path: Path) -> None:
    """Each inbox and history query the console and the API run, replayed on SQLite: read through an
    index, never a scan of the collection or a sort of every match."""
    async with captured_store(tmp_path) as (store, capture):
        await store.threads.import_threads([queued(n) for n in range(5)])
        await store.threads.import_threads([dataclasses.replace(queued(5, team="sales"), labels=["vip"])])
        unread = dataclasses.replace(queued(6), unread_since_ms=epoch_ms(utcnow()), unread_count=1)
        await store.threads.import_threads([unread])
        now = utcnow()
        await store.contacts.import_contacts(
            [Contact(id="con_1", account_id="default", created_at=now, updated_at=now, name="One")]
        )
        await store.messages.insert_message_once(
            Message(
                id="m",
                account_id="default",
                thread_id="thr_default_1",
                contact_id="con_1",
                direction=Direction.IN,
                channel="webchat",
                text="hi",
                created_at=utcnow(),
                dispatch_state=DispatchState.PENDING,
                dispatch_due_ms=epoch_ms(utcnow()),
            )
        )
        agent = Agent(
            id="agt_p",
            account_id="default",
            login="p",
            name="P",
            role=Role.AGENT,
            created_at=utcnow(),
            presence=Presence.ONLINE,
            teams=["sales"],
        )
        await store.agents.create_agent(agent)
        # a member of two inboxes (an extra one and the first web chat inbox), of no team
        member = dataclasses.replace(agent, id="agt_m", login="m", teams=[], inboxes=["inb_1", f"{FIRST}webchat"])
        await store.agents.create_agent(member)
        within = thread_match(member)
        for n in range(2):  # two replies on their way: one given up on, one pending (the lease's)
            await store.outbox.create_outbound(
                dedup_key=f"k{n}", thread=queued(1), to=Identity("webchat", "v"), text="x", sender={}, now=utcnow()
            )
        given_up = await store.outbox.lease_outbox("w", utcnow(), timedelta(seconds=30))
        assert given_up is not None
        await store.outbox.dead_letter_outbox(given_up, "w", "gone", utcnow())
        hook = WebhookSubscription(
            id="whs_1", account_id="default", url="https://example.com/h", events=["x"], secret="s", created_at=now
        )
        await store.webhooks.enqueue_deliveries([hook], "evt_1", "x", "{}", now, "thr_default_1")
        queue = Queue(store)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "take_next": lambda: queue.take_next(agent),
            "queue view": lambda: views.queue_rows(store, queue, agent),
            "my conversations": lambda: views.my_rows(store, queue, agent),
            "history": lambda: views.history(store, "con_1"),
            "GET /api/threads": lambda: store.threads.list_threads(
                "default", limit=100, before=utcnow() + timedelta(seconds=1)
            ),
            "GET /api/threads?before_id": lambda: store.threads.list_threads(  # its read of one millisecond's threads
                "default", limit=100, before=utcnow() + timedelta(seconds=1), before_id="thr_default_9"
            ),
            "GET /api/threads?status": lambda: store.threads.list_threads("default", limit=100, status="queued"),
            "GET /api/threads/{id}": lambda: store.messages.thread_messages("thr_default_1", 200),
            "GET /api/contacts": lambda: store.contacts.list_contacts("default", limit=100),
            "GET /api/contacts/{id}": lambda: store.threads.contact_threads("default", "con_1"),
            "console list: unassigned by channel": lambda: store.threads.browse_threads(
                "default", ThreadFilter(("queued",), channel="webchat"), limit=26, before=None, before_id=None
            ),
            "console list: all by team": lambda: store.threads.browse_threads(
                "default", ThreadFilter(team="sales"), limit=26, before=None, before_id=None
            ),
            "console list: all by label": lambda: store.threads.browse_threads(
                "default", ThreadFilter(label="vip"), limit=26, before=None, before_id=None
            ),
            "console list: oldest first": lambda: store.threads.browse_threads(
                "default", ThreadFilter(), limit=26, before=None, before_id=None, oldest=True
            ),
            "console list: unread only": lambda: store.threads.browse_threads(
                "default", ThreadFilter(unread=True), limit=26, before=None, before_id=None
            ),
            "console list: unread count": lambda: store.threads.count_threads("default", ThreadFilter(unread=True)),
            "console list: two statuses": lambda: store.threads.browse_threads(
                "default", ThreadFilter(("queued", "assigned")), limit=26, before=None, before_id=None
            ),
            # what a member of some inboxes reads: each inbox's threads through the index, never
            # every thread of the store in Python (the embedded server's answer to an $or)
            "member: take_next": lambda: queue.take_next(member),
            "member: queue view": lambda: views.queue_rows(store, queue, member),
            "member: console list": lambda: store.threads.browse_threads(
                "default", ThreadFilter(("queued",), within=within), limit=26, before=None, before_id=None
            ),
            "member: console count": lambda: store.threads.count_threads("default", ThreadFilter(within=within)),
            "member: GET /api/threads": lambda: store.threads.list_threads("default", limit=100, within=within),
            "console search": lambda: store.messages.search_messages("default", "hi"),
            "outbox lease": lambda: store.outbox.lease_outbox("w", utcnow(), timedelta(seconds=30)),
            # the background's: the sweeper's claim of an unfinished dispatch (the message above,
            # pending, an hour on), and the metrics' gauges, read at every scrape
            "sweeper claim": lambda: store.messages.claim_undispatched(utcnow() + timedelta(hours=1), timedelta(1)),
            "gauge: sends pending": store.outbox.outbox_pending,
            "gauge: an account's queue": lambda: store.queue.queue_depth("default"),
            "gauge: every account's queue": store.queue.queue_depth,
            "webhook lease": lambda: store.webhooks.lease_delivery("w", utcnow(), timedelta(seconds=30)),
            "account page: deliveries in a state": lambda: store.webhooks.count_deliveries(
                "whs_1", DeliveryState.PENDING
            ),
            "console dead letters": lambda: store.outbox.dead_letters("default"),
            # the live feed's poll, every half second while a console is open: its events and the
            # replies stored (never the inbound messages)
            "live feed: an event written": lambda: store.events.emit_event("default", "queue", utcnow()),
            "live feed: events": lambda: store.events.events_since(0),
            "live feed: replies": lambda: store.events.replies_since(0),
            "GET /api/outbox": lambda: store.outbox.list_outbox(None, "default"),
            "GET /api/outbox?state=pending": lambda: store.outbox.list_outbox(OutboxState.PENDING, "default"),
            "GET /api/outbox?state=dead": lambda: store.outbox.list_outbox(OutboxState.DEAD, "default"),
        }
        for label, call in calls.items():
            with labelled(label):
                assert await call()
    plans = sqlite_plans(tmp_path, capture.captured)
    assert set(plans) == {
        "take_next: findAndModify agents",
        "take_next: findAndModify threads",
        # the account's routing and its inboxes' strategies (kept 3 s: the queue view after it reads
        # them from there)
        "take_next: find accounts",
        "take_next: find inboxes",
        "take_next: find threads",  # the head of the queue of the agent's teams, then a claim by id
        "queue view: find threads",
        "queue view: find contacts",
        "my conversations: find threads",
        "my conversations: find contacts",
        "history: find messages",
        "history: find timeline",
        "GET /api/threads: find threads",
        "GET /api/threads?before_id: find threads",
        "GET /api/threads?status: find threads",
        "GET /api/threads/{id}: find messages",
        "GET /api/contacts: find contacts",
        "GET /api/contacts/{id}: find threads",
        "console list: unassigned by channel: find threads",
        "console list: all by team: find threads",
        "console list: all by label: find threads",
        "console list: oldest first: find threads",
        "console list: unread only: find threads",
        "console list: unread count: find threads",
        "console list: two statuses: find threads",
        "member: take_next: findAndModify agents",
        "member: take_next: find threads",
        "member: take_next: findAndModify threads",
        "member: queue view: find threads",
        "member: queue view: find contacts",
        "member: console list: find threads",
        "member: console count: find threads",
        "member: GET /api/threads: find threads",
        "console search: find messages",
        "outbox lease: findAndModify messages",
        "sweeper claim: findAndModify messages",
        "gauge: sends pending: find messages",
        "gauge: an account's queue: find threads",
        "gauge: every account's queue: find threads",
        "webhook lease: findAndModify webhook_deliveries",
        "account page: deliveries in a state: find webhook_deliveries",
        "console dead letters: find messages",
        "live feed: events: find events",
        "live feed: replies: find messages",
        "GET /api/outbox: find messages",
        "GET /api/outbox?state=pending: find messages",
        "GET /api/outbox?state=dead: find messages",
    }
    # the API's listings sort by time, then by id among records of the same millisecond: SQLite reads
    # them in time order through the index and sorts only each run of equal times (paging needs the
    # order to be total; the embedded server cannot index _id beside other fields): index_backed
    # accepts that, and nothing that sorts every match
    # "unread only" reads the unread threads through their index and sorts those alone by time (no
    # index can serve the range on unread_since_ms and the order of last_message_at at once)
    unread_only = "console list: unread only: find threads"
    assert "USING INDEX idx_threads_account_id_unread_since_ms" in plans.pop(unread_only)[1][0]
    # search reads the messages that hold every term through the text index (SQLite FTS5 MATCH),
    # each by its row id, and sorts those hits alone by time: never the account's every message
    search = plans.pop("console search: find messages")[1]
    assert search[0] == "SCAN messages_search_text_fts VIRTUAL TABLE INDEX 0:M1", search
    assert search[1] == "SEARCH c USING INTEGER PRIMARY KEY (rowid=?)", search
    assert not [line for line in search if line.startswith(("SCAN c", "SCAN messages ", "SEARCH c USING INDEX"))]
    # the dead letters are read through the index of the send state and only those are sorted by
    # time: never a scan of the account's messages
    dead = plans.pop("console dead letters: find messages")[1]
    assert dead[0] == "SEARCH messages USING INDEX idx_messages_send_state (<expr>=?)", dead
    # the replies are read by time through their own index (the embedded server names it by its
    # key): the last seconds' messages, never the store's every message
    replies = plans.pop("live feed: replies: find messages")[1]
    assert replies[0] == "SEARCH messages USING INDEX idx_messages_created_at (<expr>>?)", replies
    # the API's outbox listing in one state: the account's sends in that state, in time order,
    # read through the index of account, state and time alone (no sort, no other account's)
    for state in ("pending", "dead"):
        listing = plans[f"GET /api/outbox?state={state}: find messages"][1]
        assert listing == [f"SEARCH messages USING INDEX {_SENDS_BY_STATE} (<expr>=? AND <expr>=?)"], listing
    # the lease and the gauge of pending sends read the pending sends alone, through the index led
    # by the state (the embedded store indexes every message there, the sent ones too), and the
    # lease in due order; the sweeper reads the messages whose dispatch is pending the same way
    for label, key in (
        ("outbox lease: findAndModify messages", "send_state_send_due_ms (<expr>=? AND <expr>"),
        ("gauge: sends pending: find messages", "send_state"),  # either index led by the state
        ("sweeper claim: findAndModify messages", "dispatch_state_dispatch_due_ms (<expr>=? AND <expr>"),
    ):
        plan = plans[label][1]
        assert plan[0].startswith(f"SEARCH messages USING INDEX idx_messages_{key}"), plan
        assert not [line for line in plan if "TEMP B-TREE" in line or line.startswith("SCAN")], plan
    # the account page counts a subscription's deliveries in one state, not all its deliveries
    counted = plans["account page: deliveries in a state: find webhook_deliveries"][1]
    assert counted == [
        "SEARCH webhook_deliveries USING INDEX idx_webhook_deliveries_subscription_id_state (<expr>=? AND <expr>=?)"
    ], counted
    unbacked = {label: (plan, sql) for label, (sql, plan) in plans.items() if not index_backed(plan)}
    assert not unbacked, f"not index-backed: {unbacked}"


async def test_priority_set_later_and_threads_stored_before_neg_priority_keep_the_queue_order(
    store: Repositories, raw_database: Any
) -> None:
    old = queued(1).to_doc()
    del old["neg_priority"]  # stored by an earlier version
    old["priority"] = 1
    await store.threads.import_threads([queued(0), queued(2)])
    await raw_database.threads.insert_one(old)
    await store.threads.set_thread_fields("thr_default_2", priority=3)
    await store.ensure_indexes()  # start-up fills in what older versions did not store
    assert [t.id for t in await store.queue.queued_threads("default")] == [
        "thr_default_2",
        "thr_default_1",
        "thr_default_0",
    ]


async def test_a_claim_with_teams_never_takes_another_accounts_thread(store: Repositories) -> None:
    # a bare top-level $or beside the account would bind as "account AND status AND team=x OR team=y"
    await store.threads.import_threads([queued(1, account="other", team=""), queued(2, account="other")])
    agent = await make_agent(store, "tess", teams=["sales"])
    queue = Queue(store)
    assert await queue.take_next(agent) is None
    await store.threads.import_threads([queued(3, team="sales")])
    taken = await queue.take_next(agent)
    assert taken is not None and taken.id == "thr_default_3"
    assert await store.queue.queue_depth("other") == 2


async def test_claim_and_reservation_return_the_documents_as_stored(store: Repositories) -> None:
    await store.threads.import_threads([queued(1)])
    agent = await make_agent(store, "ray", capacity=3)
    reserved = await store.queue.reserve_agent("default", 1234, _id=agent.id)
    claimed = await store.queue.claim_next_queued("default", agent.id, utcnow())
    assert reserved is not None and claimed is not None
    assert reserved == await store.agents.get_agent(agent.id)
    assert (reserved.free, reserved.load, reserved.last_assigned_ms) == (2, 1, 1234)
    assert claimed == await store.threads.get_thread(claimed.id)
    assert claimed.status == ThreadStatus.ASSIGNED and claimed.assignee == agent.id
    assert claimed.first_assigned_at == claimed.assigned_at is not None


async def test_lookups_by_several_values_read_an_index_for_each(tmp_path: Path) -> None:
    """The open threads of concurrent messages (one batched lookup), a campaign's recipients' open
    threads and a conversation's satisfaction questions are found by several values of a field
    that is not ``_id``: each value read through the field's index, never the whole collection (the
    embedded store's ``$in`` on such a field reads every document). So are the questions a
    customer's message may answer, and those that keep a customer from being asked again."""
    async with captured_store(tmp_path) as (store, capture):
        now = utcnow()
        opened = [
            await store.threads.open_thread("default", f"con_{n}", Identity("webchat", f"v{n}"), now) for n in range(3)
        ]
        for thread in opened:
            ask = SatisfactionAsk(
                id=f"ask_{thread.id}",
                account_id="default",
                thread_id=thread.id,
                contact_id=thread.contact_id,
                channel="webchat",
                asked_at=now,
            )
            assert await store.satisfaction.record_ask(ask)
        with labelled("inbound: open threads"):
            found = await asyncio.gather(*(store.threads.find_open_thread(f"con_{n}", "webchat") for n in range(3)))
        assert [thread.id if thread else None for thread in found] == [thread.id for thread in opened]
        with labelled("campaign: open threads"):
            recipients = [(f"con_{n}", Identity("webchat", f"v{n}")) for n in range(4)]
            threads = await store.campaigns.open_threads_for("default", recipients, now)
        assert {contact: thread.id for contact, thread in threads.items() if contact != "con_3"} == {
            thread.contact_id: thread.id for thread in opened
        }
        with labelled("satisfaction: a resolved thread's customer asked lately"):
            assert await store.satisfaction.asked_since("default", "con_0", now - timedelta(days=1))
        with labelled("satisfaction: a new thread's first message answers a question"):
            assert await store.satisfaction.latest_ask("default", "con_0", "webchat", now - timedelta(days=1))
        with labelled("console: satisfaction"):
            asks = await store.satisfaction.of_threads("default", [opened[0].id, opened[2].id])
        assert sorted(ask.thread_id for ask in asks) == sorted([opened[0].id, opened[2].id])
    plans = sqlite_plans(tmp_path, capture.captured)
    assert set(plans) == {
        "inbound: open threads: find threads",
        "campaign: open threads: find threads",
        "console: satisfaction: find satisfaction",
        "satisfaction: a resolved thread's customer asked lately: find satisfaction",
        "satisfaction: a new thread's first message answers a question: find satisfaction",
    }
    searched_through_indexes(plans)


async def test_what_traffic_and_the_background_look_up_by_other_fields_reads_an_index(tmp_path: Path) -> None:
    """A provider's delivery receipt, a customer's edit, a voice call's event on the open thread,
    the check of an e-mail's older key, the reopening of a resolved thread, an agent's count of
    conversations, retention's batch of old messages and a contact's scope: each reads through an index, never the
    whole collection (a bare equality is an OR the embedded store's indexes do not serve)."""
    async with captured_store(tmp_path) as (store, capture):
        now = utcnow()
        message, thread, _ = await record(store, inbound("ext_in", account="default"), now)
        reply = dataclasses.replace(message, id="m_out", direction=Direction.OUT, external_id="p1", text="yes")
        await store.messages.insert_message_once(reply)
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "delivery receipt": lambda: store.messages.apply_status_update(
                StatusUpdate("default", "webchat", "p1", DeliveryStatus.DELIVERED, now)
            ),
            "edit": lambda: store.messages.apply_edit(
                dataclasses.replace(inbound("ext_in", account="default"), text="hello"), now
            ),
            "voice call event": lambda: store.threads.touch_open_thread(thread.contact_id, "webchat", now),
            "e-mail's older key": lambda: found(store.mail.legacy_mail_sender("default", "ext_in")),
            "an agent's conversations": lambda: found(store.queue.count_assigned("agt_1")),
            "retention batch": lambda: store.privacy.old_messages("default", epoch_ms(now) + 1),
            # an export's or an erasure's: the contact's identities, threads and messages, each
            # contact's through the index (an $in of contact ids read every document of each)
            "a contact's scope": lambda: store.privacy.contact_scope("default", thread.contact_id),
        }
        for label, call in calls.items():
            with labelled(label):
                assert await call() is not None, label
        assert await store.queue.resolve(thread.id, now, None) is not None
        with labelled("reopen: the last resolved thread"):
            assert await store.queue.last_resolved("default", thread.contact_id, "webchat", now - timedelta(1))
    plans = sqlite_plans(tmp_path, capture.captured)
    assert set(plans) == {
        "delivery receipt: update messages",
        "edit: find messages",
        "edit: findAndModify messages",
        "voice call event: findAndModify threads",
        "e-mail's older key: find messages",
        "an agent's conversations: find threads",
        "retention batch: find messages",
        "a contact's scope: find contacts",
        "a contact's scope: find identities",
        "a contact's scope: find threads",
        "a contact's scope: find messages",
        "reopen: the last resolved thread: find threads",
    }
    # the contact's threads, through their index, and those alone sorted by resolution time
    reopen = plans.pop("reopen: the last resolved thread: find threads")[1]
    assert reopen == [
        "SEARCH threads USING INDEX idx_threads_account_id_contact_id_opened_at (<expr>=? AND <expr>=?)",
        "USE TEMP B-TREE FOR ORDER BY",
    ], reopen
    searched_through_indexes(plans)
    # the retention's batch reads the account's own old messages, not every account's
    assert "idx_messages_account_id_created_at" in plans["retention batch: find messages"][1][0]
    # a contact's scope reads the contact's records, not every record of the account
    for collection, index in (
        ("identities", "idx_identities_contact_id"),
        ("threads", "idx_threads_account_id_contact_id_opened_at"),
        ("messages", "idx_messages_contact_id_created_at"),
    ):
        plan = plans[f"a contact's scope: find {collection}"][1]
        assert plan[0].startswith(f"SEARCH {collection} USING INDEX {index} "), plan


async def found(answer: Awaitable[object]) -> object:
    """An answer that may be empty, as something (the test asks how it was read, not what)."""
    await answer
    return True


async def test_the_campaign_and_retraining_loops_read_their_index(tmp_path: Path) -> None:
    """Every few seconds each router asks which campaigns are due and which retraining to take:
    through the (state, time) indexes, never every campaign or job read in Python (an ``$or``)."""
    async with captured_store(tmp_path) as (store, capture):
        now = utcnow()
        for n, state in enumerate((CampaignState.SCHEDULED, CampaignState.SENDING, CampaignState.DONE)):
            await store.campaigns.create_campaign(
                Campaign(f"cmp_{n}", "default", "c", "sms", state, now, now - timedelta(minutes=n))
            )
        db = store.client.database
        await queue_retrain(db, "default", "job_1", "admin", now)
        with labelled("campaigns due"):
            due = await store.campaigns.due_campaigns(now)
        assert [campaign.id for campaign in due] == ["cmp_1", "cmp_0"]  # by their time
        with labelled("retraining claimed"):
            assert (await claim_retrain(db, "w", now) or {}).get("_id") == "job_1"
        with labelled("retraining: none left"):
            assert await claim_retrain(db, "w", now) is None
        # a campaign's walk of its audience: a page read on from a position, not from the store's
        # first contact (an _id range, which the embedded server reads in Python); the preview's count
        await store.contacts.find_or_create_contact("default", Identity("sms", "+37120000001"), None, now)
        with labelled("audience page"):
            (first,) = await store.campaigns.audience_page(due[0], None, 10)
        with labelled("audience page on"):
            assert await store.campaigns.audience_page(due[0], audience_position(first), 10) == []
        with labelled("audience size"):
            assert await store.campaigns.audience_size("default", "sms", Audience()) == 1
        # a WhatsApp campaign's count against its messaging tier, and a campaign report's replies:
        # the campaigns' messages through their indexes (aggregates and distinct read every message)
        await db.messages.insert_one(
            {
                "_id": "msg_camp",
                "account_id": "default",
                "channel": "whatsapp",
                "contact_id": "con_c",
                "thread_id": "thr_c",
                "direction": "out",
                "created_at": epoch_ms(now),
                "meta": {"campaign": "cmp_1"},
            }
        )
        with labelled("tier count"):
            assert (await store.campaigns.written_first("default", "whatsapp", now - timedelta(days=1)))[0] == 1
        with labelled("replied"):
            assert await store.campaigns.replied_count("default", due[0].id, due[0].send_at) == 0
    plans = sqlite_plans(tmp_path, capture.every)  # each query, the second and later of a kind too
    assert set(plans) == {
        "campaigns due: find campaigns",
        "campaigns due: find campaigns #2",
        "retraining claimed: find nlu_jobs",
        "retraining claimed: find nlu_jobs #2",
        "retraining claimed: findAndModify nlu_jobs",
        "retraining: none left: find nlu_jobs",
        "retraining: none left: find nlu_jobs #2",
        "audience page: find contacts",
        "audience page on: find contacts",  # the position's millisecond
        "audience page on: find contacts #2",  # and on from it
        "audience size: find contacts",
        "tier count: find messages",
        "replied: find messages",  # the campaign's threads
        "replied: find messages #2",  # and its customers' messages since, one thread at a time
    }
    searched_through_indexes(plans)
    for label, index in {
        "tier count: find messages": "idx_messages_account_id_channel_created_at",
        "replied: find messages": "idx_messages_meta_campaign",
        "replied: find messages #2": "idx_messages_thread_id_created_at",
        "audience page: find contacts": "idx_contacts_account_id_created_at",
        "audience page on: find contacts": "idx_contacts_account_id_created_at",
        "audience page on: find contacts #2": "idx_contacts_account_id_created_at",
        "audience size: find contacts": "idx_contacts_account_id_created_at",
    }.items():
        assert f"USING INDEX {index} " in plans[label][1][0], (label, plans[label])


async def test_the_messages_to_learn_from_are_read_by_reason_through_the_index(tmp_path: Path) -> None:
    """The review of what the bot did not understand asks an ``$or`` of reasons, which the embedded
    server answers by reading every message of the store: asked one reason at a time there, each
    through the account's customer messages by time."""
    async with captured_store(tmp_path) as (store, capture):
        with labelled("review"):
            assert await store.training.messages_to_review("default") == []
    plans = sqlite_plans(tmp_path, capture.every)
    assert len(plans) == len(UNSURE_REASONS) + len(HUMAN_ACTIONS) + 1, sorted(plans)
    searched_through_indexes(plans)
    for label, (_, plan) in plans.items():
        assert "USING INDEX idx_messages_account_id_direction_created_at " in plan[0], (label, plan)


async def test_undoing_a_merge_finds_the_threads_that_go_back_through_an_index(tmp_path: Path) -> None:
    """The kept contact's threads at the addresses that go back are an ``$or`` of addresses, which
    the embedded server answers by reading every thread in Python: asked address by address."""
    async with captured_store(tmp_path) as (store, capture):
        _, kept, _ = await record(store, inbound("t1", "5512", "order 4471?", account="default", channel="telegram"))
        _, gone, _ = await record(store, inbound("w1", "visitor-9", "hello again", account="default"))
        done = await merge(store, "default", kept.contact_id, gone.contact_id, "cli")
        with labelled("undo"):
            await unmerge(store, "default", done.id, "cli")
    plans = {label: plan for label, plan in sqlite_plans(tmp_path, capture.every).items() if "threads" in label}
    assert plans, "the undo reads threads"
    for label, (sql, plan) in plans.items():
        assert index_backed(plan), (label, plan, sql)


async def test_a_full_page_reads_its_last_millisecond_through_the_index(tmp_path: Path) -> None:
    """A page that fills up reads its last millisecond again, whole, to order it by id: through the
    time's index, alone and for a member of some inboxes (part by part); asked sorted by id, SQLite
    walked the id index through every thread instead."""
    async with captured_store(tmp_path) as (store, capture):
        for n in range(4):
            await record(store, inbound(f"p{n}", f"visitor-{n}", "hi", account="default"))
        agent = await make_agent(store, "m", online=False)
        member = dataclasses.replace(agent, inboxes=[f"{FIRST}webchat", f"{FIRST}sms"])
        for label, listed in (("all", ThreadFilter()), ("a member's", ThreadFilter(within=thread_match(member)))):
            with labelled(label):
                page = await store.threads.browse_threads("default", listed, limit=2, before=None, before_id=None)
            assert len(page) == 2
    plans = sqlite_plans(tmp_path, capture.every)
    assert {"all: find threads #2", "a member's: find threads #2"} <= set(plans), sorted(plans)
    for label, (sql, plan) in plans.items():
        assert index_backed(plan), (label, plan, sql)


def searched_through_indexes(plans: dict[str, tuple[str, list[str]]]) -> None:
    """Each plan reads through an index from its first step, and neither scans a collection nor
    sorts every match."""
    for label, (sql, plan) in plans.items():
        assert plan and plan[0].startswith("SEARCH") and index_backed(plan), (label, plan, sql)


async def test_the_admin_pages_listings_read_through_an_index(tmp_path: Path) -> None:
    """The audit log (by actor, by action), the satisfaction report's questions, a subscription's
    deliveries in a state, the agents' shifts, an intent's training examples and a contact's
    standing merges: each read through its index, not the whole collection."""
    async with captured_store(tmp_path) as (store, capture):
        now = utcnow()
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "audit by actor": lambda: store.audit.audit_page(AuditQuery("default", actor="ann"), 1, 50),
            "audit by action": lambda: store.audit.audit_page(AuditQuery("default", action="thread.resolve"), 1, 50),
            "satisfaction report": lambda: store.satisfaction.asked_between("default", now - timedelta(7), now),
            "deliveries in a state": lambda: store.webhooks.list_deliveries("whs_1", DeliveryState.DEAD),
            "an agent's shifts": lambda: store.agents.list_shifts("default", now - timedelta(7), now, "agt_1"),
            "an intent's examples": lambda: store.training.nlu_examples_of("default", "greet"),
            "a contact's merges": lambda: store.merges.standing_merges("default", "con_1", now),
        }
        for label, call in calls.items():
            with labelled(label):
                await call()
    plans = sqlite_plans(tmp_path, capture.captured)
    assert set(plans) == {
        "audit by actor: find audit",
        "audit by action: find audit",
        "satisfaction report: find satisfaction",
        "deliveries in a state: find webhook_deliveries",
        "an agent's shifts: find shifts",
        "an intent's examples: find nlu_examples",
        "a contact's merges: find contact_merges",
    }
    for label, (sql, plan) in plans.items():
        assert plan and plan[0].startswith("SEARCH") and not [line for line in plan if line.startswith("SCAN")], (
            label,
            plan,
            sql,
        )


async def test_an_export_and_an_erasure_find_a_contact_s_records_through_indexes(tmp_path: Path) -> None:
    """An export reads, and an erasure deletes, what each holder finds of a contact: by ids other
    than ``_id`` (contact, thread, message, address) and ``$or`` lists of them, which the embedded
    store answers by reading every document in Python; asked one plain query at a time, each reads
    an index (the export's finds are the erasure's deletes' filters)."""
    async with captured_store(tmp_path) as (store, capture):
        _, thread, _ = await record(store, inbound("ext_in", account="default"), utcnow())
        scope = await store.privacy.contact_scope("default", thread.contact_id)
        assert scope is not None
        with labelled("export"):
            exported = await store.privacy.export_personal_data(scope)
        with labelled("erasure"):
            await store.privacy.erase_personal_data(scope, Erasure("era_1", utcnow()))
    assert [m["_id"] for m in exported["messages"]] == list(scope.message_ids)
    plans = sqlite_plans(tmp_path, capture.captured)
    # the collections that grow with the traffic, each through the index of the holder's key (a
    # contact's messages through the contact's, not every message of the account)
    for collection, index in {
        "messages": "idx_messages_contact_id_created_at",
        "threads": "idx_threads_account_id_contact_id_opened_at",
        "identities": "idx_identities_contact_id",
        "timeline": "idx_timeline_contact_id_at",
        "sms_parts": "idx_sms_parts_message_id",
        "webhook_deliveries": "idx_webhook_deliveries_thread_id",
    }.items():
        plan = plans[f"export: find {collection}"][1]
        assert index_backed(plan) and f"USING INDEX {index} " in plan[0], (collection, plan)
    # the smaller holders too, each through an index of its key with the account (a contact's few
    # records may be sorted): before, each of these read its whole collection
    for collection, index in {
        "campaign_recipients": "idx_campaign_recipients_account_id_contact_id",
        "unsubscribe_links": "idx_unsubscribe_links_account_id_address",
        "consent": "idx_consent_account_id_address",
        "satisfaction": "idx_satisfaction_account_id_contact_id_asked_at",
        "contact_merges": "idx_contact_merges_account_id_keep_id_at",
        "nlu_examples": "idx_nlu_examples_account_id_message_id",
        "nlu_models": "idx_nlu_models_account_id_created_at",
        "email_keys": "idx_email_keys_contact_id",
        "attachment_files": "idx_attachment_files_message_id",
    }.items():
        plan = plans[f"export: find {collection}"][1]
        assert f"USING INDEX {index} " in plan[0], (collection, plan)
    # every query of the export and the erasure (each part of a split one, every holder's)
    scans = {
        label: plan
        for label, (_, plan) in sqlite_plans(tmp_path, capture.every).items()
        if any(line.startswith("SCAN ") and "VIRTUAL TABLE" not in line for line in plan)
    }
    assert not scans, scans
