"""Agents as people who sign in: creating one (with a generated password, shown once), changing
one (role, teams, capacity, inboxes, whether they may log in: a deactivated agent's sessions end at once),
and the argon2id hashes their passwords are kept as. The admin pages, the REST API, the CLI and
account creation all add and change agents here."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot import audit
from bot.handlers.registry import CHANNELS
from conversations.agent_models import Agent, Role
from conversations.ids import new_id
from conversations.membership import clean_keys, inbox_key
from conversations.models import utcnow
from conversations.repositories import Repositories

_HASHER = PasswordHasher()  # argon2id with the library's recommended cost
_DUMMY_HASH = _HASHER.hash("omnirouter-timing-equaliser")


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(None, _HASHER.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not the agent exists (no login enumeration by timing)."""

    def check() -> bool:
        try:
            return _HASHER.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(None, check)


async def add_agent(
    store: Repositories,
    account_id: str,
    login: str,
    *,
    name: str | None = None,
    role: Role = Role.AGENT,
    teams: list[str] | None = None,
    capacity: int = 5,
    password: str | None = None,
    inboxes: list[str] | None = None,
) -> tuple[Agent | None, str]:
    """Create an agent; returns ``(agent or None if the login is taken, password)``. Without a
    password one is generated (and returned, to be shown once)."""
    password = password or secrets.token_urlsafe(12)
    agent = Agent(
        id=new_id("agt"),
        account_id=account_id,
        login=login,
        name=name or login,
        role=role,
        created_at=utcnow(),
        password_hash=await hash_password(password),
        teams=list(teams or []),
        capacity=capacity,
        free=capacity,
        inboxes=inboxes,
    )
    return (agent if await store.agents.create_agent(agent) else None), password


async def change_agent(
    store: Repositories, agent: Agent, actor: Agent | str, changes: dict[str, Any], **audit_details: Any
) -> Agent:
    """Apply ``changes`` (``name``, ``role``, ``teams``, ``capacity``, ``active``, ``inboxes``) to ``agent`` for
    ``actor``, recorded as ``agent.update`` with ``audit_details``; the agent as it is now."""
    fields = dict(changes)
    capacity = fields.pop("capacity", None)
    if fields:
        await store.agents.update_agent(agent.id, **fields)
    if capacity is not None:
        await store.agents.set_capacity(agent.id, capacity)
    if fields.get("active") is False:
        await store.sign_in.delete_agent_sessions(agent.id)
    await audit.record(store, agent.account_id, actor, "agent.update", agent.id, **audit_details)
    return await store.agents.get_agent(agent.id) or agent


async def account_inboxes(store: Repositories, account_id: str) -> list[tuple[str, str, str]]:
    """Every inbox an agent of the account can be a member of, as ``(key, channel, name)``: its
    first inbox of each channel (``first:<channel>``, no name) and its extra ones."""
    first = [(inbox_key(None, channel), channel, "") for channel in CHANNELS]
    return first + [(inbox.id, inbox.channel, inbox.name) for inbox in await store.inboxes.list_inboxes(account_id)]


async def chosen_inboxes(store: Repositories, account_id: str, keys: list[str] | None) -> list[str] | None:
    """``keys`` checked against the account's inboxes (``ValueError`` names one that is not, as
    another account's is not); ``None`` stays "every inbox"."""
    if keys is None:
        return None
    return clean_keys(keys, [key for key, _, _ in await account_inboxes(store, account_id)])
