"""Personal data end to end: customers reach the router over SMS, MMS, calls, Telegram (merged
by phone number) and e-mail; agents answer, note and label; then one customer's data is exported
and erased. Completeness is checked generically: every collection in the database is searched
for the customers' identifiers and texts, so data a later feature stores without registering a
personal-data holder fails these tests."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import bson
import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.adapter import EmailAdapter
from bot.keys import ADAPTERS, PIPELINE, QUEUE, SHIFTS, STORE
from bot.services.agents import add_agent
from bot.services.contacts import erase_contact, export_contact, find_contact
from bot.services.reports import build_report
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.personal_data import covered_collections, keyed_holder, register_holder, unregister_holder
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.fakes.twilio import FakeTwilio, fixture, post_webhook
from tests.handlers.email.test_email import mail
from tests.handlers.sms.test_sms import sms_settings
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for

ANNA, CARL = "+14155550123", "+14155550177"
MEDIA_ID = "ME0a1b2c3d4e5f60718293a4b5c6d7e8f9"
CALL_SID = "CA6f5e4d3c2b1a09f8e7d6c5b4a3928170"
LONG_REPLY = "Dear Anna, " + "we are looking into parcel 58211 with the courier right now. " * 3


@dataclass
class World:
    client: TestClient
    store: Repositories
    raw: Any  # the database as the driver sees it: every collection is searched for leftovers
    anna: str = ""  # contact ids
    bob: str = ""
    carl: str = ""
    needles: dict[str, list[str]] = field(default_factory=dict)  # who -> what must not survive


async def _sms(client: TestClient, sid: str, sender: str, body: str, kind: str = "inbound_text") -> None:
    params = fixture("sms", kind, From=sender, Body=body, MessageSid=sid, SmsSid=sid, SmsMessageSid=sid)
    assert (await post_webhook(client, "/webhooks/sms", params)).status == 200


async def _telegram(client: TestClient, n: int, text: str, phone: str | None = None) -> None:
    _, task = await client.server.app[PIPELINE].receive(
        Inbound(
            account_id="default",
            channel="telegram",
            external_id=f"777001:{n}",
            sender=Identity("telegram", "777001"),
            text=text,
            sender_name="Anna Bērziņa",
            phone=phone,
        )
    )
    if task is not None:
        await task


async def _populate(client: TestClient, raw: Any, twilio: FakeTwilio, sink: SmtpSink) -> World:
    app = client.server.app
    store, queue = app[STORE], app[QUEUE]
    world = World(client, store, raw)
    await _telegram(client, 1, "Telegram hello from Anna")  # a contact of her own, for now
    await store.messages.apply_edit(
        Inbound("default", "telegram", "777001:1", Identity("telegram", "777001"), "Telegram hello, edited by Anna"),
        utcnow(),
    )
    await _sms(client, "SManna0000000000000000000000000001", ANNA, "Hi, Anna Bērziņa here: parcel 58211 is missing")
    await _sms(client, "MManna0000000000000000000000000002", ANNA, "Photos of the damaged box", "inbound_mms")
    assert (await post_webhook(client, "/webhooks/voice", fixture("voice", "status_no_answer_inbound"))).status == 200
    await _telegram(client, 2, "My number is in my Telegram contact", phone=ANNA)  # merges the two contacts
    await _sms(client, "SMcarl0000000000000000000000000003", CARL, "Carl asks about invoice 9931")
    raw, bob_message_id = mail(
        "Bob Builder <bob@client.example>", "Invoice question from Bob Builder", "Bob's secret body text"
    )
    adapter = app[ADAPTERS]["email"]
    assert isinstance(adapter, EmailAdapter)
    await adapter.ingest(raw)

    admin, _ = await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN)
    assert admin is not None
    await app[SHIFTS].start(admin)
    world.anna = (await find_contact(store, "default", f"sms:{ANNA}")).contact_id
    world.bob = (await find_contact(store, "default", "bob@client.example")).contact_id
    world.carl = (await find_contact(store, "default", CARL)).contact_id
    threads = {t.contact_id + t.channel: t.id for t in await store.queue.queued_threads("default")}
    for key, reply in (
        (world.anna + "sms", LONG_REPLY),
        (world.bob + "email", "Dear Bob, the invoice is fine"),
        (world.carl + "sms", "Hello Carl"),
    ):
        await queue.take(admin, threads[key])
        await app[SERVICES].replies.answer(threads[key], admin, reply, f"nonce-{key[-12:]}")
    anna_thread = threads[world.anna + "sms"]
    await queue.note(anna_thread, admin, "Anna Bērziņa called twice about parcel 58211")
    await queue.set_labels(anna_thread, admin, ["vip"])
    await queue.note(threads[world.carl + "sms"], admin, "Carl is fine")
    await wait_for(lambda: _sent(twilio, sink), timeout=10)
    await _sms(client, "SManna0000000000000000000000000004", ANNA, "STOP")
    scope = await find_contact(store, "default", world.anna)
    world.needles = {
        "anna": [
            ANNA,
            ANNA[2:],
            "777001",
            "Bērziņa",
            "58211",
            "Telegram hello",
            "Photos of the damaged box",
            MEDIA_ID,
            CALL_SID,
            "Dear Anna",
            "SManna",
            "MManna",
            *scope.contact_ids,
        ],
        "bob": ["bob@client.example", "Bob Builder", "Bob's secret", bob_message_id, "Dear Bob", world.bob],
        "carl": [CARL, "invoice 9931", "Hello Carl", "Carl is fine", world.carl],
    }
    assert len(scope.contact_ids) == 2  # the Telegram contact was merged into the SMS one
    return world


async def _sent(twilio: FakeTwilio, sink: SmtpSink) -> bool:
    return len(twilio.bodies_to(ANNA)) >= 3 and len(twilio.bodies_to(CARL)) >= 1 and len(sink.received) >= 1


@pytest.fixture
async def world(embedded: EmbeddedMongo, db_name: str, start_client: Any, raw_database: Any) -> AsyncIterator[World]:
    twilio, sink = FakeTwilio(), SmtpSink()
    await twilio.start()
    await sink.start()
    settings = sms_settings(
        embedded.uri,
        db_name,
        twilio.url,
        voice={"enabled": True},
        sms={"max_segments": 1},
        email={
            "address": "support@shop.example",
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_security": "none",
        },
    )
    try:
        yield await _populate(await start_client(settings), raw_database, twilio, sink)
    finally:
        await sink.stop()
        await twilio.stop()


def _forms(needle: str) -> list[bytes]:
    """How a needle can appear in a stored document: as UTF-8, or escaped inside JSON text."""
    return [needle.encode(), json.dumps(needle)[1:-1].encode()]


async def everything(raw: Any) -> dict[tuple[str, str], bytes]:
    """Every document of every collection in the database, as BSON: (collection, id) -> bytes."""
    docs = {}
    for name in await raw.list_collection_names():
        async for doc in raw[name].find({}):
            docs[(name, str(doc["_id"]))] = bson.encode(doc)
    return docs


def holding(docs: dict[tuple[str, str], bytes], needles: list[str]) -> dict[tuple[str, str], list[str]]:
    """The documents that contain any of ``needles``, with the needles found."""
    found = {}
    for key, raw in docs.items():
        hits = [n for n in needles if any(form in raw for form in _forms(n))]
        if hits:
            found[key] = hits
    return found


async def test_every_collection_is_declared_a_holder_or_not_personal(world: World) -> None:
    # the embedded server lists a GridFS bucket's collections as <bucket>_files and <bucket>_chunks
    listed = await world.raw.list_collection_names()
    names = {re.sub(r"^(files)_(files|chunks)$", r"\1.\2", name) for name in listed}
    assert {"messages", "email_sources", "consent", "sms_parts", "timeline", "audit"} <= names  # the flows ran
    assert names - set(covered_collections()) == set()


async def test_the_export_holds_every_document_that_mentions_the_contact(world: World) -> None:
    before = await everything(world.raw)
    for who, contact_id in (("anna", world.anna), ("bob", world.bob)):
        document = await export_contact(world.store, await find_contact(world.store, "default", contact_id), "cli")
        text = json.dumps(document, ensure_ascii=False)
        mentioning = holding(before, world.needles[who])
        assert {name for name, _ in mentioning} >= {
            "contacts",
            "identities",
            "threads",
            "messages",  # with the replies' send state
            "timeline",
        }
        missing = [key for key in mentioning if f'"id": "{key[1]}"' not in text]
        assert missing == [], f"{who}'s export lacks {missing}"
        assert world.needles["carl"][1] not in text  # nobody else's data
    anna = await export_contact(world.store, await find_contact(world.store, "default", world.anna), "cli")
    data = anna["data"]
    assert anna["format"] == "omnirouter.contact-export/1" and anna["contact"]["id"] == world.anna
    assert sorted(anna["identities"]) == sorted([f"sms:{ANNA}", f"phone:{ANNA}", "telegram:777001", f"voice:{ANNA}"])
    assert [c["meta"]["call"]["status"] for c in anna["calls"]] == ["no-answer"]
    assert len(anna["attachments"]) == 2 and anna["attachments"][0]["mime_type"] == "image/jpeg"
    assert [e["text"] for m in data["messages"] for e in m.get("edits", [])] == ["Telegram hello from Anna"]
    assert any(n["text"].startswith("Anna Bērziņa called") for n in data["timeline"])
    assert [c["state"] for c in data["consent"]] == ["stop"] and data["sms_parts"]
    assert next(m["created_at"][:4] for m in data["messages"]).isdigit()  # times as ISO 8601
    assert {e["action"] for e in data["audit"]} >= {"contact.export", "thread.take", "thread.reply"}


async def test_erasure_leaves_nothing_of_the_contact_anywhere(world: World) -> None:
    store = world.store
    carl_before = holding(await everything(world.raw), world.needles["carl"])
    today = utcnow().date()
    report_before = await build_report(store, "default", today, today, first_response_minutes=15, now=utcnow())
    await export_contact(store, await find_contact(store, "default", world.anna), "cli")  # audited under her id
    admin = await store.agents.agent_by_login("default", "ada")
    assert admin is not None and admin.load == 3

    receipts = []
    for contact_id in (world.anna, world.bob):
        result = await erase_contact(store, await find_contact(store, "default", contact_id), admin)
        assert result.counts["messages"] > 0 and result.counts["threads"] > 0
        receipts.append(result.receipt)

    after = await everything(world.raw)
    leaks = holding(after, world.needles["anna"] + world.needles["bob"])
    assert leaks == {}, f"personal data left behind: {leaks}"
    carl_after = holding(after, world.needles["carl"])
    assert carl_after.keys() == carl_before.keys()  # the other customer's data is untouched
    assert all(after[key] == raw for key, raw in (await _raw(world.raw, carl_before)).items() if key[0] != "threads")
    erasures = await factories.audit(store, action="contact.erase")
    assert [e.target for e in erasures] == receipts and erasures[0].details["erased_messages"] >= 5
    exports = await factories.audit(store, action="contact.export")
    assert [e.target for e in exports].count(receipts[0]) == 1
    refreshed = await store.agents.get_agent(admin.id)
    assert refreshed is not None and refreshed.load == 1  # her and Bob's open conversations were closed
    report_after = await build_report(store, "default", today, today, first_response_minutes=15, now=utcnow())
    assert (report_after.total, report_after.escalated) == (report_before.total, report_before.escalated)
    assert await store.contacts.contact_by_identity("default", "sms", ANNA) is None


async def _raw(raw: Any, keys: dict[tuple[str, str], Any]) -> dict[tuple[str, str], bytes]:
    docs = {}
    for name, doc_id in keys:
        doc = await raw[name].find_one({"_id": doc_id})
        assert doc is not None, (name, doc_id)
        docs[(name, doc_id)] = bson.encode(doc)
    return docs


async def test_the_customer_writing_again_after_an_erasure_is_a_new_contact(world: World) -> None:
    store = world.store
    await erase_contact(store, await find_contact(store, "default", world.anna), "cli")
    await _sms(world.client, "SManna0000000000000000000000000005", ANNA, "Hello again")
    again = await find_contact(store, "default", f"sms:{ANNA}")
    assert again.contact_ids == (again.contact_id,) and len(again.thread_ids) == 1
    assert again.texts[0] == "Hello again" and not any("58211" in text for text in again.texts)
    # STOP was erased with her: she is told she is queued, like any new customer
    assert again.texts[1].startswith("Thanks for your message")


async def test_a_holder_registered_later_is_exported_and_erased(world: World) -> None:
    """How the NLU layer plugs in: training examples taken from a contact's messages."""
    store = world.store
    scope = await find_contact(store, "default", world.anna)
    await world.raw.plugin_examples.insert_many(
        [  # a plugin's own collection
            {
                "_id": f"ex{n}",
                "account_id": "default",
                "message_id": message_id,
                "text": "Telegram hello, from a training example",
            }
            for n, message_id in enumerate(scope.message_ids[:2])
        ]
    )
    assert "plugin_examples" not in covered_collections()
    register_holder(keyed_holder("plugin_examples", "plugin_examples", "message_id", lambda s: s.message_ids))
    try:
        document = await export_contact(store, scope, "cli")
        assert [d["id"] for d in document["data"]["plugin_examples"]] == ["ex0", "ex1"]
        await erase_contact(store, scope, "cli")
        assert await world.raw.plugin_examples.count_documents({}) == 0
    finally:
        unregister_holder("plugin_examples")


async def test_an_unregistered_store_of_personal_data_is_caught(world: World) -> None:
    """The completeness check itself: a collection nobody registered keeps data after an erasure."""
    store = world.store
    await world.raw.mystery_cache.insert_one({"_id": "m1", "who": ANNA})
    await erase_contact(store, await find_contact(store, "default", world.anna), "cli")
    assert list(holding(await everything(world.raw), world.needles["anna"])) == [("mystery_cache", "m1")]
    assert "mystery_cache" not in covered_collections()


async def test_unknown_contacts_are_reported(world: World) -> None:
    for ref in ("con_000000000000000000000000", "sms:+10000000000", "nobody@example.com", ""):
        with pytest.raises(LookupError, match="no contact"):
            await find_contact(world.store, "default", ref)
    with pytest.raises(LookupError):  # another account's contact is not found from this one
        await find_contact(world.store, "other", world.anna)


async def test_another_accounts_records_that_name_the_contact_stay_out_of_it(world: World) -> None:
    """Every holder looks in the contact's own account only: another account's records that name
    her contact, thread or message ids (an NLU example filed under her message id, or a copy of
    any of her records) are neither exported nor erased with her."""
    store = world.store
    scope = await find_contact(store, "default", world.anna)
    copies: dict[tuple[str, str], dict[str, Any]] = {}
    for name, doc_id in holding(await everything(world.raw), world.needles["anna"]):
        if name == "sms_parts":  # no account: written by our own sends, for our own messages only
            continue
        doc = await world.raw[name].find_one({"_id": doc_id})
        assert doc is not None
        doc.pop("open_key", None)  # unique among open threads
        doc["_id"] = f"other|copy-{doc_id}" if name == "email_keys" else f"copy-{doc_id}"
        if name != "email_keys":  # e-mail thread keys carry their account in their id
            doc["account_id"] = "other"
        copies[(name, doc["_id"])] = doc
    copies[("nlu_examples", "copy-example")] = {
        "_id": "copy-example",
        "account_id": "other",
        "intent": "greet",
        "text": "filed under her message",
        "message_id": scope.message_ids[0],
    }
    # an e-mail thread key names its account in its id only: another account's naming her
    # contact and thread stays, hers (beside it, same fields) goes
    copies[("email_keys", "other|copy-key")] = {
        "_id": "other|copy-key",
        "contact_id": scope.contact_id,
        "thread_id": scope.thread_ids[0],
    }
    await world.raw.email_keys.insert_one({"_id": "default|her-key", "contact_id": scope.contact_id})
    copies[("audit", "copy-audit")] = {
        "_id": "copy-audit",
        "account_id": "other",
        "action": "contact.export",
        "target": scope.contact_id,
        "actor": "cli",
        "at": 0,
    }
    for (name, _), doc in copies.items():
        await world.raw[name].insert_one(doc)
    assert {name for name, _ in copies} >= {
        "contacts",
        "identities",
        "threads",
        "messages",  # with the replies' send state
        "timeline",
        "audit",
    }

    document = json.dumps(await export_contact(store, scope, "cli"), ensure_ascii=False)
    assert "copy-" not in document
    assert "default|her-key" in document
    await erase_contact(store, scope, "cli")
    for (name, doc_id), doc in copies.items():
        assert await world.raw[name].find_one({"_id": doc_id}) == doc, (name, doc_id)
    assert await world.raw.email_keys.find_one({"_id": "default|her-key"}) is None
