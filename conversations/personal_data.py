"""Where a contact's personal data lives: a registry of *holders*, each knowing how to export and
erase one contact's data from the collections it owns.

Every module that stores something about a contact registers a holder, so export, erasure and
retention reach it without being changed. A new store (the NLU's training examples, its embedding
cache) plugs in with a few lines next to its own code::

    from conversations.personal_data import keyed_holder, register_holder

    register_holder(keyed_holder("nlu_examples", "nlu_examples", "message_id", lambda s: s.message_ids))
    register_holder(keyed_holder("nlu_embeddings", "nlu_embedding_cache", "text_sha256",
                                 lambda s: s.text_digests(), account_field=None))

Holders find documents of the contact's own account only (``account_field``, ``"account_id"`` by
default): a record another account created with this contact's ids is not theirs to export or
erase. A collection that holds nothing about contacts says so with :func:`declare_not_personal` (with
the reason); the tests fail for any collection that is neither, and search every collection for a
contact's identifiers after an erasure.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import Binary, ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from conversations.filters import delete_all, find_all
from conversations.models import from_epoch_ms

Database = AsyncDatabase[dict[str, Any]]


@dataclass(frozen=True)
class ContactScope:
    """Everything that identifies one contact's data, gathered before anything is changed (so
    holders may run in any order, and an interrupted erasure finds the rest when run again).

    Retention uses the same holders with a scope of old messages only (no contact, no threads):
    holders keyed by messages or texts act on those, the others find nothing to do.
    """

    account_id: str
    contact_id: str = ""
    contact_ids: tuple[str, ...] = ()  # the contact and every contact merged into it
    addresses: tuple[str, ...] = ()  # phone numbers, chat ids, e-mail addresses
    identity_keys: tuple[str, ...] = ()  # "channel:address"
    thread_ids: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()  # every text the messages carried, earlier edits included

    def text_digests(self) -> list[str]:
        """SHA-256 hex digests of ``texts`` (for caches keyed by a text's hash)."""
        return [hashlib.sha256(text.encode()).hexdigest() for text in self.texts]


@dataclass(frozen=True)
class Erasure:
    """One erasure (or retention run): its receipt id replaces the contact in what is kept."""

    id: str
    at: datetime


ExportFn = Callable[[Database, ContactScope], Awaitable[list[dict[str, Any]]]]
EraseFn = Callable[[Database, ContactScope, Erasure], Awaitable[int]]


@dataclass(frozen=True)
class PersonalDataHolder:
    """How one kind of stored data is exported and erased for a contact.

    ``name`` is the section of the export document; ``collections`` the collections it covers;
    ``erase`` returns how many documents it removed or anonymised. Holders erase in ascending
    ``order``: the records a contact's scope is found from (messages, threads, identities, the
    contact itself) go last.
    """

    name: str
    collections: tuple[str, ...]
    export: ExportFn
    erase: EraseFn
    order: int = 10


@dataclass
class _Registry:
    holders: dict[str, PersonalDataHolder] = field(default_factory=dict)
    not_personal: dict[str, str] = field(default_factory=dict)  # collection -> why


_REGISTRY = _Registry()


def register_holder(holder: PersonalDataHolder) -> PersonalDataHolder:
    """Add (or replace, by name) a holder; returns it."""
    _REGISTRY.holders[holder.name] = holder
    return holder


def unregister_holder(name: str) -> None:
    _REGISTRY.holders.pop(name, None)


def declare_not_personal(collection: str, reason: str) -> None:
    """Record that ``collection`` holds nothing about contacts (agents, sessions, settings…)."""
    _REGISTRY.not_personal[collection] = reason


def holders() -> list[PersonalDataHolder]:
    """Every registered holder, in erasure order."""
    return sorted(_REGISTRY.holders.values(), key=lambda h: (h.order, h.name))


def covered_collections() -> dict[str, str]:
    """Collection -> the holder covering it, or ``"not personal: <why>"``."""
    covered = {name: f"not personal: {why}" for name, why in _REGISTRY.not_personal.items()}
    for holder in holders():
        covered.update(dict.fromkeys(holder.collections, holder.name))
    return covered


def query_holder(
    name: str,
    collection: str,
    pick: Callable[[ContactScope], dict[str, Any] | None],
    *,
    order: int = 10,
    account_field: str | None = "account_id",
    account_leads: bool = True,
) -> PersonalDataHolder:
    """A holder for the documents of ``collection`` matching ``pick(scope)`` (``None``: nothing
    of this scope is there): exported as they are, erased by deleting them.

    ``account_field`` restricts them to the scope's account, so another account's records that
    name this contact's ids (an NLU example created with someone else's message id) are neither
    exported nor erased with them; ``None`` only for collections whose documents carry no
    account (say why where it is registered). Found and deleted through ``filters.find_all`` and
    ``delete_all``: on the embedded store an ``$or`` or an ``$in`` of ids other than ``_id`` is
    asked one plain query at a time, each through its index, not by reading the whole collection.

    ``account_leads``: the index of what ``pick`` asks for leads with the account, so the account
    is asked as ``$eq`` (the embedded server reads a bare equality as "equal, or an array holding
    it", which no index answers); ``False`` where that field has an index of its own and the
    collection an index led by the account as well: asked bare, SQLite takes the field's."""

    def mine(scope: ContactScope) -> dict[str, Any] | None:
        found = pick(scope)
        if found is None or account_field is None:
            return found
        return {**found, account_field: {"$eq": scope.account_id} if account_leads else scope.account_id}

    async def export(db: Database, scope: ContactScope) -> list[dict[str, Any]]:
        found = mine(scope)
        return [] if found is None else await find_all(db[collection], found)

    async def erase(db: Database, scope: ContactScope, erasure: Erasure) -> int:
        found = mine(scope)
        return 0 if found is None else await delete_all(db[collection], found)

    return PersonalDataHolder(name, (collection,), export, erase, order)


def keyed_holder(
    name: str,
    collection: str,
    key: str,
    values: Callable[[ContactScope], Iterable[str]],
    *,
    order: int = 10,
    account_field: str | None = "account_id",
    account_leads: bool = True,
) -> PersonalDataHolder:
    """A ``query_holder`` for documents found by one field (``key``) taking ``values(scope)``,
    of the scope's account (``account_field`` and ``account_leads`` as in :func:`query_holder`)."""

    def pick(scope: ContactScope) -> dict[str, Any] | None:
        wanted = sorted(set(values(scope)))
        return {key: {"$in": wanted}} if wanted else None

    return query_holder(name, collection, pick, order=order, account_field=account_field, account_leads=account_leads)


def jsonable(value: Any, key: str = "") -> Any:
    """A stored value as JSON: ``_id`` as ``id``, epoch-ms times (``*_at``, ``at``) as ISO 8601,
    binary as base64."""
    if isinstance(value, dict):
        return {("id" if k == "_id" else k): jsonable(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, (Binary, bytes)):
        return {"base64": base64.b64encode(bytes(value)).decode(), "size": len(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and (key == "at" or key.endswith("_at")):
        return from_epoch_ms(value).isoformat()
    return value
