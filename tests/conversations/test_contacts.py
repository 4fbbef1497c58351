"""Contacts against the embedded server: found or created once however many messages race in,
one contact per phone number across channels, never shared between accounts."""

from __future__ import annotations

import asyncio
from typing import Any

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


async def test_contacts_are_found_by_name_and_address_words_within_their_account_only(
    store: Repositories, raw_database: Any
) -> None:
    now = utcnow()
    marta = await store.contacts.find_or_create_contact(
        "acme", Identity("email", "marta.k@example.com"), "Marta Kalniņa", now
    )
    ivan = await store.contacts.find_or_create_contact(
        "acme", Identity("sms", "+37120000417"), None, now, phone="+37120000417"
    )
    rival = await store.contacts.find_or_create_contact("rival", Identity("email", "marta@example.com"), "Marta", now)

    async def found(account: str, text: str) -> list[str]:
        return [c.id for c in await store.contacts.search_contacts(account, text)]

    assert await found("acme", "kalnina") == [marta]  # diacritics folded
    assert await found("acme", "marta kal") == [marta]  # every word, the last a beginning
    assert await found("acme", "example.com") == [marta]  # an e-mail address by its domain
    assert await found("acme", "marta.k@exa") == [marta]  # an address being typed
    assert await found("acme", "20000417") == [ivan]  # a phone number without its country code
    assert await found("rival", "marta") == [rival]
    assert await found("acme", "marta ivan") == []
    assert await found("acme", " ,, ") == []

    await store.contacts.update_contact("acme", ivan, now, name="Ivans Bērziņš")
    assert await found("acme", "berzins") == [ivan]  # a renamed contact by its new name

    # contacts and links stored by the last release (no search_text) are found after the start-up
    await raw_database.contacts.update_many({}, {"$unset": {"search_text": ""}})
    await raw_database.identities.update_many({}, {"$unset": {"search_text": ""}})
    assert await found("acme", "kalnina") == []
    await store.ensure_indexes()
    assert await found("acme", "kalnina") == [marta]
    assert await found("acme", "+37120000417") == [ivan]
