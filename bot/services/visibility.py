"""What search shows an agent of some inboxes (console and API alike): the messages of the
conversations of their inboxes, and the contacts with a conversation there.

Messages carry no inbox, so results are read as anyone's and narrowed by their thread: for an agent
of some inboxes the search reads further pages (at most ``WIDEN`` times the results shown) until
the page they see is full, so results of other inboxes do not crowd theirs out."""

from __future__ import annotations

import asyncio

from conversations.agent_models import Agent
from conversations.membership import member_keys, sees
from conversations.repositories import Repositories
from conversations.thread_models import Contact, Message, Thread

MESSAGES = 50  # messages shown for one search
CONTACTS = 20  # contacts shown for one search
WIDEN = 10  # an agent of some inboxes: results read to fill their page, at most this many times it


async def search_seen(
    store: Repositories, account_id: str, agent: Agent | None, query: str
) -> tuple[list[Message], list[Contact]]:
    """The account's messages and contacts matching ``query``, newest first, narrowed to what
    ``agent`` sees (``None``, or an agent who sees every inbox: all of them)."""
    if agent is None or member_keys(agent) is None:
        return (
            await store.messages.search_messages(account_id, query, MESSAGES),
            await store.contacts.search_contacts(account_id, query, CONTACTS),
        )
    threads: dict[str, Thread | None] = {}
    shown: list[Message] = []
    for page in range(WIDEN):
        batch = await store.messages.search_messages(account_id, query, MESSAGES, skip=page * MESSAGES)
        unread = sorted({m.thread_id for m in batch} - threads.keys())
        # read at once, so the store's batcher makes one command of them
        threads.update(zip(unread, await asyncio.gather(*map(store.threads.get_thread, unread))))
        shown += [m for m in batch if (thread := threads[m.thread_id]) is not None and sees(agent, thread)]
        if len(shown) >= MESSAGES or len(batch) < MESSAGES:
            break
    contacts = await store.contacts.search_contacts(account_id, query, CONTACTS * WIDEN)
    theirs = await asyncio.gather(*(store.threads.contact_threads(account_id, c.id) for c in contacts))
    kept = [c for c, held in zip(contacts, theirs) if any(sees(agent, t) for t in held)][:CONTACTS]
    return shown[:MESSAGES], kept
