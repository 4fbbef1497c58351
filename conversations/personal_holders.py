"""The personal-data holders of the core store: contacts, their identities, threads, messages and
everything hanging off them (an earlier release's outbox items, timeline notes, e-mail sources and keys, SMS parts and
consent, the audit log), plus the collections declared to hold nothing about contacts.

Imported for its registrations by ``conversations/privacy.py``.

Threads are *anonymised*, not deleted: what stays (channel, status, times, assignee) holds
nothing about the person and keeps the reports right after an erasure. Their contact becomes the
erasure's receipt id; address, labels and thread keys go. Everything else is deleted. Audit
entries about the contact keep who did what and when, with the receipt id instead of the contact.

Every holder looks in the contact's own account only. Two collections carry no ``account_id``:
e-mail thread keys (their ids start with the account's) and SMS parts (written by our own sends,
for our own messages only).
"""

from __future__ import annotations

from typing import Any

from conversations.filters import exactly, find_all, update_all
from conversations.models import epoch_ms
from conversations.personal_data import (
    ContactScope,
    Database,
    Erasure,
    PersonalDataHolder,
    declare_not_personal,
    keyed_holder,
    query_holder,
    register_holder,
)

_OPEN = ["bot", "queued", "assigned"]


def _any(**fields: tuple[str, ...]) -> dict[str, Any] | None:
    """``{"$or": [{field: {"$in": values}}, …]}`` over the non-empty ones; ``None`` if all empty."""
    parts = [{name: {"$in": sorted(set(values))}} for name, values in fields.items() if values]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$or": parts}


def _of_account(scope: ContactScope, query: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if query is None else {**query, "account_id": scope.account_id}


def _email_keys_found(scope: ContactScope) -> dict[str, Any] | None:
    return _any(contact_id=scope.contact_ids, thread_id=scope.thread_ids)


async def _export_email_keys(db: Database, scope: ContactScope) -> list[dict[str, Any]]:
    """A contact's e-mail thread keys: ids ``<account>|<key>``, no account field. Found by contact
    and thread, then kept to the account's ids here: the embedded server answers a regex or a
    range of ``_id`` by reading every key in Python."""
    query = _email_keys_found(scope)
    prefix = f"{scope.account_id}|"
    return (
        [] if query is None else [doc for doc in await find_all(db.email_keys, query) if doc["_id"].startswith(prefix)]
    )


async def _erase_email_keys(db: Database, scope: ContactScope, erasure: Erasure) -> int:
    ids = [doc["_id"] for doc in await _export_email_keys(db, scope)]
    return (await db.email_keys.delete_many({"_id": {"$in": ids}})).deleted_count if ids else 0


async def _export_threads(db: Database, scope: ContactScope) -> list[dict[str, Any]]:
    # the account with $eq: the index of a contact's threads leads with it (a bare equality of a
    # field no index is named by reads every thread on the embedded store)
    query = _any(contact_id=scope.contact_ids)
    return (
        []
        if query is None
        else await find_all(db.threads, {**query, **exactly(account_id=scope.account_id)}, [("opened_at", 1)])
    )


async def _anonymise_threads(db: Database, scope: ContactScope, erasure: Erasure) -> int:
    if not scope.thread_ids:
        return 0
    at = epoch_ms(erasure.at)
    mine = {"_id": {"$in": list(scope.thread_ids)}, "account_id": scope.account_id}
    await db.threads.update_many(  # still open: closed now (the caller frees any agent first)
        {**mine, "status": {"$in": _OPEN}}, {"$set": {"status": "resolved", "resolved_at": at}}
    )
    result = await db.threads.update_many(
        mine,
        {
            "$set": {"contact_id": erasure.id, "erased_at": at},
            "$unset": {
                "address": "",
                "open_key": "",
                "queued_by": "",
                "labels": "",
                "email_keys": "",
                "awaiting_since": "",
                "assignee": "",
                "nlu_state": "",  # the bot's slots: order numbers, addresses, what the customer said
            },
        },
    )
    return result.modified_count


async def _export_audit(db: Database, scope: ContactScope) -> list[dict[str, Any]]:
    query = _of_account(scope, _any(target=scope.contact_ids + scope.thread_ids))
    return [] if query is None else await find_all(db.audit, query, [("at", 1)])


async def _anonymise_audit(db: Database, scope: ContactScope, erasure: Erasure) -> int:
    if not scope.contact_ids:
        return 0
    mine = {"target": {"$in": list(scope.contact_ids)}, "account_id": scope.account_id}
    return await update_all(db.audit, mine, {"$set": {"target": erasure.id}})


def _register() -> None:
    for holder in (
        keyed_holder("timeline", "timeline", "contact_id", lambda s: s.contact_ids),
        query_holder("outbox", "outbox", lambda s: _any(thread_id=s.thread_ids, message_id=s.message_ids)),
        keyed_holder("email_sources", "email_sources", "_id", lambda s: s.message_ids),
        keyed_holder("email_threads", "email_threads", "_id", lambda s: s.thread_ids),
        PersonalDataHolder("email_keys", ("email_keys",), _export_email_keys, _erase_email_keys, 10),
        keyed_holder("sms_parts", "sms_parts", "message_id", lambda s: s.message_ids, account_field=None),
        keyed_holder("consent", "consent", "address", lambda s: s.addresses),
        keyed_holder("campaign_recipients", "campaign_recipients", "contact_id", lambda s: s.contact_ids),
        keyed_holder("unsubscribe_links", "unsubscribe_links", "address", lambda s: s.addresses),
        PersonalDataHolder("audit", ("audit",), _export_audit, _anonymise_audit, 10),
        query_holder(
            "messages",
            "messages",
            lambda s: _any(contact_id=s.contact_ids, _id=s.message_ids),
            order=80,
            account_leads=False,
        ),
        PersonalDataHolder("threads", ("threads",), _export_threads, _anonymise_threads, 85),
        keyed_holder("identities", "identities", "contact_id", lambda s: s.contact_ids, order=90, account_leads=False),
        keyed_holder("contacts", "contacts", "_id", lambda s: s.contact_ids, order=95),
    ):
        register_holder(holder)
    for collection, reason in {
        "accounts": "the businesses using the router",
        "agents": "the businesses' agents, not their customers",
        "sessions": "agents' console logins",
        "login_failures": "failed console logins, counted per agent login and address",
        "shifts": "agents' timesheet",
        "canned": "agents' reply templates",
        "secrets": "keys of this install",
        "events": "live-console notices carrying record ids only, pruned within minutes",
        "jobs": "leases of scheduled jobs",
        "campaigns": "what admins send and to which audience filters; recipients are campaign_recipients",
    }.items():
        declare_not_personal(collection, reason)


_register()
