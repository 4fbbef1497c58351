"""Mailboxes on the console's inboxes page (issue 17): an account's admin adds a mailbox (its address
and SMTP server), sees how its mail comes in and whether its password is set (never its value), and
mail to the address then lands in the account's inbox. A server the egress guard refuses is a form
error (400); an address another inbox, or the install itself, receives is refused in words (409);
another account's admin gets 404s."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest

from bot.handlers.email.settings import EmailSettings
from bot.keys import SETTINGS, STORE
from conversations.embedded import free_port
from conversations.models import utcnow
from tests.conftest import make_settings, raw_database_of
from tests.fakes.dns_server import FakeDns
from tests.handlers.email.test_email import mail
from tests.mailservers import SmtpSink
from tests.router.test_inbound import wait_for
from tests.web.admin.inboxes_kit import PASSWORD, SecureBrowser, add_inbox, article, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

ADDRESS = "sales@corner.example"
SMTP_PASSWORD = "smtp-password-of-the-corner-shop"


@pytest.fixture
async def admin(
    embedded: Any, db_name: str, start_client: Any, sink: SmtpSink, dns_server: FakeDns
) -> AsyncIterator[Browser]:
    email = {
        "address": "support@shop.example",
        "listen_port": free_port(),
        "poll_interval": 0.2,
        "dns_servers": dns_server.address,
    }
    egress = {"allowed_destinations": f"127.0.0.1:{sink.port}"}
    settings = make_settings(embedded.uri, db_name, email=email, egress=egress)
    browser = await signed_in(await two_accounts(await start_client(settings)))
    yield browser
    await browser.close()


def _mailbox(sink: SmtpSink, name: str = "Sales", address: str = ADDRESS, **changes: str) -> dict[str, str]:
    form = {
        "channel": "email",
        "name": name,
        "address": address,
        "display_name": "Corner Shop Sales",
        "smtp_host": "127.0.0.1",
        "smtp_port": str(sink.port),
        "smtp_security": "none",
        "smtp_password": SMTP_PASSWORD,
    }
    return {**form, **changes}


async def test_an_admin_adds_a_mailbox_and_mail_to_it_lands_in_the_account(
    admin: Browser, sink: SmtpSink, dns_server: FakeDns
) -> None:
    page = (await admin.get("/admin/inboxes"))[1]
    assert 'id="add-email"' in page and "Add a mailbox (e-mail)" in page
    inbox_id = await add_inbox(admin, _mailbox(sink))
    page = (await admin.get("/admin/inboxes"))[1]
    row = article(page, inbox_id)
    assert "Sales" in row and ADDRESS in row and 'class="muted mail-path"' in row
    assert "webhook-url" not in row and "send-test" in row and 'class="check"' in row  # no webhook; Check, a test
    assert re.search(r'data-field="smtp_password">✓ set', row) and SMTP_PASSWORD not in page
    store = admin.app[STORE]  # type: ignore[attr-defined]
    assert SMTP_PASSWORD not in str(await raw_database_of(store).inboxes.find_one({"_id": inbox_id}))

    # its domain is not proven yet: the row says what to do, and the listener refuses its mail
    assert "Waiting for domain verification: until corner.example is verified" in row
    record = re.search(r'corner\.example\. TXT "(omnirouter-verification=[^"]+)"', row)
    assert record and 'class="verify-domain"' in row
    port = admin.app[SETTINGS].section(EmailSettings).listen_port  # type: ignore[attr-defined]
    raw, _ = mail("ivan@mail.example", "Hello", "Do you ship to Riga?", to=ADDRESS)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
        await aiosmtplib.send(raw, sender="ivan@mail.example", recipients=[ADDRESS], hostname="127.0.0.1", port=port)
    assert await raw_database_of(store).messages.count_documents({}) == 0

    # Verify: no record yet, then another token, then the one shown — each said in words
    verify = f"/admin/inboxes/{inbox_id}/verify"
    dns_server.txt["corner.example"] = ["v=spf1 -all"]
    page = (await admin.post(verify, {}, page="/admin/inboxes"))[1]
    assert "Not verified: corner.example has no TXT record omnirouter-verification=… yet." in page
    dns_server.txt["corner.example"] = ["omnirouter-verification=an-old-token"]
    page = (await admin.post(verify, {}, page="/admin/inboxes"))[1]
    assert "Not verified: the omnirouter-verification record of corner.example has another token." in page
    dns_server.txt["corner.example"] = [record.group(1)]
    page = (await admin.post(verify, {}, page="/admin/inboxes"))[1]
    assert "Verified: corner.example is this account&#39;s; this mailbox now receives its mail." in page
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert "Domain corner.example verified" in row and "verify-domain" not in row

    # mail to the address is the account's, in this inbox, answered from the address
    await aiosmtplib.send(raw, sender="ivan@mail.example", recipients=[ADDRESS], hostname="127.0.0.1", port=port)

    async def answered() -> bool:
        return len(sink.received) >= 1

    await wait_for(answered, timeout=15)
    assert sink.received[0][1]["From"].addresses[0].addr_spec == ADDRESS
    [thread] = await raw_database_of(store).threads.find({}).to_list()
    assert thread["account_id"] == "shop" and thread["inbox_id"] == inbox_id


async def test_a_refused_server_or_a_taken_address_is_said_in_words(admin: Browser, sink: SmtpSink) -> None:
    store = admin.app[STORE]  # type: ignore[attr-defined]
    status, page = await admin.post("/admin/inboxes", _mailbox(sink, smtp_host="10.0.0.5"), page="/admin/inboxes")
    assert status == 400 and "A mail server this install does not let an account reach: settings.smtp_host" in page
    status, page = await admin.post("/admin/inboxes", _mailbox(sink, smtp_port="70000"), page="/admin/inboxes")
    assert status == 400 and "smtp_port has a wrong format." in page
    assert await store.inboxes.list_inboxes("shop") == []
    await add_inbox(admin, _mailbox(sink))
    status, page = await admin.post("/admin/inboxes", _mailbox(sink, name="Again"), page="/admin/inboxes")
    assert status == 409
    problem = re.search(r'id="problem-add-email">([^<]*)<', page)
    assert problem and problem.group(1) == (
        f"Another inbox already receives mail for {ADDRESS}: an address delivers into one inbox only."
    )
    assert 'value="Again"' in page and SMTP_PASSWORD not in page  # what was typed is kept, never a secret
    status, page = await admin.post(
        "/admin/inboxes", _mailbox(sink, name="Ours", address="billing@shop.example"), page="/admin/inboxes"
    )
    assert status == 409 and "is this install&#39;s own mail address, or in its mail domain" in page
    assert len(await store.inboxes.list_inboxes("shop")) == 1


async def test_another_account_s_admin_cannot_change_the_mailbox(admin: Browser, sink: SmtpSink) -> None:
    inbox_id = await add_inbox(admin, _mailbox(sink))
    store = admin.app[STORE]  # type: ignore[attr-defined]
    assert await store.mail_domains.mark_verified("shop", ADDRESS.rpartition("@")[2], utcnow())  # proven
    rival = SecureBrowser(admin.client)  # type: ignore[attr-defined]
    try:
        assert (await rival.log_in("rival", "boss", PASSWORD)).status == 303
        page = (await rival.get("/admin/inboxes"))[1]
        assert ADDRESS not in page
        form = {"name": "Mine", "address": "sales@rival.example"}
        status, _ = await rival.post(f"/admin/inboxes/{inbox_id}", form, page="/admin/inboxes")
        assert status == 404
        status, _ = await rival.post(f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}, page="/admin/inboxes")
        assert status == 404
        status, _ = await rival.post(f"/admin/inboxes/{inbox_id}/verify", {}, page="/admin/inboxes")
        assert status == 404
        # nor take another address in the mail domain this account has proven its own
        squat = _mailbox(sink, name="Squat", address="billing@" + ADDRESS.rpartition("@")[2])
        status, page = await rival.post("/admin/inboxes", squat, page="/admin/inboxes")
        assert status == 409 and "is another account&#39;s: a domain&#39;s mail goes to one account" in page
    finally:
        await rival.close()
    inbox = await admin.app[STORE].inboxes.get_inbox(inbox_id)  # type: ignore[attr-defined]
    assert inbox.name == "Sales" and not inbox.disabled
    assert await admin.app[STORE].inboxes.list_inboxes("rival") == []  # type: ignore[attr-defined]
