"""Who sees what: agents are members of inboxes, and see only the conversations of their inboxes.

An inbox is named by one key: the id of an ``inboxes`` document (``inb_…``, a thread's
``inbox_id``), or ``first:<channel>`` for the account's first inbox of a channel (the channel
settings of the account; its threads have no ``inbox_id``). An agent's ``inboxes`` lists the keys
they are a member of; ``None`` (every agent stored before memberships existed, and the default of a
new one) is every inbox of the account. Supervisors, admins and superadmins see every inbox
whatever the list says.

:func:`thread_match` is the one place that turns an agent into a filter on threads; every list,
count, claim and search of threads for an agent goes through it. Filters keep to what MongoDB
documents (``$or``, ``$in``, equality with ``None`` matching a missing field).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from conversations.agent_models import Agent, Role
from conversations.thread_models import Thread

FIRST = "first:"  # the key prefix of an account's first inbox of a channel
_OVERSEERS = [str(role) for role in Role if role.rank >= Role.SUPERVISOR.rank]


def inbox_key(inbox_id: str | None, channel: str) -> str:
    """The key of the inbox a thread (of ``channel``, in ``inbox_id``) belongs to."""
    return inbox_id if inbox_id else f"{FIRST}{channel}"


def inbox_match(key: str) -> dict[str, Any]:
    """A filter on ``threads`` keeping one inbox's: an extra inbox's by its id, a first inbox's by
    no ``inbox_id`` (``$eq`` null matches a missing one) and its channel."""
    if key.startswith(FIRST):
        return {"inbox_id": {"$eq": None}, "channel": key[len(FIRST) :]}
    return {"inbox_id": key}


def thread_key(thread: Thread) -> str:
    return inbox_key(thread.inbox_id, thread.channel)


def member_keys(agent: Agent) -> frozenset[str] | None:
    """The inboxes whose conversations the agent sees; ``None``: every inbox of their account."""
    if agent.oversees or agent.inboxes is None:
        return None
    return frozenset(agent.inboxes)


def grant_of(agent: Agent) -> str:
    """What an open console was granted, to end it when that changes: the role, and the inboxes
    when they are not every inbox (``agent|first:webchat,inb_…``)."""
    keys = member_keys(agent)
    return str(agent.role) if keys is None else f"{agent.role}|{','.join(sorted(keys))}"


def thread_match(agent: Agent) -> dict[str, Any]:
    """A filter on ``threads`` (to merge with :func:`both`) that keeps the agent's inboxes' only:
    ``{}`` for those who see every inbox. The account is the caller's own condition."""
    keys = member_keys(agent)
    if keys is None:
        return {}
    ids = sorted(key for key in keys if not key.startswith(FIRST))
    channels = sorted(key[len(FIRST) :] for key in keys if key.startswith(FIRST))
    if not ids and not channels:
        return {"_id": {"$in": []}}  # a member of no inbox: nothing
    # "of one of ``ids``, or of no inbox and one of ``channels``": one list of alternatives, each
    # of plain equalities, in an ``$and`` (the embedded server joins a bare top-level ``$or`` to
    # the rest without brackets in ``find_one_and_update``). The repositories ask the embedded
    # server each alternative on its own (``filters.find_sorted``), which it answers from an index;
    # $eq null matches a missing inbox_id, as first inboxes' threads have
    of_ids = [{"inbox_id": {"$eq": inbox_id}} for inbox_id in ids]
    of_channels = [{"inbox_id": {"$eq": None}, "channel": {"$eq": channel}} for channel in channels]
    return {"$and": [{"$or": [*of_ids, *of_channels]}]}


def sees(agent: Agent, thread: Thread) -> bool:
    """Whether the agent may see ``thread`` (of their account, of one of their inboxes)."""
    if thread.account_id != agent.account_id:
        return False
    keys = member_keys(agent)
    return keys is None or thread_key(thread) in keys


def members_of(key: str) -> dict[str, Any]:
    """A filter on ``agents`` keeping those who see the inbox ``key``: its members, those of every
    inbox, and the roles that oversee the account (for an automatic assignment or a transfer)."""
    return {"$and": [{"$or": [{"inboxes": None}, {"inboxes": key}, {"role": {"$in": _OVERSEERS}}]}]}


def both(*matches: dict[str, Any]) -> dict[str, Any]:
    """Filters joined: their ``$and`` lists put together, their other conditions merged."""
    joined: dict[str, Any] = {}
    ands: list[Any] = []
    for match in matches:
        for name, value in match.items():
            if name == "$and":
                ands.extend(value)
            else:
                joined[name] = value
    if ands:
        joined["$and"] = ands
    return joined


def clean_keys(keys: Iterable[str], known: Iterable[str]) -> list[str]:
    """``keys`` as stored (sorted, once each); ``ValueError`` names the first that is not one of
    ``known`` (the account's inboxes: another account's inbox is refused)."""
    allowed = set(known)
    chosen = sorted(set(keys))
    for key in chosen:
        if key not in allowed:
            raise ValueError(f"no inbox {key!r} in this account")
    return chosen
