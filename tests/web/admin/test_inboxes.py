"""Inboxes in the console: an account's admin adds a Telegram bot and a WhatsApp number, sees each
one's webhook URL and which secrets are set (never their values), edits one (an empty secret keeps
its value), disables it, and checks it through the real channel (the local fakes of the Bot API and
the Graph API); a WhatsApp number another inbox receives already is refused in words (409)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.web.keys import FIRST_ADMIN
from tests import factories
from tests.conftest import make_settings
from tests.fakes import reachable, running
from tests.fakes.graph_api import PHONE_NUMBER_ID, FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.web.admin.inboxes_kit import PASSWORD, SecureBrowser, add_inbox, article, inbox_form, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

PUBLIC = "https://shop.example"
BOT_TOKEN = "7364001122:AAH-inbox-bot-token"
HOOK_SECRET = "inbox-hook-secret_42"
WA_TOKEN = "EAAG-inbox-access-token"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeBotAPI, FakeGraphAPI]]:
    telegram, graph = FakeBotAPI(token=BOT_TOKEN), FakeGraphAPI(token=WA_TOKEN)
    async with running(telegram, graph):
        yield telegram, graph


async def _router(embedded: Any, db_name: str, start_client: Any, fakes: Any, public: str = PUBLIC) -> TestClient:
    settings = make_settings(embedded.uri, db_name, egress=reachable(fakes), server={"public_url": public})
    return await two_accounts(await start_client(settings))


@pytest.fixture
async def admin(embedded: Any, db_name: str, start_client: Any, fakes: Any) -> AsyncIterator[Browser]:
    browser = await signed_in(await _router(embedded, db_name, start_client, fakes))
    yield browser
    await browser.close()


def _telegram(fake: FakeBotAPI, name: str = "Sales bot", token: str = BOT_TOKEN) -> dict[str, str]:
    return inbox_form("telegram", name, fake.url, token=token, webhook_secret=HOOK_SECRET)


def _whatsapp(fake: FakeGraphAPI, name: str = "Support number", number: str = PHONE_NUMBER_ID) -> dict[str, str]:
    secrets = {"access_token": WA_TOKEN, "app_secret": "app-secret-1", "verify_token": "verify-me-1"}
    return inbox_form("whatsapp", name, fake.url, phone_number_id=number, **secrets)


async def test_a_new_account_is_told_what_an_inbox_is_and_what_to_do(admin: Browser) -> None:
    status, page = await admin.get("/admin/inboxes")
    assert status == 200
    assert 'id="no-inboxes"' in page and "An inbox is one place your customers write to you" in page
    assert "@BotFather" in page and 'id="add-telegram"' in page and 'id="add-whatsapp"' in page


async def test_an_added_bot_is_listed_with_its_webhook_and_secrets_set_but_never_shown(
    admin: Browser, fakes: Any
) -> None:
    telegram, _ = fakes
    inbox_id = await add_inbox(admin, _telegram(telegram))
    status, page = await admin.get("/admin/inboxes?saved=added")
    assert status == 200 and "Inbox added." in page and 'id="no-inboxes"' not in page
    row = article(page, inbox_id)
    assert "Sales bot" in row and 'data-state="enabled"' in row
    assert f'value="{PUBLIC}/webhooks/telegram/shop/{inbox_id}"' in row
    assert f"curl -F url={PUBLIC}/webhooks/telegram/shop/{inbox_id} -F secret_token=&lt;webhook_secret&gt;" in row
    assert re.search(r'data-field="token"><code>token</code> ✓ set', row)
    assert BOT_TOKEN not in page and HOOK_SECRET not in page
    [entry] = await factories.audit(admin.app[STORE], "shop", action="inbox.create")  # type: ignore[attr-defined]
    assert entry.target == inbox_id and BOT_TOKEN not in str(entry)


async def test_an_empty_secret_keeps_its_value_when_an_inbox_is_edited(admin: Browser, fakes: Any) -> None:
    telegram, _ = fakes
    inbox_id = await add_inbox(admin, _telegram(telegram))
    form = {"name": "Sales bot (EU)", "token": "", "webhook_secret": "", "api_base": telegram.url}
    status, body = await admin.post(f"/admin/inboxes/{inbox_id}", form, page="/admin/inboxes")
    assert status == 303, body
    inbox = await admin.app[STORE].inboxes.get_inbox(inbox_id)  # type: ignore[attr-defined]
    assert inbox.name == "Sales bot (EU)"
    assert inbox.config["token"] == BOT_TOKEN and inbox.config["webhook_secret"] == HOOK_SECRET
    # a wrong format is refused in words, and nothing changes
    bad = {**form, "webhook_secret": "has spaces in it"}
    status, page = await admin.post(f"/admin/inboxes/{inbox_id}", bad, page="/admin/inboxes")
    assert status == 400 and f'id="problem-edit-{inbox_id}"' in page and "webhook_secret has a wrong format." in page
    inbox = await admin.app[STORE].inboxes.get_inbox(inbox_id)  # type: ignore[attr-defined]
    assert inbox.config["webhook_secret"] == HOOK_SECRET


async def test_a_disabled_inbox_is_shown_disabled_and_can_be_enabled_again(admin: Browser, fakes: Any) -> None:
    telegram, _ = fakes
    inbox_id = await add_inbox(admin, _telegram(telegram))
    store = admin.app[STORE]  # type: ignore[attr-defined]
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}, page="/admin/inboxes")
    assert status == 303 and (await store.inboxes.get_inbox(inbox_id)).disabled
    page = (await admin.get("/admin/inboxes?saved=disabled"))[1]
    assert 'data-state="disabled"' in article(page, inbox_id) and "Inbox disabled" in page
    assert 'value="enable"' in article(page, inbox_id)
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/state", {"action": "enable"}, page="/admin/inboxes")
    assert status == 303 and not (await store.inboxes.get_inbox(inbox_id)).disabled
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/state", {"action": "erase"}, page="/admin/inboxes")
    assert status == 400


async def test_check_names_the_bot_or_says_what_telegram_answered(admin: Browser, fakes: Any) -> None:
    telegram, _ = fakes
    good = await add_inbox(admin, _telegram(telegram))
    wrong = await add_inbox(admin, _telegram(telegram, name="Old bot", token="1:revoked-token"))
    status, page = await admin.post(f"/admin/inboxes/{good}/check", {}, page="/admin/inboxes")
    assert status == 200 and "It works: this is the bot @shop_bot." in article(page, good)
    assert [c.method for c in telegram.calls] == ["getMe"]
    status, page = await admin.post(f"/admin/inboxes/{wrong}/check", {}, page="/admin/inboxes")
    assert status == 200 and "Telegram refused: 401 Unauthorized" in article(page, wrong)


async def test_check_shows_the_whatsapp_number_or_the_graph_api_error(admin: Browser, fakes: Any) -> None:
    _, graph = fakes
    number = await add_inbox(admin, _whatsapp(graph))
    status, page = await admin.post(f"/admin/inboxes/{number}/check", {}, page="/admin/inboxes")
    assert status == 200 and "It works: this is the number +1 555-0100 (Fake Shop)." in article(page, number)
    assert graph.requests[-1].path == f"/v23.0/{PHONE_NUMBER_ID}"
    assert graph.requests[-1].authorization == f"Bearer {WA_TOKEN}"
    store = admin.app[STORE]  # type: ignore[attr-defined]
    await store.inboxes.update_inbox("shop", number, {"access_token": "EAAG-expired"})
    status, page = await admin.post(f"/admin/inboxes/{number}/check", {}, page="/admin/inboxes")
    assert "WhatsApp refused: 401 Invalid OAuth access token." in article(page, number)
    row = article(page, number)
    assert "verify_token" in row and "callback URL" in row and f"/webhooks/whatsapp/shop/{number}" in row
    assert "needs no URL of its own" in row  # a Meta app's numbers share its one callback URL


async def test_set_webhook_points_the_bot_at_its_inbox_with_its_secret(admin: Browser, fakes: Any) -> None:
    telegram, _ = fakes
    inbox_id = await add_inbox(admin, _telegram(telegram))
    status, page = await admin.post(f"/admin/inboxes/{inbox_id}/webhook", {}, page="/admin/inboxes")
    assert status == 200, page
    url = f"{PUBLIC}/webhooks/telegram/shop/{inbox_id}"
    assert f"Webhook set: Telegram now delivers this bot&#39;s messages to {url}." in article(page, inbox_id)
    assert telegram.webhook["url"] == url and telegram.webhook["secret_token"] == HOOK_SECRET
    [entry] = await factories.audit(admin.app[STORE], "shop", action="inbox.webhook")  # type: ignore[attr-defined]
    assert entry.target == inbox_id


async def test_set_webhook_without_an_https_address_says_so(
    embedded: Any, db_name: str, start_client: Any, fakes: Any
) -> None:
    client = await _router(embedded, db_name, start_client, fakes, public="")
    browser = Browser(client)
    try:
        assert (await browser.log_in("shop", "owner", PASSWORD)).status == 303
        browser.app = client.server.app  # type: ignore[attr-defined]
        inbox_id = await add_inbox(browser, _telegram(fakes[0]))
        status, page = await browser.post(f"/admin/inboxes/{inbox_id}/webhook", {}, page="/admin/inboxes")
        assert status == 200 and "Telegram delivers only to https addresses" in article(page, inbox_id)
        assert fakes[0].calls == []  # nothing was asked of Telegram
    finally:
        await browser.close()


async def test_a_whatsapp_number_of_another_inbox_is_refused_in_the_form(admin: Browser, fakes: Any) -> None:
    _, graph = fakes
    await add_inbox(admin, _whatsapp(graph))
    status, page = await admin.post("/admin/inboxes", _whatsapp(graph, name="Again"), page="/admin/inboxes")
    assert status == 409
    problem = re.search(r'id="problem-add-whatsapp">([^<]*)<', page)
    assert problem and problem.group(1) == (
        f"Another inbox already receives the WhatsApp number {PHONE_NUMBER_ID}: a number delivers into one inbox only."
    )
    assert 'value="Again"' in page and WA_TOKEN not in page  # what was typed is kept, but never a secret
    assert len(await admin.app[STORE].inboxes.list_inboxes("shop")) == 1  # type: ignore[attr-defined]


async def test_an_api_base_this_install_does_not_allow_is_refused(admin: Browser, fakes: Any) -> None:
    telegram, _ = fakes
    form = {**_telegram(telegram), "api_base": "http://10.0.0.7:8081"}
    status, page = await admin.post("/admin/inboxes", form, page="/admin/inboxes")
    assert status == 400 and "10.0.0.7:8081 is not a server this install allows" in page
    assert await admin.app[STORE].inboxes.list_inboxes("shop") == []  # type: ignore[attr-defined]


async def test_the_first_inbox_is_the_account_s_channel_settings_and_can_be_checked(admin: Browser, fakes: Any) -> None:
    telegram, _ = fakes
    store = admin.app[STORE]  # type: ignore[attr-defined]
    config = {"token": BOT_TOKEN, "webhook_secret": HOOK_SECRET, "api_base": telegram.url}
    await store.accounts.set_account_channel("shop", "telegram", config)
    page = (await admin.get("/admin/inboxes"))[1]
    row = article(page, "telegram")
    assert "First inbox" in row and f'value="{PUBLIC}/webhooks/telegram/shop"' in row and 'value="disable"' not in row
    status, page = await admin.post("/admin/inboxes/telegram/check", {}, page="/admin/inboxes")
    assert status == 200 and "@shop_bot" in article(page, "telegram")


async def test_another_account_s_admin_cannot_see_check_or_change_the_inbox(admin: Browser, fakes: Any) -> None:
    telegram, _ = fakes
    inbox_id = await add_inbox(admin, _telegram(telegram, name="Corner sales bot"))
    rival = SecureBrowser(admin.client)  # type: ignore[attr-defined]
    try:
        assert (await rival.log_in("rival", "boss", PASSWORD)).status == 303
        page = (await rival.get("/admin/inboxes"))[1]
        assert inbox_id not in page and "Corner sales bot" not in page
        for path, form in (
            (f"/admin/inboxes/{inbox_id}", {"name": "taken over"}),
            (f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}),
            (f"/admin/inboxes/{inbox_id}/check", {}),
            (f"/admin/inboxes/{inbox_id}/webhook", {}),
        ):
            status, _ = await rival.post(path, form, page="/admin/inboxes")
            assert status == 404, path
        inbox = await admin.app[STORE].inboxes.get_inbox(inbox_id)  # type: ignore[attr-defined]
        assert inbox.name == "Corner sales bot" and not inbox.disabled and telegram.calls == []
    finally:
        await rival.close()


@pytest.mark.parametrize("mode", ["webhook", "polling"])
async def test_the_install_s_own_bot_from_the_settings_file_is_checked_and_hooked_unless_it_polls(
    embedded: Any, db_name: str, start_client: Any, fakes: Any, mode: str
) -> None:
    telegram, _ = fakes
    allowed = ", ".join(f.url.removeprefix("http://") for f in fakes)
    own = {"token": BOT_TOKEN, "webhook_secret": HOOK_SECRET, "api_base": telegram.url, "mode": mode}
    settings = make_settings(
        embedded.uri,
        db_name,
        egress={"allowed_destinations": allowed},
        server={"public_url": PUBLIC},
        telegram={**own, "poll_timeout": 1},
    )
    client: TestClient = await start_client(settings)
    login, password = client.server.app[FIRST_ADMIN]  # type: ignore[misc]
    browser = SecureBrowser(client)
    try:
        assert (await browser.log_in("default", login, password)).status == 303
        page = (await browser.get("/admin/inboxes"))[1]
        row = article(page, "telegram")
        assert "Set in the settings file" in row and f'value="{PUBLIC}/webhooks/telegram"' in row
        assert BOT_TOKEN not in page and HOOK_SECRET not in page
        status, page = await browser.post("/admin/inboxes/telegram/check", {}, page="/admin/inboxes")
        assert status == 200 and "It works: this is the bot @shop_bot." in article(page, "telegram")
        status, page = await browser.post("/admin/inboxes/telegram/webhook", {}, page="/admin/inboxes")
        assert status == 200
        if mode == "polling":
            assert "it needs no webhook" in article(page, "telegram") and not telegram.sent("setWebhook")
        else:
            assert "Webhook set" in article(page, "telegram")
            assert telegram.webhook == {
                "url": f"{PUBLIC}/webhooks/telegram",
                "secret_token": HOOK_SECRET,
                "allowed_updates": ["message", "edited_message", "callback_query"],
                "drop_pending_updates": "false",  # a form field, as sent
            }
    finally:
        await browser.close()


def test_the_inboxes_page_loads_no_channel_library_until_a_check_needs_it() -> None:
    """The page's Check buttons reach the channels' clients; a router without WhatsApp still never
    imports pywa (about 15 MB, docs/performance.md) for them."""
    probe = "import sys, bot.web; print('pywa_async' in sys.modules)"
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "False"


async def test_check_of_a_provider_that_does_not_answer_says_so_in_words(admin: Browser, fakes: Any) -> None:
    telegram, graph = fakes
    bot = await add_inbox(admin, _telegram(telegram))
    number = await add_inbox(admin, _whatsapp(graph))
    await telegram.stop()
    await graph.stop()  # allowed hosts, but nothing listens there any more
    status, page = await admin.post(f"/admin/inboxes/{bot}/check", {}, page="/admin/inboxes")
    assert status == 200 and "No answer from Telegram: getMe:" in article(page, bot)
    status, page = await admin.post(f"/admin/inboxes/{number}/check", {}, page="/admin/inboxes")
    assert status == 200 and "No answer from WhatsApp:" in article(page, number)
