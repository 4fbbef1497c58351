"""Check and test messages of mailbox inboxes, against the real Dovecot and aiosmtpd: Check logs in
to the mailbox's IMAP server (its folder selected) and connects to its SMTP server (EHLO and AUTH
with the inbox's own sealed credentials), saying *It works* or the server's refusal in words; a
test message goes out through the mailbox's own SMTP server from its address. A bad address is
refused before anything is sent; another account's admin or token gets 404 and nothing is sent;
every send is audit-logged. The install's own mailbox is its own account's only."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.api.kit import issue_token
from conversations.agent_models import Role
from conversations.models import utcnow
from tests.conftest import TEST_API_TOKEN, make_settings, raw_database_of
from tests.handlers.conftest import OUR_ADDRESS
from tests.mailservers import IMAP_PASSWORD, Dovecot, SmtpSink
from tests.web.admin.inboxes_kit import PASSWORD, article, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

ADDRESS = "sales@corner.example"
SMTP_PASSWORD = "smtp-password-of-the-corner-shop"
CUSTOMER = "ivan@mail.example"
TEXT = "omnirouter test message from Sales"


@pytest.fixture
async def sinks() -> AsyncIterator[dict[str, SmtpSink]]:
    """The install's SMTP server, and the corner shop's, which takes mail only after AUTH."""
    made = {"install": SmtpSink(), "shop": SmtpSink(password=SMTP_PASSWORD)}
    for sink in made.values():
        await sink.start()
    yield made
    for sink in made.values():
        await sink.stop()


@pytest.fixture
async def router(
    embedded: Any, db_name: str, start_client: Any, dovecot: Dovecot, sinks: dict[str, SmtpSink], mailbox_user: str
) -> TestClient:
    allowed = ", ".join([f"127.0.0.1:{dovecot.port}", *(f"127.0.0.1:{s.port}" for s in sinks.values())])
    email = {
        "address": OUR_ADDRESS,
        "display_name": "Shop Support",
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.port,
        "imap_security": "none",
        "imap_user": f"install-{mailbox_user}",
        "imap_password": IMAP_PASSWORD,
        "smtp_host": "127.0.0.1",
        "smtp_port": sinks["install"].port,
        "smtp_security": "none",
        "poll_interval": 0.2,
    }
    settings = make_settings(embedded.uri, db_name, email=email, egress={"allowed_destinations": allowed})
    client = await two_accounts(await start_client(settings))
    await add_agent(client.server.app[STORE], "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    return client


def _config(dovecot: Dovecot | None, sink: SmtpSink, user: str, **changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "address": ADDRESS,
        "display_name": "Corner Shop Sales",
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_security": "none",
        "smtp_user": ADDRESS,
        "smtp_password": SMTP_PASSWORD,
    }
    if dovecot is not None:
        config.update(
            imap_host="127.0.0.1",
            imap_port=dovecot.port,
            imap_security="none",
            imap_user=user,
            imap_password=IMAP_PASSWORD,
        )
    return {**config, **changes}


async def _mailbox(router: TestClient, config: dict[str, Any], name: str = "Sales") -> str:
    inbox = await router.server.app[STORE].inboxes.create_inbox(
        "shop", "email", name, config, utcnow(), f"email:{config['address']}"
    )
    assert inbox is not None
    return str(inbox.id)


@pytest.fixture
async def shop(router: TestClient) -> AsyncIterator[Browser]:
    browser = await signed_in(router)
    yield browser
    await browser.close()


async def _press(browser: Browser, inbox_id: str, button: str, **form: str) -> tuple[int, str]:
    return await browser.post(f"/admin/inboxes/{inbox_id}/{button}", form, page="/admin/inboxes")


async def _audited(router: TestClient) -> list[dict[str, Any]]:
    return await raw_database_of(router.server.app[STORE]).audit.find({"action": "inbox.test"}).to_list()


async def test_check_logs_in_over_imap_and_smtp_or_says_what_the_server_refused(
    router: TestClient, shop: Browser, dovecot: Dovecot, sinks: dict[str, SmtpSink], mailbox_user: str
) -> None:
    store, sink = router.server.app[STORE], sinks["shop"]
    inbox_id = await _mailbox(router, _config(dovecot, sink, mailbox_user))
    status, page = await _press(shop, inbox_id, "check")
    assert status == 200
    assert (
        f"It works: {ADDRESS} logs in to its IMAP server 127.0.0.1:{dovecot.port} (INBOX selected), and its SMTP "
        f"server 127.0.0.1:{sink.port} takes it (EHLO, AUTH)." in article(page, inbox_id)
    )

    await store.inboxes.update_inbox("shop", inbox_id, {"imap_password": "not-the-password"})
    status, page = await _press(shop, inbox_id, "check")
    row = article(page, inbox_id)
    assert status == 200 and f"The mail server refused: IMAP 127.0.0.1:{dovecot.port}: IMAP login failed" in row
    assert "AUTHENTICATIONFAILED" in row and "It works" not in row

    await store.inboxes.update_inbox("shop", inbox_id, {"imap_password": IMAP_PASSWORD, "smtp_password": "wrong"})
    status, page = await _press(shop, inbox_id, "check")
    assert f"The mail server refused: SMTP 127.0.0.1:{sink.port}: 535" in article(page, inbox_id)

    # a mailbox without IMAP on an install whose SMTP listener is off (email.listen_port = 0, as here):
    # its SMTP server is checked, and the page says that no mail comes in and what to set
    send_only = await _mailbox(router, _config(None, sink, "", address="help@corner.example"), "Help")
    status, page = await _press(shop, send_only, "check")
    row = html.unescape(article(page, send_only))
    assert status == 200 and "It works" not in row and 'class="error check-result"' in row
    assert (
        f"Its SMTP server 127.0.0.1:{sink.port} takes help@corner.example (EHLO, AUTH), but no mail comes in: it has "
        "no imap_host and this install's SMTP listener is off (email.listen_port = 0). Set its imap_host (Edit), "
        "or ask the install's operator to set email.listen_port." in row
    )
    assert sink.received == []  # a check sends nothing


async def test_the_install_s_own_mailbox_without_imap_or_listener_is_told_what_to_set(
    embedded: Any, db_name: str, start_client: Any, sinks: dict[str, SmtpSink]
) -> None:
    """The settings file's mailbox with neither email.imap_host nor email.listen_port: its Check
    says it receives no mail and names both settings; in Latvian and Russian too."""
    install = sinks["install"]
    email = {"address": OUR_ADDRESS, "smtp_host": "127.0.0.1", "smtp_port": install.port, "smtp_security": "none"}
    client = await start_client(make_settings(embedded.uri, db_name, email=email))
    await add_agent(client.server.app[STORE], "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    ada = await signed_in(client, "default", "ada")
    try:
        status, page = await _press(ada, "email", "check")
        assert status == 200 and (
            f"Its SMTP server 127.0.0.1:{install.port} takes {OUR_ADDRESS} (EHLO), but no mail comes in: "
            "email.imap_host is empty and this install's SMTP listener is off (email.listen_port = 0). Set one of "
            "them in the settings file." in html.unescape(article(page, "email"))
        )
        ada_agent = await client.server.app[STORE].agents.agent_by_login("default", "ada")
        for lang in ("lv", "ru"):
            await client.server.app[STORE].agents.update_agent(ada_agent.id, lang=lang)
            row = article((await _press(ada, "email", "check"))[1], "email")
            assert "email.listen_port = 0" in row and "but no mail comes in" not in row, lang
    finally:
        await ada.close()
    assert install.received == []


async def test_a_test_message_goes_out_from_the_mailbox_through_its_own_server(
    router: TestClient, shop: Browser, dovecot: Dovecot, sinks: dict[str, SmtpSink], mailbox_user: str
) -> None:
    store, sink = router.server.app[STORE], sinks["shop"]
    inbox_id = await _mailbox(router, _config(dovecot, sink, mailbox_user))
    status, page = await _press(shop, inbox_id, "test", to="not an address")
    assert status == 400 and "Type an e-mail address, e.g. name@example.com." in page
    assert sink.received == [] and await _audited(router) == []

    status, page = await _press(shop, inbox_id, "test", to=CUSTOMER)
    assert status == 200 and f"Test message sent to {CUSTOMER}." in article(page, inbox_id)
    [(recipients, mail, _)] = sink.received
    assert recipients == [CUSTOMER] and mail["To"] == CUSTOMER and mail["Subject"] == TEXT
    assert (
        mail["From"].addresses[0].addr_spec == ADDRESS and mail["From"].addresses[0].display_name == "Corner Shop Sales"
    )
    assert mail.get_content().strip() == TEXT and sinks["install"].received == []
    assert await raw_database_of(store).threads.count_documents({}) == 0  # no conversation is made of it

    await store.inboxes.update_inbox("shop", inbox_id, {"smtp_password": "wrong"})
    status, page = await _press(shop, inbox_id, "test", to=CUSTOMER)
    assert status == 200 and "Not sent: SMTP server answered 535" in article(page, inbox_id)
    assert len(sink.received) == 1
    assert [(a["details"]["to"], a["details"]["sent"]) for a in await _audited(router)] == [
        (CUSTOMER, True),
        (CUSTOMER, False),
    ]


async def test_another_account_s_admin_and_token_get_404_and_nothing_is_sent(
    router: TestClient, dovecot: Dovecot, sinks: dict[str, SmtpSink], mailbox_user: str
) -> None:
    inbox_id = await _mailbox(router, _config(dovecot, sinks["shop"], mailbox_user))
    rival = await signed_in(router, "rival", "boss")
    try:
        for target in (inbox_id, "email"):  # the shop's mailbox, the install's own
            for button in ("check", "test"):
                status, _ = await _press(rival, target, button, to=CUSTOMER)
                assert status == 404, (target, button)
    finally:
        await rival.close()
    store = router.server.app[STORE]
    token = await issue_token(store, "rival", "ops", ["read", "write"], "test")
    headers = {"Authorization": f"Bearer {token}"}
    for target in (inbox_id, "email"):
        response = await router.post(
            f"/api/accounts/rival/inboxes/{target}/test", json={"to": CUSTOMER}, headers=headers
        )
        assert response.status == 404, target
    assert sinks["shop"].received == [] and sinks["install"].received == [] and await _audited(router) == []


async def test_the_api_sends_a_test_mail_and_refuses_a_bad_address_first(
    router: TestClient, dovecot: Dovecot, sinks: dict[str, SmtpSink], mailbox_user: str
) -> None:
    inbox_id = await _mailbox(router, _config(dovecot, sinks["shop"], mailbox_user))
    store = router.server.app[STORE]
    headers = {"Authorization": f"Bearer {await issue_token(store, 'shop', 'ops', ['read', 'write'], 'test')}"}
    url = f"/api/accounts/shop/inboxes/{inbox_id}/test"
    bad = await router.post(url, json={"to": "ivan at mail"}, headers=headers)
    assert bad.status == 422 and (await bad.json())["error"] == "bad_recipient"
    sent = await router.post(url, json={"to": CUSTOMER}, headers=headers)
    assert sent.status == 200 and await sent.json() == {"sent": True}
    [(recipients, mail, _)] = sinks["shop"].received
    assert recipients == [CUSTOMER] and mail["Subject"] == TEXT

    await store.inboxes.update_inbox("shop", inbox_id, {"smtp_password": "wrong"})
    refused = await router.post(url, json={"to": CUSTOMER}, headers=headers)
    body = await refused.json()
    assert refused.status == 502 and body["error"] == "provider_refused" and "535" in body["detail"]
    await store.inboxes.update_inbox("shop", inbox_id, {}, disabled=True)
    disabled = await router.post(url, json={"to": CUSTOMER}, headers=headers)
    assert disabled.status == 422 and (await disabled.json())["error"] == "inbox_disabled"
    assert len(sinks["shop"].received) == 1


async def test_the_install_s_own_mailbox_is_checked_and_tested_by_its_own_account(
    router: TestClient, sinks: dict[str, SmtpSink], dovecot: Dovecot
) -> None:
    ada = await signed_in(router, "default", "ada")
    try:
        status, page = await _press(ada, "email", "check")
        assert status == 200 and f"It works: {OUR_ADDRESS} logs in to its IMAP server 127.0.0.1:{dovecot.port}" in (
            article(page, "email")
        )
        status, page = await _press(ada, "email", "test", to=CUSTOMER)
        assert status == 200 and f"Test message sent to {CUSTOMER}." in article(page, "email")
    finally:
        await ada.close()
    install = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
    sent = await router.post("/api/accounts/default/inboxes/email/test", json={"to": CUSTOMER}, headers=install)
    assert sent.status == 200
    assert [mail["From"].addresses[0].addr_spec for _, mail, _ in sinks["install"].received] == [OUR_ADDRESS] * 2
    assert sinks["shop"].received == []
