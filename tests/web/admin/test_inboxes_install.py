"""The inboxes page lists every inbox an account receives on, also those edited elsewhere: the
install's own Twilio number and mailbox (settings file) on its own account's page, and each
account's own web chat (its widget, on the Account page) with its chat page and embedding snippet.
They are read-only here, their secrets only as set; another account's admin sees none of the
install's rows, nor its number, address or secrets."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.agents import add_agent
from bot.web.api.kit import issue_token
from conversations.agent_models import Role
from tests.conftest import make_settings
from tests.web.admin.inboxes_kit import PASSWORD, article, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

PUBLIC = "https://chat.example.com"
NUMBER = "+14155550199"
ADDRESS = "support@shop.example"
SECRETS = ("install-twilio-auth-token", "install-imap-password", "install-smtp-password")
SID = "AC" + "0" * 31 + "7"


def install_settings(embedded: Any, db_name: str, **more: Any) -> Any:
    """An install with its own Twilio number (taking calls too) and mailbox in its settings file."""
    email = {
        "address": ADDRESS,
        "display_name": "Shop Support",
        "imap_host": "imap.shop.example",
        "imap_password": SECRETS[1],
        "smtp_host": "smtp.shop.example",
        "smtp_user": ADDRESS,
        "smtp_password": SECRETS[2],
        **more.pop("email", {}),
    }
    return make_settings(
        embedded.uri,
        db_name,
        server={"public_url": PUBLIC},
        twilio={"account_sid": SID, "auth_token": SECRETS[0]},
        sms={"from_number": NUMBER},
        email=email,
        **{"voice": {"enabled": True}, **more},
    )


async def install_router(client: TestClient) -> TestClient:
    """``client``'s router with the accounts "shop" and "rival", and "ada", admin of the install's own."""
    await add_agent(client.server.app[STORE], "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    return await two_accounts(client)


@pytest.fixture
async def router(embedded: Any, db_name: str, start_client: Any) -> TestClient:
    return await install_router(await start_client(install_settings(embedded, db_name)))


@pytest.fixture
async def install_admin(router: TestClient) -> AsyncIterator[Browser]:
    browser = await signed_in(router, "default", "ada")
    yield browser
    await browser.close()


@pytest.fixture
async def shop_admin(router: TestClient) -> AsyncIterator[Browser]:
    browser = await signed_in(router)
    yield browser
    await browser.close()


async def test_the_install_s_own_number_and_mailbox_are_rows_of_its_own_account(install_admin: Browser) -> None:
    status, page = await install_admin.get("/admin/inboxes")
    assert status == 200
    sms = article(page, "sms")
    assert "First inbox" in sms and 'data-state="enabled"' in sms and "Sections [sms] and [twilio]" in sms
    assert NUMBER in sms and re.search(r'data-field="auth_token"><code>auth_token</code> ✓ set', sms)
    assert f'value="{PUBLIC}/webhooks/sms"' in sms and f'value="{PUBLIC}/webhooks/voice"' in sms
    # read-only: edited in the settings file; Check and a test message as an extra number has
    # (pressed against the local Twilio fake in test_inboxes_sms.py)
    assert "edit-inbox" not in sms and 'value="disable"' not in sms
    assert 'action="/admin/inboxes/sms/check"' in sms and 'action="/admin/inboxes/sms/test"' in sms

    email = article(page, "email")
    assert "Section [email]" in email and ADDRESS in email and 'class="muted mail-path"' in email
    assert re.search(r'data-field="imap_password"><code>imap_password</code> ✓ set', email)
    assert re.search(r'data-field="smtp_password"><code>smtp_password</code> ✓ set', email)
    assert "edit-inbox" not in email and 'value="disable"' not in email and "mail-send-only" not in email
    assert not any(secret in page for secret in SECRETS)

    chat = article(page, "webchat")
    assert f'value="{PUBLIC}/chat"' in chat and 'href="/admin/account#widget"' in chat
    assert f'src="{PUBLIC}/widget.js" data-account="default" async' in chat.replace("&#34;", '"').replace("&quot;", '"')
    assert "data-inbox" not in chat.replace("&#34;", '"')
    # a router with no channel but its web chat still says what an inbox is: here it has some
    assert 'id="no-inboxes"' not in page


async def test_another_account_sees_its_own_web_chat_and_none_of_the_install_s_rows(shop_admin: Browser) -> None:
    status, page = await shop_admin.get("/admin/inboxes")
    assert status == 200
    assert 'id="inbox-sms"' not in page and 'id="inbox-email"' not in page
    assert NUMBER not in page and ADDRESS not in page and not any(secret in page for secret in SECRETS)
    chat = article(page, "webchat")
    assert f'value="{PUBLIC}/chat?account=shop"' in chat and "send-test" not in chat
    assert "data-account=&#34;shop&#34;" in chat or "data-account=&quot;shop&quot;" in chat
    # its only inbox is its web chat: the page still tells it what an inbox is and what to do first
    assert 'id="no-inboxes"' in page and "@BotFather" in page
    for button in ("check", "test"):
        status, _ = await shop_admin.post(f"/admin/inboxes/sms/{button}", {"to": "+37120000000"}, page="/admin/inboxes")
        assert status == 404
    # nor through the API: the install's number and mailbox are no other account's to send from
    store = shop_admin.app[STORE]  # type: ignore[attr-defined]
    headers = {"Authorization": f"Bearer {await issue_token(store, 'shop', 'ops', ['read', 'write'], 'test')}"}
    client = shop_admin.client  # type: ignore[attr-defined]
    for first, to in (("sms", "+37120000000"), ("email", "ivan@mail.example")):
        response = await client.post(f"/api/accounts/shop/inboxes/{first}/test", json={"to": to}, headers=headers)
        assert response.status == 404, first


async def test_the_install_s_number_shows_no_voice_url_when_its_calls_are_not_recorded(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    """With ``voice.enabled`` off the router answers a call to the install's number with a 404:
    the row does not offer an address that would not work."""
    client = await install_router(await start_client(install_settings(embedded, db_name, voice={"enabled": False})))
    browser = await signed_in(client, "default", "ada")
    try:
        sms = article((await browser.get("/admin/inboxes"))[1], "sms")
    finally:
        await browser.close()
    assert f'value="{PUBLIC}/webhooks/sms"' in sms and "/webhooks/voice" not in sms and "voice-url" not in sms
