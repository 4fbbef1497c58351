"""Merging two contacts by hand (one person who wrote from two addresses the router could not
join), and undoing it within :data:`UNDO_DAYS`.

The kept contact gets the other's identities (so new messages from any of them land on its
threads), threads with their messages, and the attributes and name it lacks (its own values win).
The other contact stays, marked ``merged_into``, so the merge can be undone; see
``conversations/contact_merges.py`` for the record and why a crash midway is finished by merging
again. Console and API both come here; each merge and undo is audited (ids only).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot import audit
from conversations.agent_models import Agent
from conversations.contact_merges import DONE, UNDOING, ContactMerge, MergeConflict
from conversations.models import utcnow
from conversations.repositories import Repositories

UNDO_DAYS = 7


class MergeRefused(Exception):
    """A merge or undo that cannot be done: ``status`` is the HTTP status that says why (404: no
    such contact or merge in the account; 400: a contact with itself; 409: the state forbids it)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _actor_id(by: Agent | str) -> str:
    return by.id if isinstance(by, Agent) else by


async def merge(store: Repositories, account_id: str, keep_id: str, gone_id: str, by: Agent | str) -> ContactMerge:
    """Fold contact ``gone_id`` into ``keep_id``, both of ``account_id``. Merging the same two
    again returns the standing merge (finishing it if a crash interrupted it)."""
    if keep_id == gone_id:
        raise MergeRefused(400, "a contact cannot be merged with itself")
    keep = await store.merges.contact_doc(account_id, keep_id)
    gone = await store.merges.contact_doc(account_id, gone_id)
    if keep is None or gone is None:
        raise MergeRefused(404, f"no contact {keep_id if keep is None else gone_id}")
    if keep.get("merged_into"):
        raise MergeRefused(409, f"contact {keep_id} was merged into another one")
    if gone.get("merged_into") and gone["merged_into"] != keep_id:
        raise MergeRefused(409, f"contact {gone_id} was merged into another one")
    try:
        record = await store.merges.plan_merge(account_id, keep, gone, _actor_id(by), utcnow())
    except MergeConflict:
        raise MergeRefused(
            409, f"contact {gone_id} or {keep_id} is in another merge right now; try again when it is done"
        ) from None
    if record.state == UNDOING:  # an undo of this merge is unfinished: it goes first
        raise MergeRefused(409, f"an undo of merge {record.id} is unfinished; undo it again, then merge")
    if record.state != DONE:
        await store.merges.apply_merge(record, gone)
        await audit.record(store, account_id, by, "contact.merge", keep_id, merge=record.id, merged=gone_id)
        await store.events.emit_event(account_id, "queue", utcnow())  # consoles show the joined history
    found = await store.merges.get_merge(record.id)
    assert found is not None
    return found


def undo_until(record: ContactMerge) -> datetime:
    """Until when the merge may be undone."""
    return record.at + timedelta(days=UNDO_DAYS)


async def unmerge(store: Repositories, account_id: str, merge_id: str, by: Agent | str) -> ContactMerge:
    """Undo merge ``merge_id`` of ``account_id``: identities, threads, attributes and name go back
    to the contact they came from, and threads opened since on its addresses go with them."""
    record = await store.merges.get_merge(merge_id)
    if record is None or record.account_id != account_id:
        raise MergeRefused(404, f"no merge {merge_id}")
    if record.state not in (DONE, UNDOING):
        raise MergeRefused(409, f"merge {merge_id} is {record.state}, not one that can be undone")
    if utcnow() > record.at + timedelta(days=UNDO_DAYS):
        raise MergeRefused(409, f"a merge can be undone within {UNDO_DAYS} days")
    keep = await store.merges.contact_doc(account_id, record.keep_id)
    if keep is None or keep.get("merged_into"):
        raise MergeRefused(409, "the kept contact was merged into another one since: undo that first")
    await store.merges.undo_merge(record, _actor_id(by), utcnow())
    await audit.record(store, account_id, by, "contact.unmerge", record.keep_id, merge=record.id, merged=record.gone_id)
    await store.events.emit_event(account_id, "queue", utcnow())
    found = await store.merges.get_merge(record.id)
    assert found is not None
    return found
