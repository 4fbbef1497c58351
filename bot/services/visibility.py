"""What search shows an agent of some inboxes (console and API alike): the messages of the
conversations of their inboxes, and the contacts with a conversation there."""

from __future__ import annotations

from conversations.agent_models import Agent
from conversations.membership import member_keys, sees
from conversations.repositories import Repositories
from conversations.thread_models import Contact, Message, Thread


async def seen_results(
    store: Repositories, agent: Agent, messages: list[Message], contacts: list[Contact]
) -> tuple[list[Message], list[Contact]]:
    """``messages`` and ``contacts`` found by a search, narrowed to what ``agent`` sees (all of
    them for those who see every inbox)."""
    if member_keys(agent) is None:
        return messages, contacts
    threads: dict[str, Thread | None] = {}
    for thread_id in sorted({m.thread_id for m in messages}):
        threads[thread_id] = await store.threads.get_thread(thread_id)
    shown = [m for m in messages if (thread := threads[m.thread_id]) is not None and sees(agent, thread)]
    kept = []
    for contact in contacts:
        if any(sees(agent, t) for t in await store.threads.contact_threads(agent.account_id, contact.id)):
            kept.append(contact)
    return shown, kept
