"""The audit log: who did what to which record, and when.

Recorded where the action happens (the queue for thread actions, the console and admin handlers
for logins, shifts, agents and settings, the privacy service for exports and erasures), so every
way in — console, CLI, API — leaves the same trail. Entries name records by id and never carry
message bodies, notes or other personal data, so an erasure leaves the log intact (it only swaps
the erased contact's id for the erasure's receipt).

Actions: ``login``, ``login.failed``, ``logout``, ``shift.start|stop|away|back``,
``thread.take|transfer|resolve|reply|note|labels|template|requeue``, ``agent.create|update``,
``settings.routing|canned|retention|channel|reopen|account|attributes``, ``contact.export|erase|update|merge|unmerge``, ``report.export``,
``audit.export``, ``timesheet.export``, ``retention.purge``, ``outbox.retry``, ``account.create|disable|enable``,
``token.create|revoke``, ``webhook.create|update|toggle|rotate|delete|redeliver``,
``nlu.train|activate|learn|import``, ``nlu.intent.create|delete``, ``nlu.example.add|edit|delete``, ``bot.publish``,
``campaign.create|cancel``. API callers are ``api``
(the install-wide token) or ``api:<token name>`` (an account's token).
"""

from __future__ import annotations

import logging
from typing import Any

from bot.logs import log_event
from conversations.agent_models import Agent
from conversations.ids import new_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import AuditEntry

log = logging.getLogger("omnirouter.audit")

CLI, SYSTEM, API = "cli", "system", "api"  # actors that are not agents


async def record(
    store: Repositories, account_id: str, actor: Agent | str, action: str, target: str, /, **details: Any
) -> AuditEntry:
    """Append one entry; ``actor`` is the agent, or ``"cli"`` / ``"system"`` / ``"api"``."""
    actor_id, actor_name = (actor.id, actor.login) if isinstance(actor, Agent) else (actor, actor)
    entry = AuditEntry(
        id=new_id("aud"),
        account_id=account_id,
        actor=actor_id,
        actor_name=actor_name,
        action=action,
        target=target,
        at=utcnow(),
        details={k: v for k, v in details.items() if v is not None},
    )
    await store.audit.add_audit(entry)
    log_event(log, "audit.recorded", action=action, actor=actor_id, target=target)
    return entry
