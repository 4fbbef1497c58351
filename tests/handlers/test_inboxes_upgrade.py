"""A store written by the release before inboxes, run by this one: the install's own channels
become the first account's first inboxes. ``tests/conversations/fixtures/inboxes_a58c2ba.json``
holds what a router of commit a58c2ba (the parent of 68f856a, which added inboxes) stored for the
install's own account: its agents (admin "boss", agents "ann" and "bob", no ``inboxes`` field)
and one conversation each on SMS, e-mail, Telegram and the web chat, each message taken through
that release's real webhook, SMTP listener or chat endpoint and answered with its queue notice.
The collections are as it wrote them (an e-mail's raw source as ``{"$bytes": hex}``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import SETTINGS, STORE
from conversations.embedded import EmbeddedMongo, free_port
from conversations.membership import thread_key
from conversations.models import from_epoch_ms
from conversations.repositories import Repositories
from tests.conftest import raw_database_of
from tests.fakes import reachable, running
from tests.fakes.telegram_api import FakeBotAPI
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, FakeTwilio, fixture, post_webhook
from tests.handlers.channels import channel_settings, post_telegram
from tests.handlers.channels import fixture as recorded
from tests.handlers.email.test_email import mail
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for
from tests.web.admin.inboxes_kit import SecureBrowser, article

RELEASE = json.loads((Path(__file__).parents[1] / "conversations" / "fixtures" / "inboxes_a58c2ba.json").read_text())
THREADS = {doc["channel"]: doc for doc in RELEASE["threads"]}
AGENTS = {doc["login"]: doc for doc in RELEASE["agents"]}
NUMBER, ADDRESS = "+14155550100", "support@shop.example"  # the install's own, as the release had them
CUSTOMER_TEXTS = {"sms": "Where is my order 1042?", "email": "Where is my parcel?"}


def as_stored(value: Any) -> Any:
    """A fixture value as the release wrote it (bytes back from their hex)."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {name: as_stored(item) for name, item in value.items()}
    if isinstance(value, list):
        return [as_stored(item) for item in value]
    return value


async def written_by_the_release(uri: str, database: str) -> None:
    """The release's documents in a fresh store, before this release has started on it."""
    raw = Repositories.connect(uri, database)
    try:
        for name, docs in RELEASE.items():
            if not name.startswith("_") and docs:
                await raw.client.database[name].insert_many([as_stored(doc) for doc in docs])
    finally:
        await raw.close()


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    async with running(fake):
        yield fake


@pytest.fixture
async def upgraded(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, twilio: FakeTwilio, sink: SmtpSink, start_client: Any
) -> TestClient:
    """This release started on the release's store, with the install's channels set as they were."""
    await written_by_the_release(embedded.uri, db_name)
    settings = channel_settings(
        embedded.uri,
        db_name,
        telegram_api=bot_api.url,
        telegram={"token": bot_api.token},
        egress=reachable([bot_api, twilio]),
        server={"public_url": PUBLIC_URL},
        twilio={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN, "api_base": twilio.url},
        sms={"from_number": NUMBER},
        email={
            "address": ADDRESS,
            "display_name": "Shop Support",
            "smtp_host": "127.0.0.1",
            "smtp_port": sink.port,
            "smtp_security": "none",
            "listen_port": free_port(),
        },
    )
    client: TestClient = await start_client(settings)
    return client


async def signed_in(client: TestClient, login: str) -> SecureBrowser:
    """The release's agent ``login`` in a browser of their own, with the password it was given."""
    browser = SecureBrowser(client)
    assert (await browser.log_in("default", login, f"{login}-password-1")).status == 303
    return browser


async def member_of(client: TestClient, login: str, *keys: str) -> None:
    """The agent narrowed to ``keys`` through the API, as an admin would."""
    response = await client.patch(f"/api/agents/{AGENTS[login]['_id']}", json={"inboxes": list(keys)})
    assert response.status == 200, await response.text()
    assert (await response.json())["inboxes"] == list(keys)


async def listed(browser: SecureBrowser) -> set[str]:
    """The release's conversations on the agent's console list of unassigned ones, by channel."""
    status, page = await browser.get("/console/conversations?view=unassigned")
    assert status == 200
    return {channel for channel, thread in THREADS.items() if thread["_id"] in page}


async def test_the_release_s_conversations_are_the_first_inboxes_of_their_channels(upgraded: TestClient) -> None:
    store = upgraded.server.app[STORE]
    for channel, doc in THREADS.items():
        thread = await store.threads.get_thread(doc["_id"])
        assert thread is not None and thread.inbox_id is None and thread_key(thread) == f"first:{channel}"
    ann, bob, boss = [await signed_in(upgraded, login) for login in ("ann", "bob", "boss")]
    try:
        # stored with no membership: every inbox, until an admin narrows it
        assert await listed(ann) == await listed(boss) == set(THREADS)
        await member_of(upgraded, "ann", "first:email")
        await member_of(upgraded, "bob", "first:sms")
        assert await listed(ann) == {"email"} and await listed(bob) == {"sms"}
        assert await listed(boss) == set(THREADS)
        for browser, own, other in ((ann, "email", "sms"), (bob, "sms", "email")):
            status, page = await browser.get(f"/console?thread={THREADS[own]['_id']}")
            assert status == 200 and CUSTOMER_TEXTS[own] in page
            status, page = await browser.get(f"/console?thread={THREADS[other]['_id']}")
            assert CUSTOMER_TEXTS[other] not in page  # as another account's: nothing of it shown
    finally:
        for browser in (ann, bob, boss):
            await browser.close()


async def test_a_customer_of_the_release_writing_again_continues_their_conversation(upgraded: TestClient) -> None:
    db = raw_database_of(upgraded.server.app[STORE])
    sms = fixture("sms", "inbound_text", MessageSid="SM" + "1" * 32, SmsSid="SM" + "1" * 32, Body="Any news?")
    assert (await post_webhook(upgraded, "/webhooks/sms", sms)).status == 200
    # the customer answers the release's e-mail notice (its Message-ID is the thread's last)
    notice = RELEASE["email_threads"][0]["last_message_id"]
    raw, _ = mail("Carol <carol@client.example>", "Re: Order 1042", "Any news?", in_reply_to=notice)
    port = upgraded.server.app[SETTINGS].named("email").listen_port
    errors, _ = await aiosmtplib.send(
        raw, sender="carol@client.example", recipients=[ADDRESS], hostname="127.0.0.1", port=port
    )
    assert errors == {}
    update = recorded("telegram", "text")
    update["update_id"] += 1
    update["message"] = {**update["message"], "message_id": 102, "text": "Any news?"}
    assert (await post_telegram(upgraded, update)).status == 200

    async def answered_in_place() -> bool:
        return await db.messages.count_documents({"direction": "in", "text": "Any news?"}) == 3

    await wait_for(answered_in_place, timeout=10)
    found = await db.messages.find({"direction": "in", "text": "Any news?"}).to_list()
    assert {doc["channel"]: doc["thread_id"] for doc in found} == {
        channel: THREADS[channel]["_id"] for channel in ("sms", "email", "telegram")
    }
    for channel in ("sms", "email", "telegram"):
        assert await db.threads.count_documents({"channel": channel}) == 1, channel


async def test_reports_count_the_release_s_conversations_under_the_first_inboxes(upgraded: TestClient) -> None:
    days = sorted({from_epoch_ms(doc["opened_at"]).date() for doc in RELEASE["threads"]})
    since, until = days[0].isoformat(), days[-1].isoformat()
    boss, ann = await signed_in(upgraded, "boss"), await signed_in(upgraded, "ann")
    try:
        status, csv = await boss.get(f"/admin/reports.csv?from={since}&until={until}")
        assert status == 200 and "conversations_by_channel,sms,count,1" in csv.splitlines()
        # once the account has an extra inbox, the report counts by inbox: the release's under the first
        added = await upgraded.post(
            "/api/accounts/default/inboxes", json={"channel": "webchat", "name": "Wholesale chat", "settings": {}}
        )
        assert added.status == 201, await added.text()
        status, csv = await boss.get(f"/admin/reports.csv?from={since}&until={until}")
        rows = [row for row in csv.splitlines() if row.startswith("conversations_by_inbox,")]
        named = {row.split(",")[1].split(":")[0]: row for row in rows}  # each first inbox named as such
        assert len(rows) == len(THREADS) and sorted(named) == sorted(THREADS)
        assert all(row.endswith(" (first inbox),count,1") for row in rows), rows
        status, page = await boss.get(f"/admin/reports?from={since}&until={until}")
        assert status == 200 and 'id="by-inbox"' in page
        status, _ = await ann.get(f"/admin/reports.csv?from={since}&until={until}")
        assert status == 403  # an agent reads no reports
    finally:
        await boss.close()
        await ann.close()


async def test_the_inboxes_page_lists_the_install_s_number_and_mailbox(upgraded: TestClient) -> None:
    boss = await signed_in(upgraded, "boss")
    try:
        status, page = await boss.get("/admin/inboxes")
        assert status == 200
        assert NUMBER in article(page, "sms") and ADDRESS in article(page, "email")
        assert "First inbox" in article(page, "telegram") and "First inbox" in article(page, "webchat")
        status, page = await boss.get("/admin")
        assert status == 200 and 'value="first:sms"' in page and 'value="first:email"' in page
    finally:
        await boss.close()
