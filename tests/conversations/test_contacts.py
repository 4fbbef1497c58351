"""Contacts against the embedded server: found or created once however many messages race in,
one contact per phone number across channels, never shared between accounts."""

from __future__ import annotations

import asyncio

from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity
from tests import factories
from tests.factories import inbound, record


async def test_concurrent_first_contact_makes_one_contact_and_one_thread(store: Repositories) -> None:
    results = await asyncio.gather(*(record(store, inbound(f"m{i}", address="bob")) for i in range(12)))
    assert len({thread.id for _, thread, _ in results}) == 1
    assert await factories.contact_count(store, "acme") == 1
    assert len(await factories.threads(store, "acme")) == 1
    assert len(await factories.messages(store, "acme")) == 12


async def test_one_phone_number_on_two_channels_is_one_contact(store: Repositories) -> None:
    now = utcnow()
    wa = await store.contacts.find_or_create_contact(
        "acme", Identity("whatsapp", "37120000000"), "Anna", now, phone="+37120000000"
    )
    sms = await store.contacts.find_or_create_contact(
        "acme", Identity("sms", "+37120000000"), None, now, phone="+37120000000"
    )
    web = await store.contacts.find_or_create_contact("acme", Identity("webchat", "v1"), None, now)
    assert wa == sms != web
    contact = await store.contacts.get_contact(wa)
    assert contact is not None and set(contact.identities) == {
        Identity("whatsapp", "37120000000"),
        Identity("sms", "+37120000000"),
    }
    other_account = await store.contacts.find_or_create_contact(
        "other", Identity("sms", "+37120000000"), None, now, phone="+37120000000"
    )
    assert other_account != wa  # accounts never share contacts


async def test_first_messages_racing_in_on_two_channels_make_one_contact(store: Repositories) -> None:
    now = utcnow()
    ids = await asyncio.gather(
        *(
            store.contacts.find_or_create_contact(
                "acme", Identity(channel, f"{channel}-addr"), None, now, phone="+15550001"
            )
            for channel in ("whatsapp", "sms", "telegram") * 3
        )
    )
    assert len(set(ids)) == 1
    assert await factories.contact_count(store, "acme") == 1
