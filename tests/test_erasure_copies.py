"""Erasure leaves no copies: not in the NLU models trained on the customer's messages, not in the
embedded store's files (SQLite's write-ahead log, freed pages), not in the router's logs.

A customer with a phone number and an e-mail address writes on SMS, Telegram (merged by the
number) and e-mail; two of the messages are learned as NLU examples and trained into the active
model; then ``omnirouter contact erase`` runs as users run it. Afterwards every file of the
store's own data directory is searched for the number, the address and the text, the stored
model blobs for their n-grams, and the bot must still answer."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.email.adapter import EmailAdapter
from bot.keys import ADAPTERS, PIPELINE, SETTINGS, STORE
from bot.nlu.model import NluModel
from bot.services.contacts import erase_contact, find_contact
from bot.web.api.kit import issue_token
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity, Inbound
from tests import factories
from tests.cli.test_contacts import run
from tests.conftest import raw_database_of
from tests.fakes.twilio import FakeTwilio, fixture, post_webhook
from tests.handlers.email.test_email import mail
from tests.handlers.sms.test_sms import sms_settings
from tests.mailservers import SmtpSink
from tests.nlu.test_versions import DATA
from tests.router.test_inbound import wait_for

PHONE, EMAIL, PLACE = "+37120000417", "anna.kalnina@pasts.example", "Zvejniekciems"
NEEDLES = [PHONE, PHONE[1:], EMAIL, "kalnina", PLACE]
SMS_TEXT = f"My parcel to {PLACE} never came. Call me on {PHONE} or write to {EMAIL}"
TELEGRAM_TEXT = f"Still waiting in {PLACE}, the courier never called {PHONE}"
# what the customer's examples add to a model's vocabulary: words and character 5-grams
GRAMS = {"word": ["zvejniekciems", "37120000417", "kalnina", "pasts"], "char": ["zvejn", "37120", "kalni"]}


@dataclass
class Shop:
    client: TestClient
    store: Repositories
    data_dir: Path
    headers: dict[str, str]


@pytest.fixture
async def shop(own_store: EmbeddedMongo, start_client: Any, tmp_path: Path) -> AsyncIterator[Shop]:
    (tmp_path / "nlu").mkdir()
    (tmp_path / "nlu" / "en.yml").write_text(DATA)
    twilio, sink = FakeTwilio(), SmtpSink()
    await twilio.start()
    await sink.start()
    settings = sms_settings(
        own_store.uri,
        "omnirouter",
        twilio.url,
        nlu={"semantic": False, "data": str(tmp_path / "nlu")},
        email={
            "address": "support@shop.example",
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_security": "none",
        },
    )
    client = await start_client(settings)
    store = client.server.app[STORE]
    token = await issue_token(store, "default", "tests", ["read", "write"], "test")
    try:
        yield Shop(client, store, own_store.data_dir, {"Authorization": f"Bearer {token}"})
    finally:
        await sink.stop()
        await twilio.stop()


async def _train(shop: Shop, activate: bool = True) -> str:
    started = await shop.client.post("/api/nlu/train", json={"activate": activate}, headers=shop.headers)
    assert started.status == 202, await started.text()
    url = (await started.json())["url"]
    async with asyncio.timeout(60):
        while (job := await (await shop.client.get(url, headers=shop.headers)).json())["state"] == "running":
            await asyncio.sleep(0.05)
    assert job["state"] == "done", job
    return str(job["version"])


async def _customer_writes_everywhere(shop: Shop) -> list[str]:
    """SMS, Telegram sharing the phone number (one contact), and an e-mail merged into it;
    returns the ids of the SMS and the Telegram message."""
    app = shop.client.server.app
    params = fixture("sms", "inbound_text", From=PHONE, Body=SMS_TEXT, MessageSid="SM" + "7" * 32)
    assert (await post_webhook(shop.client, "/webhooks/sms", params)).status == 200
    recorded, task = await app[PIPELINE].receive(
        Inbound(
            account_id="default",
            channel="telegram",
            external_id="990417:1",
            sender=Identity("telegram", "990417"),
            text=TELEGRAM_TEXT,
            sender_name="Anna Kalnina",
            phone=PHONE,
        )
    )
    if task is not None:
        await task
    adapter = app[ADAPTERS]["email"]
    assert isinstance(adapter, EmailAdapter)
    await adapter.ingest(mail(f"Anna Kalnina <{EMAIL}>", f"Parcel for {PLACE}", f"No news in {PLACE}. {PHONE}")[0])
    anna = await find_contact(shop.store, "default", f"sms:{PHONE}")
    by_mail = await find_contact(shop.store, "default", f"email:{EMAIL}")
    await shop.store.contacts.merge_contacts(anna.contact_id, by_mail.contact_id, utcnow())
    [sms] = [m for m in await factories.messages(shop.store) if m.text == SMS_TEXT]
    return [sms.id, str(recorded.message.id)]


async def _vocabulary(store: Repositories, version: str) -> dict[str, set[str]]:
    blob = await store.nlu.nlu_model_blob(version)
    assert blob is not None, f"no blob of {version}"
    return {space.analyzer: set(space.vocabulary) for space in NluModel.from_bytes(blob).lexical.spaces}


def _holds(vocabulary: dict[str, set[str]]) -> list[str]:
    return [gram for analyzer, grams in GRAMS.items() for gram in grams if gram in vocabulary[analyzer]]


def _forms(needle: str) -> tuple[list[bytes], list[bytes]]:
    """How a needle can sit in a file: as text (any case; JSON escapes nothing in these), or inside
    base64 (binary values such as an e-mail's source) at any of the three alignments."""
    raw = needle.encode()
    encoded = []
    for pad in range(3):
        text = base64.b64encode(b"\0" * pad + raw)
        encoded.append(text[-(-pad // 3) * 4 : (pad + len(raw)) // 3 * 4])
    return [raw.lower()], [form for form in encoded if len(form) >= 8]


def files_holding(data_dir: Path, needles: list[str]) -> dict[str, list[str]]:
    """Every file under ``data_dir`` (database, -wal, -shm, logs…) with the needles it holds."""
    found: dict[str, list[str]] = {}
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        lower = data.lower()
        for needle in needles:
            plain, encoded = _forms(needle)
            if any(form in lower for form in plain) or any(form in data for form in encoded):
                found.setdefault(path.name, []).append(needle)
    return found


def _logged(records: list[logging.LogRecord]) -> list[str]:
    """The router's log lines at INFO or above that mention a needle (with their structured
    fields); the tests' own mail server logs what it receives, as mail servers do."""
    lines = [
        f"{r.name}: {r.getMessage()} {getattr(r, 'omnirouter_fields', '')}"
        for r in records
        if r.levelno >= logging.INFO and r.name.startswith(("omnirouter", "aiohttp", "aiogram", "pywa", "twilio"))
    ]
    return [line for line in lines if any(n.lower() in line.lower() for n in NEEDLES)]


async def test_erasure_leaves_no_copy_in_models_store_files_or_logs(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = shop.store
    starter = await _train(shop)  # the starter files alone
    learned = await _customer_writes_everywhere(shop)
    for message_id in learned:
        taught = await shop.client.post(
            f"/api/nlu/review/{message_id}", json={"intent": "delivery"}, headers=shop.headers
        )
        assert taught.status == 200, await taught.text()
    trained = await _train(shop)
    spare = await _train(shop, activate=False)
    assert _holds(await _vocabulary(store, trained)) == GRAMS["word"] + GRAMS["char"]  # the model has her words
    assert files_holding(shop.data_dir, NEEDLES)  # and the store's files her data (the search works)

    code, out, err = await run(shop.client.server.app[SETTINGS], "contact", "erase", f"sms:{PHONE}", "--yes")
    assert code == 0, err
    assert await store.nlu.active_nlu_version("default") not in (trained, spare), "the erased words still answer"
    for version in (trained, spare):
        doc = await store.nlu.get_nlu_model(version)
        assert doc is not None and doc["retired_by"].startswith("era_") and doc.get("retired_at")
        assert await store.nlu.nlu_model_blob(version) is None  # its chunks are gone
    assert (await store.nlu.get_nlu_model(starter) or {}).get("retired_at") is None  # the starter files' model stays

    async def retrained() -> bool:
        return (await store.nlu.active_nlu_version("default")) not in (None, starter, trained, spare)

    await wait_for(retrained, timeout=60)
    active = await store.nlu.active_nlu_version("default")
    assert active is not None and _holds(await _vocabulary(store, active)) == []

    async def answers() -> bool:  # the bot answers with the new model
        reply = await shop.client.post("/api/nlu/parse", json={"text": "do you deliver"}, headers=shop.headers)
        parsed = await reply.json()
        return reply.status == 200 and parsed["model_version"] == active and parsed["intent"] == "delivery"

    await wait_for(answers, timeout=10)

    assert files_holding(shop.data_dir, NEEDLES) == {}
    assert _logged(caplog.records) == []
    assert not any(n.lower() in (out + err).lower() for n in NEEDLES)
    receipt = out.split("receipt ")[1].split(" ")[0]
    assert "2 model version(s) trained on their messages retired" in out and trained in out and spare in out
    assert f"{trained} was the active version: version {starter} answers now; retraining job-" in out
    assert "write-ahead log was checkpointed and truncated" in out
    [entry] = [e for e in await factories.audit(store, action="contact.erase") if e.target == receipt]
    assert entry.details["retired_models"] == 2 and entry.details["store_checkpointed"]


async def test_erasure_truncates_the_write_ahead_log(shop: Shop) -> None:
    """Without any NLU: the deleted rows' copies in the -wal file and in freed pages are gone."""
    await _customer_writes_everywhere(shop)
    assert files_holding(shop.data_dir, NEEDLES)
    result = await erase_contact(shop.store, await find_contact(shop.store, "default", f"sms:{PHONE}"), "cli")
    assert files_holding(shop.data_dir, NEEDLES) == {}
    assert result.store_checkpointed
    wal = shop.data_dir / "omnirouter.db-wal"
    assert not wal.exists() or wal.stat().st_size < 200_000  # truncated, then only the audit entry


async def test_every_connection_of_the_embedded_store_deletes_securely(shop: Shop) -> None:
    """SQLite's ``secure_delete`` on the store's connections, as the server reports it. Debian
    builds SQLite with it on by default, so this alone cannot tell the child's setting from the
    default: ``test_every_connection_neosqlite_opens_deletes_securely_and_is_the_owners_alone``
    (tests/conversations/test_embedded.py) switches it off first."""
    for name in ("omnirouter", "another_database"):
        reply = await raw_database_of(shop.store).client[name].command({"secure_delete": 1})  # the server's own
        assert reply["result"] == [{"secure_delete": 1}]
