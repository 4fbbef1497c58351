"""Merging two contacts by hand and undoing it: what moves, what comes back, a re-run after a
crash, the account boundary, the undo period, and erasure of a merged contact."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.services.contact_merge import MergeRefused, merge, unmerge
from bot.services.contacts import erase_contact
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from tests import factories
from tests.conftest import raw_database_of

ACME = "acme"


async def _two(store: Repositories, account: str = ACME) -> tuple[str, str]:
    """Anna on Telegram (a plan attribute) and "Anna B." on the web chat (plan and city): two
    contacts of one person, each with a conversation."""
    _, keep_thread, _ = await factories.record(
        store, factories.inbound("t1", "5512", "order 4471?", account=account, channel="telegram", name="Anna")
    )
    _, gone_thread, _ = await factories.record(
        store, factories.inbound("w1", "visitor-9", "hello again", account=account, name="Anna B.")
    )
    now = utcnow()
    await store.contacts.update_contact(account, keep_thread.contact_id, now, attributes={"plan": "gold"})
    await store.contacts.update_contact(
        account, gone_thread.contact_id, now, attributes={"plan": "basic", "city": "Riga"}
    )
    return keep_thread.contact_id, gone_thread.contact_id


async def _snapshot(store: Repositories, *contact_ids: str) -> dict[str, Any]:
    db = raw_database_of(store)
    ids = list(contact_ids)
    return {
        "contacts": await db.contacts.find({"_id": {"$in": ids}}).sort("_id", 1).to_list(),
        "links": await db.identities.find({"contact_id": {"$in": ids}}).sort("_id", 1).to_list(),
        "threads": await db.threads.find({"contact_id": {"$in": ids}}).sort("_id", 1).to_list(),
        "messages": await db.messages.find({"contact_id": {"$in": ids}}, {"contact_id": 1}).sort("_id", 1).to_list(),
    }


async def test_a_merge_moves_identities_threads_messages_and_fills_gaps(store: Repositories) -> None:
    keep, gone = await _two(store)
    record = await merge(store, ACME, keep, gone, "cli")
    assert record.state == "done" and record.attributes == ("city",)
    assert await store.contacts.contact_by_identity(ACME, "webchat", "visitor-9") == keep
    kept = await store.contacts.get_contact(keep)
    assert kept is not None and kept.name == "Anna"  # its own name wins
    assert kept.attributes == {"plan": "gold", "city": "Riga"}  # its own value wins, the gap is filled
    assert {i.key for i in kept.identities} == {"telegram:5512", "webchat:visitor-9"}
    assert {t.channel for t in await store.threads.contact_threads(ACME, keep)} == {"telegram", "webchat"}
    assert {m.contact_id for m in await factories.messages(store, ACME)} == {keep}
    assert (await raw_database_of(store).contacts.find_one({"_id": gone}))["merged_into"] == keep
    assert [c.id for c in await store.contacts.list_contacts(ACME, limit=10)] == [keep]
    [entry] = await factories.audit(store, ACME, action="contact.merge")
    assert entry.target == keep and entry.details == {"merge": record.id, "merged": gone}


async def test_undo_gives_back_the_same_two_contacts(store: Repositories) -> None:
    keep, gone = await _two(store)
    before = await _snapshot(store, keep, gone)
    record = await merge(store, ACME, keep, gone, "cli")
    undone = await unmerge(store, ACME, record.id, "cli")
    assert undone.state == "undone"
    assert await _snapshot(store, keep, gone) == before
    assert [e.target for e in await factories.audit(store, ACME, action="contact.unmerge")] == [keep]
    with pytest.raises(MergeRefused) as twice:
        await unmerge(store, ACME, record.id, "cli")
    assert twice.value.status == 409
    again = await merge(store, ACME, keep, gone, "cli")  # and it can be merged again
    assert again.id != record.id and again.state == "done"


async def test_a_thread_opened_after_the_merge_on_a_moved_address_goes_back_with_it(store: Repositories) -> None:
    keep, gone = await _two(store)
    record = await merge(store, ACME, keep, gone, "cli")
    [moved] = [t for t in await store.threads.contact_threads(ACME, keep) if t.channel == "webchat"]
    await store.queue.resolve(moved.id, utcnow(), None)
    _, later, _ = await factories.record(store, factories.inbound("w2", "visitor-9", "me again", account=ACME))
    assert later.contact_id == keep and later.id != moved.id  # the lookup by address finds the kept one
    await unmerge(store, ACME, record.id, "cli")
    back = {t.id for t in await store.threads.contact_threads(ACME, gone)}
    assert back == {moved.id, later.id}
    assert {m.contact_id for m in await factories.messages(store, ACME, channel="webchat")} == {gone}
    assert [t.channel for t in await store.threads.contact_threads(ACME, keep)] == ["telegram"]


async def test_a_merge_interrupted_after_its_plan_is_finished_by_merging_again(store: Repositories) -> None:
    keep, gone = await _two(store)
    keep_doc = await store.merges.contact_doc(ACME, keep)
    gone_doc = await store.merges.contact_doc(ACME, gone)
    assert keep_doc is not None and gone_doc is not None
    planned = await store.merges.plan_merge(ACME, keep_doc, gone_doc, "cli", utcnow())  # then the crash
    assert await store.contacts.contact_by_identity(ACME, "webchat", "visitor-9") == gone
    finished = await merge(store, ACME, keep, gone, "cli")
    assert finished.id == planned.id and finished.state == "done"
    assert await store.contacts.contact_by_identity(ACME, "webchat", "visitor-9") == keep
    assert len(await store.threads.contact_threads(ACME, keep)) == 2
    rerun = await merge(store, ACME, keep, gone, "cli")  # a third time: nothing more happens
    assert rerun.id == planned.id
    assert len(await factories.audit(store, ACME, action="contact.merge")) == 1


async def test_an_undo_interrupted_midway_is_finished_by_undoing_again(store: Repositories) -> None:
    keep, gone = await _two(store)
    before = await _snapshot(store, keep, gone)
    record = await merge(store, ACME, keep, gone, "cli")
    db = raw_database_of(store)  # the crash: marked undoing, the links back, nothing else yet
    await db.contact_merges.update_one({"_id": record.id}, {"$set": {"state": "undoing"}})
    await db.identities.update_many({"_id": {"$in": list(record.links)}}, {"$set": {"contact_id": gone}})
    with pytest.raises(MergeRefused) as refused:  # merging again must not re-apply it under the undo
        await merge(store, ACME, keep, gone, "cli")
    assert refused.value.status == 409 and "undo" in str(refused.value)
    assert (await unmerge(store, ACME, record.id, "cli")).state == "undone"
    assert await _snapshot(store, keep, gone) == before


async def test_two_contacts_merged_into_each_other_at_once_do_not_make_a_loop(store: Repositories) -> None:
    a, b = await _two(store)
    a_doc, b_doc = await store.merges.contact_doc(ACME, a), await store.merges.contact_doc(ACME, b)
    assert a_doc is not None and b_doc is not None
    await store.merges.plan_merge(ACME, a_doc, b_doc, "cli", utcnow())  # b into a, planned first
    with pytest.raises(MergeRefused) as refused:  # a into b, racing it: refused, its plan removed
        await merge(store, ACME, b, a, "cli")
    assert refused.value.status == 409
    assert await raw_database_of(store).contact_merges.count_documents({"active_gone": a}) == 0
    assert (await merge(store, ACME, a, b, "cli")).state == "done"


async def test_a_merge_into_a_contact_still_receiving_one_waits_for_it(store: Repositories) -> None:
    """A into B and B into C at once: B's threads must not go to C while A's are still coming to B
    (they would stay with a merged-away contact)."""
    a, b = await _two(store)
    _, c_thread, _ = await factories.record(store, factories.inbound("w7", "visitor-7", "hi", account=ACME, name="C"))
    c = c_thread.contact_id
    a_doc, b_doc = await store.merges.contact_doc(ACME, a), await store.merges.contact_doc(ACME, b)
    assert a_doc is not None and b_doc is not None
    await store.merges.plan_merge(ACME, b_doc, a_doc, "cli", utcnow())  # a into b, planned, not yet moved
    with pytest.raises(MergeRefused) as refused:
        await merge(store, ACME, c, b, "cli")
    assert refused.value.status == 409 and "try again" in refused.value.reason
    assert await raw_database_of(store).contact_merges.count_documents({"active_gone": b}) == 0
    await merge(store, ACME, b, a, "cli")  # finished
    assert (await merge(store, ACME, c, b, "cli")).state == "done"
    assert {t.contact_id for t in await factories.threads(store, ACME)} == {c}


async def test_undo_keeps_what_was_changed_on_the_kept_contact_since(store: Repositories) -> None:
    keep, gone = await _two(store)
    record = await merge(store, ACME, keep, gone, "cli")  # fills in city: Riga
    await store.contacts.update_contact(ACME, keep, utcnow(), attributes={"plan": "gold", "city": "Tallinn"})
    await unmerge(store, ACME, record.id, "cli")
    kept = await store.contacts.get_contact(keep)
    assert kept is not None and kept.attributes == {"plan": "gold", "city": "Tallinn"}  # the agent's edit stays


async def test_bad_merges_are_refused(store: Repositories) -> None:
    keep, gone = await _two(store)
    _, third, _ = await factories.record(store, factories.inbound("w3", "visitor-3", "hi", account=ACME, name="C"))
    refusals = []
    for pair in ((keep, keep), (keep, "con_000000000000000000000000"), ("con_000000000000000000000000", gone)):
        with pytest.raises(MergeRefused) as refused:
            await merge(store, ACME, *pair, "cli")
        refusals.append(refused.value.status)
    assert refusals == [400, 404, 404]
    await merge(store, ACME, keep, gone, "cli")
    for pair in ((third.contact_id, gone), (gone, third.contact_id)):  # gone is merged already
        with pytest.raises(MergeRefused) as refused:
            await merge(store, ACME, *pair, "cli")
        assert refused.value.status == 409


async def test_contacts_of_two_accounts_are_not_merged_from_either_side(store: Repositories) -> None:
    ours, _ = await _two(store)
    theirs, _ = await _two(store, "globex")
    for account, keep, gone in ((ACME, ours, theirs), ("globex", theirs, ours), ("globex", ours, theirs)):
        with pytest.raises(MergeRefused) as refused:
            await merge(store, account, keep, gone, "cli")
        assert refused.value.status == 404
    keep, gone = ours, (await store.contacts.list_contacts(ACME, limit=10))[-1].id
    record = await merge(store, ACME, keep, gone, "cli")
    with pytest.raises(MergeRefused) as refused:
        await unmerge(store, "globex", record.id, "cli")  # another account cannot undo it
    assert refused.value.status == 404


async def test_undo_is_refused_after_the_undo_period(store: Repositories) -> None:
    keep, gone = await _two(store)
    record = await merge(store, ACME, keep, gone, "cli")
    old = epoch_ms(utcnow() - timedelta(days=8))
    await raw_database_of(store).contact_merges.update_one({"_id": record.id}, {"$set": {"at": old}})
    with pytest.raises(MergeRefused) as refused:
        await unmerge(store, ACME, record.id, "cli")
    assert refused.value.status == 409 and "7 days" in refused.value.reason


async def test_erasing_the_kept_contact_erases_what_was_merged_in_and_the_record(store: Repositories) -> None:
    keep, gone = await _two(store)
    await merge(store, ACME, keep, gone, "cli")
    scope = await store.privacy.contact_scope(ACME, keep)
    assert scope is not None and set(scope.contact_ids) == {keep, gone}
    exported = await store.privacy.export_personal_data(scope)
    assert len(exported["contact_merges"]) == 1
    await erase_contact(store, scope, "cli")
    db = raw_database_of(store)
    assert await db.contacts.count_documents({"_id": {"$in": [keep, gone]}}) == 0
    assert await db.contact_merges.count_documents({}) == 0
    assert await db.identities.count_documents({"address": {"$in": ["5512", "visitor-9"]}}) == 0
