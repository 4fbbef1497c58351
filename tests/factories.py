"""Records for tests, made and read through the repositories as the router makes and reads them.

Tests create contacts, threads, messages, outbox items, agents and accounts here (or through the
router itself) and inspect state with repository reads; none reaches into the store's database.
Only a test that must plant what an older release or an attacker would have written, or check
what is at rest (a secret sealed, a token hashed), takes the ``raw_database`` fixture
(``tests/conftest.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from conversations.agent_models import Agent, Presence, Role
from conversations.audit import AuditQuery
from conversations.ids import new_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import Account, AuditEntry
from conversations.thread_models import Message, OutboxItem, OutboxState, Thread
from conversations.traffic import Identity, Inbound

ACCOUNT = "default"  # the router's own account in the tests' settings
LEASE = timedelta(seconds=30)


def inbound(
    external_id: str = "m1",
    address: str = "alice",
    text: str = "hi",
    *,
    account: str = "acme",
    channel: str = "webchat",
    name: str | None = "Alice",
) -> Inbound:
    """A customer message as a channel hands it over."""
    return Inbound(
        account_id=account,
        channel=channel,
        external_id=external_id,
        sender=Identity(channel, address),
        text=text,
        sender_name=name,
    )


async def record(store: Repositories, item: Inbound, now: datetime | None = None) -> tuple[Message, Thread, bool]:
    """Record ``item`` as the router's inbound path does (contact, open thread, message); returns
    the message, its thread and whether it was a duplicate."""
    now = now or utcnow()
    contact_id = await store.contacts.find_or_create_contact(item.account_id, item.sender, item.sender_name, now)
    thread = await store.threads.touch_open_thread(contact_id, item.channel, now)
    if thread is None:
        thread = await store.threads.open_thread(item.account_id, contact_id, item.sender, now)
    message, duplicate = await store.messages.record_inbound(item, contact_id, thread.id, now, LEASE)
    return message, thread, duplicate


async def reply(
    store: Repositories,
    thread: Thread,
    text: str = "hello",
    *,
    dedup_key: str | None = None,
    sender: dict[str, Any] | None = None,
) -> Message:
    """An outbound message of ``thread`` with its outbox item, as the bot's replies are stored."""
    return await store.outbox.create_outbound(
        dedup_key=dedup_key or new_id("msg"),
        thread=thread,
        to=Identity(thread.channel, thread.address or ""),
        text=text,
        sender=sender or {"kind": "bot"},
        now=utcnow(),
    )


async def agent(
    store: Repositories,
    login: str,
    *,
    account: str = ACCOUNT,
    role: Role = Role.AGENT,
    online: bool = False,
    **fields: Any,
) -> Agent:
    """An agent straight in the store (no password unless ``password_hash`` is given)."""
    made = Agent(
        id=new_id("agt"),
        account_id=account,
        login=login,
        name=login.title(),
        role=role,
        created_at=utcnow(),
        presence=Presence.ONLINE if online else Presence.OFFLINE,
        **fields,
    )
    assert await store.agents.create_agent(made)
    return made


async def account(store: Repositories, account_id: str, **fields: Any) -> Account:
    """An account with no channels."""
    made = Account(id=account_id, name=fields.pop("name", account_id.title()), created_at=utcnow(), **fields)
    assert await store.accounts.create_account(made)
    return made


# --- reads -----------------------------------------------------------------------------------


async def messages(store: Repositories, account: str = ACCOUNT, **match: str) -> list[Message]:
    """The account's messages matching ``match`` (direction, channel, ...), oldest first."""
    return list(reversed(await store.messages.list_messages(account, limit=10_000, **match)))


async def contact_count(store: Repositories, account: str = ACCOUNT) -> int:
    """How many contacts the account has, those merged into another one included."""
    count = 0
    for contact in await store.contacts.list_contacts(account, limit=10_000):
        scope = await store.privacy.contact_scope(account, contact.id)
        count += len(scope.contact_ids) if scope else 1
    return count


async def outbox(store: Repositories, account: str | None = None, state: OutboxState | None = None) -> list[OutboxItem]:
    """The outbox items (of one account, in one state), oldest first."""
    return list(reversed(await store.outbox.list_outbox(state, account, limit=10_000)))


async def audit(store: Repositories, account: str = ACCOUNT, action: str = "", actor: str = "") -> list[AuditEntry]:
    """The account's audit entries matching ``action`` (or an action family such as ``"thread."``)
    and ``actor``, oldest first."""
    found = [entry async for entry in store.audit.audit_entries(AuditQuery(account, actor, action), 10_000)]
    return list(reversed(found))


async def threads(store: Repositories, account: str = ACCOUNT, **match: str) -> list[Thread]:
    """The account's threads matching ``match`` (status, channel, assignee, contact_id), newest first."""
    return await store.threads.list_threads(account, limit=10_000, **match)
