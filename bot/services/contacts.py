"""Personal data of one contact: find them, export everything held about them as one JSON
document (right of access and portability), or erase it everywhere (right to erasure).

Both go through the holder registry (``conversations/personal_data.py``), so data added by later
features (NLU training examples, embedding caches) is exported and erased once its module
registers a holder. Both are recorded in the audit log: an export under the contact's id (which
the contact's erasure later replaces), an erasure under its receipt id, with counts only.

An erasure also takes the customer's words out of the bot: model versions trained on their
messages are retired (``conversations/nlu_retirement.py``); if the active one was among them, the
newest clean version answers at once and a retraining on the data left is queued for a router
process. On the embedded store it then checkpoints SQLite's write-ahead log and truncates it, so
no copy of the deleted data stays in the store's files. The receipt says what happened.
"""

from __future__ import annotations

import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot import audit
from bot.logs import log_event
from conversations.agent_models import Agent
from conversations.ids import new_id
from conversations.models import epoch_ms, utcnow
from conversations.personal_data import ContactScope, Erasure, jsonable
from conversations.repositories import Repositories
from conversations.thread_models import ThreadStatus

log = logging.getLogger("omnirouter.privacy")

EXPORT_FORMAT = "omnirouter.contact-export/1"
_CONTACT_ID = re.compile(r"^con_[0-9a-f]{24}$")


class ContactNotFound(LookupError):
    """No contact matches the given id or address in the account."""


@dataclass(frozen=True)
class ModelRetirement:
    """What an erasure (or a retention run) did to the account's NLU model versions."""

    retired: tuple[str, ...] = ()  # versions trained on the erased messages: their blobs are gone
    replaced: str | None = None  # the active version, when it was among them
    active: str | None = None  # the version answering now (None: conversations go to people)
    retrain_job: str | None = None  # the training queued on the data that is left

    def audit_details(self) -> dict[str, Any]:
        return {
            "retired_models": len(self.retired) or None,
            "replaced_model": self.replaced,
            "active_model": self.active if self.replaced else None,
            "retrain_job": self.retrain_job,
        }


@dataclass(frozen=True)
class ErasureResult:
    receipt: str
    at: datetime
    counts: dict[str, int]
    models: ModelRetirement = ModelRetirement()
    store_checkpointed: bool = False  # the embedded store's write-ahead log was truncated

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """The receipt in words, for the command line."""
        lines = [f"receipt {self.receipt} (in the audit log): {self.total} records removed or anonymised"]
        if self.models.retired:
            lines.append(
                f"NLU: {len(self.models.retired)} model version(s) trained on their messages retired "
                f"(blobs deleted): {', '.join(self.models.retired)}"
            )
        if self.models.replaced:
            now = (
                f"version {self.models.active} answers now"
                if self.models.active
                else "no model answers now (conversations go to people)"
            )
            queued = (
                f"; retraining {self.models.retrain_job} is queued for the router"
                if self.models.retrain_job
                else "; train a new version (omnirouter nlu train)"
            )
            lines.append(f"NLU: {self.models.replaced} was the active version: {now}{queued}")
        if self.store_checkpointed:
            lines.append("store: the embedded store's write-ahead log was checkpointed and truncated")
        return lines


async def find_contact(store: Repositories, account_id: str, ref: str) -> ContactScope:
    """The contact named by ``ref``: a contact id (``con_…``), an identity (``sms:+37120000000``,
    ``email:ann@example.com``), or a bare address on any channel. Raises ``ContactNotFound``."""
    ref = ref.strip()
    contact_id: str | None = ref if _CONTACT_ID.match(ref) else None
    if contact_id is None and ":" in ref:
        channel, _, address = ref.partition(":")
        contact_id = await store.contacts.contact_by_identity(account_id, channel, address)
    if contact_id is None and ref:
        contact_id = await store.contacts.contact_by_address(account_id, ref)
    scope = await store.privacy.contact_scope(account_id, contact_id) if contact_id else None
    if scope is None:
        raise ContactNotFound(f"no contact {ref!r} in account {account_id!r}")
    return scope


async def export_contact(store: Repositories, scope: ContactScope, actor: Agent | str) -> dict[str, Any]:
    """Everything held about the contact, as one JSON-ready document."""
    sections = {
        name: [jsonable(doc) for doc in docs]
        for name, docs in (await store.privacy.export_personal_data(scope)).items()
    }
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
    await audit.record(
        store,
        scope.account_id,
        actor,
        "contact.export",
        scope.contact_id,
        documents=sum(len(docs) for docs in sections.values()),
    )
    log_event(log, "privacy.exported", account=scope.account_id, contact=scope.contact_id)
    return document


async def erase_contact(
    store: Repositories, scope: ContactScope, actor: Agent | str, *, retrain: bool = False
) -> ErasureResult:
    """Remove or irreversibly anonymise everything held about the contact. Agents holding one
    of their open conversations get their slot back; consoles refresh. With ``retrain`` (the
    embedded NLU engine is in use), a retired active model gets a retraining queued."""
    erasure = Erasure(id=new_id("era"), at=utcnow())
    for thread_id in scope.thread_ids:
        thread = await store.threads.get_thread(thread_id)
        if thread is not None and thread.status != ThreadStatus.RESOLVED:
            before = await store.queue.resolve(thread_id, erasure.at, None)
            if before is not None and before.assignee:
                await store.queue.release_agent(before.assignee)
    visitors = [key.split(":", 1)[1] for key in scope.identity_keys if key.startswith("webchat:")]
    await store.privacy.revoke_visitors(
        scope.account_id, visitors, epoch_ms(erasure.at)
    )  # their tokens name nobody now
    counts = await store.privacy.erase_personal_data(scope, erasure)
    models = await after_retirement(store, scope.account_id, erasure, retrain)
    await store.events.emit_event(scope.account_id, "queue", erasure.at)  # no thread: every console refreshes
    checkpointed = await store.client.checkpoint_embedded()  # last of the erasure's writes
    await audit.record(
        store,
        scope.account_id,
        actor,
        "contact.erase",
        erasure.id,
        **{f"erased_{name}": n for name, n in counts.items() if n},
        **models.audit_details(),
        store_checkpointed=checkpointed or None,
    )
    log_event(
        log,
        "privacy.erased",
        account=scope.account_id,
        receipt=erasure.id,
        documents=sum(counts.values()),
        retired_models=len(models.retired),
        store_checkpointed=checkpointed,
    )
    return ErasureResult(erasure.id, erasure.at, counts, models, checkpointed)


async def after_retirement(store: Repositories, account_id: str, erasure: Erasure, retrain: bool) -> ModelRetirement:
    """What the erasure's holders did to the account's model versions; queues a retraining when
    the active one was retired and ``retrain`` is set."""
    found = await store.nlu.nlu_retirement(account_id, erasure.id, erasure.at)
    job = None
    if found["replaced"] and retrain:
        job = f"job-{uuid.uuid4().hex[:16]}"
        await store.nlu.queue_nlu_retrain(account_id, job, erasure.id, utcnow())
    if found["retired"]:
        log_event(
            log,
            "privacy.models_retired",
            account=account_id,
            receipt=erasure.id,
            versions=len(found["retired"]),
            replaced=found["replaced"],
            active=found["active"],
            job=job,
        )
    return ModelRetirement(tuple(found["retired"]), found["replaced"], found["active"], job)
