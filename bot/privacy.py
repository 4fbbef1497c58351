"""Personal data of one contact: find them, export everything held about them as one JSON
document (right of access and portability), or erase it everywhere (right to erasure).

Both go through the holder registry (``conversations/personal_data.py``), so data added by later
features (NLU training examples, embedding caches) is exported and erased once its module
registers a holder. Both are recorded in the audit log: an export under the contact's id (which
the contact's erasure later replaces), an erasure under its receipt id, with counts only.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from bot import audit
from bot.logs import log_event
from conversations.models import Agent, ThreadStatus, utcnow
from conversations.personal_data import ContactScope, Erasure, jsonable
from conversations.store import Store

log = logging.getLogger("omnirouter.privacy")

EXPORT_FORMAT = "omnirouter.contact-export/1"
_CONTACT_ID = re.compile(r"^con_[0-9a-f]{24}$")


class ContactNotFound(LookupError):
    """No contact matches the given id or address in the account."""


@dataclass(frozen=True)
class ErasureResult:
    receipt: str
    at: datetime
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def find_contact(store: Store, account_id: str, ref: str) -> ContactScope:
    """The contact named by ``ref``: a contact id (``con_…``), an identity (``sms:+37120000000``,
    ``email:ann@example.com``), or a bare address on any channel. Raises ``ContactNotFound``."""
    ref = ref.strip()
    contact_id: str | None = ref if _CONTACT_ID.match(ref) else None
    if contact_id is None and ":" in ref:
        channel, _, address = ref.partition(":")
        contact_id = await store.contact_by_identity(account_id, channel, address)
    if contact_id is None and ref:
        contact_id = await store.contact_by_address(account_id, ref)
    scope = await store.contact_scope(account_id, contact_id) if contact_id else None
    if scope is None:
        raise ContactNotFound(f"no contact {ref!r} in account {account_id!r}")
    return scope


async def export_contact(store: Store, scope: ContactScope, actor: Agent | str) -> dict[str, Any]:
    """Everything held about the contact, as one JSON-ready document."""
    sections = {name: [jsonable(doc) for doc in docs] for name, docs in (await store.export_personal_data(scope)).items()}
    contacts = {doc["id"]: doc for doc in sections.get("contacts", [])}
    messages = sections.get("messages", [])
    document = {
        "format": EXPORT_FORMAT,
        "exported_at": utcnow().isoformat(),
        "account_id": scope.account_id,
        "contact_id": scope.contact_id,
        "contact": contacts.get(scope.contact_id, {}),
        "identities": list(scope.identity_keys),
        "calls": [m for m in messages if isinstance(m.get("meta"), dict) and "call" in m["meta"]],
        "attachments": [{"message_id": m["id"], **a} for m in messages for a in m.get("attachments") or []],
        "data": sections,
    }
    await audit.record(store, scope.account_id, actor, "contact.export", scope.contact_id,
                       documents=sum(len(docs) for docs in sections.values()))
    log_event(log, "privacy.exported", account=scope.account_id, contact=scope.contact_id)
    return document


async def erase_contact(store: Store, scope: ContactScope, actor: Agent | str) -> ErasureResult:
    """Remove or irreversibly anonymise everything held about the contact. Agents holding one
    of their open conversations get their slot back; consoles refresh."""
    erasure = Erasure(id=f"era_{ObjectId()}", at=utcnow())
    for thread_id in scope.thread_ids:
        thread = await store.get_thread(thread_id)
        if thread is not None and thread.status != ThreadStatus.RESOLVED:
            before = await store.resolve(thread_id, erasure.at, None)
            if before is not None and before.assignee:
                await store.release_agent(before.assignee)
    counts = await store.erase_personal_data(scope, erasure)
    await store.emit_event(scope.account_id, "queue", erasure.at)  # no thread: every console refreshes
    await audit.record(store, scope.account_id, actor, "contact.erase", erasure.id,
                       **{f"erased_{name}": n for name, n in counts.items() if n})
    log_event(log, "privacy.erased", account=scope.account_id, receipt=erasure.id, documents=sum(counts.values()))
    return ErasureResult(erasure.id, erasure.at, counts)
