"""Twilio numbers on the console's inboxes page (issue 17): an account's admin adds a Twilio number
(account SID, auth token, the number in E.164), sees the SMS and voice webhook URLs to paste into
Twilio and whether the auth token is set (never its value), edits it (an empty token keeps the
stored one), disables it, and sends a test message through it (the local fake of Twilio's API sees
the inbox's own SID and token). Bad input is a form error (400); a number another inbox or the
install itself receives is refused (409); another account's admin gets 404s."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.keys import STORE
from bot.services.agents import add_agent
from conversations.agent_models import Role
from tests.conftest import make_settings, raw_database_of
from tests.fakes import reachable, running
from tests.fakes.twilio import PUBLIC_URL, FakeTwilio
from tests.handlers.sms.test_sms import OUR_NUMBER, sms_settings
from tests.web.admin.inboxes_kit import PASSWORD, SecureBrowser, add_inbox, article, inbox_form, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

SID = "AC" + "c" * 32
TOKEN = "token-of-the-shop-twilio"
NUMBER = "+14155550301"


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, FakeTwilio]]:
    """The install's Twilio account, and the shop's own (it accepts only its SID and token)."""
    made = {"install": FakeTwilio(), "shop": FakeTwilio(SID, TOKEN)}
    async with running(*made.values()):
        yield made


@pytest.fixture
async def admin(embedded: Any, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]) -> AsyncIterator[Browser]:
    settings = sms_settings(embedded.uri, db_name, fakes["install"].url, egress=reachable(fakes.values()))
    browser = await signed_in(await two_accounts(await start_client(settings)))
    yield browser
    await browser.close()


def _twilio(fake: FakeTwilio, name: str = "Shop line", number: str = NUMBER) -> dict[str, str]:
    return inbox_form("sms", name, fake.url, account_sid=SID, auth_token=TOKEN, from_number=number)


async def test_an_admin_adds_edits_and_disables_a_twilio_number(admin: Browser, fakes: dict[str, Any]) -> None:
    page = (await admin.get("/admin/inboxes"))[1]
    assert 'id="add-sms"' in page and "Add a Twilio number (SMS)" in page
    inbox_id = await add_inbox(admin, _twilio(fakes["shop"]))
    page = (await admin.get("/admin/inboxes"))[1]
    row = article(page, inbox_id)
    assert "Shop line" in row and NUMBER in row and SID in row and TOKEN not in page
    # a number added as it is takes texts: its calls are not recorded, so no voice address is offered
    assert f'value="{PUBLIC_URL}/webhooks/sms"' in row and "/webhooks/voice" not in row
    assert '<option value="sms" selected>texts (SMS)</option>' in row
    assert re.search(r'data-field="auth_token">✓ set', row)
    assert f'action="/admin/inboxes/{inbox_id}/check"' in row
    store = admin.app[STORE]  # type: ignore[attr-defined]
    raw = await raw_database_of(store).inboxes.find_one({"_id": inbox_id})
    assert raw is not None and raw["route"] == f"sms:{NUMBER}" and TOKEN not in str(raw)  # sealed

    # an empty auth_token keeps the stored one; the number changes
    form = {"name": "Shop line 2", "account_sid": SID, "auth_token": "", "from_number": "+14155550302"}
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}", {**form, "api_base": fakes["shop"].url})
    assert status == 303
    inbox = await store.inboxes.get_inbox(inbox_id)
    assert inbox.name == "Shop line 2" and inbox.config["auth_token"] == TOKEN
    assert inbox.config["from_number"] == "+14155550302" and inbox.route == "sms:+14155550302"

    # the number takes calls too: the voice address is offered beside the SMS one; calls only: the voice one alone
    for serves, shown in (("both", ("sms", "voice")), ("calls", ("voice",))):
        status, _ = await admin.post(
            f"/admin/inboxes/{inbox_id}", {**form, "serves": serves, "api_base": fakes["shop"].url}
        )
        assert status == 303 and (await store.inboxes.get_inbox(inbox_id)).config["serves"] == serves
        row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
        assert [kind for kind in ("sms", "voice") if f'value="{PUBLIC_URL}/webhooks/{kind}"' in row] == list(shown)
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}", {**form, "serves": "fax", "api_base": fakes["shop"].url})
    assert status == 400 and (await store.inboxes.get_inbox(inbox_id)).config["serves"] == "calls"

    # a wrong number or SID in the edit form is shown in that form (400) and changes nothing
    for bad in ({"from_number": "0041"}, {"account_sid": "AC123"}):
        status, page = await admin.post(f"/admin/inboxes/{inbox_id}", {**form, **bad}, page="/admin/inboxes")
        assert status == 400 and f'id="problem-edit-{inbox_id}"' in page and "has a wrong format" in page
    assert (await store.inboxes.get_inbox(inbox_id)).route == "sms:+14155550302"
    audit = await raw_database_of(store).audit.find({"target": inbox_id}).to_list()
    assert audit and TOKEN not in str(audit)

    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}, page="/admin/inboxes")
    assert status == 303 and (await store.inboxes.get_inbox(inbox_id)).disabled
    page = (await admin.get("/admin/inboxes"))[1]
    assert 'data-state="disabled"' in article(page, inbox_id)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"account_sid": "SID123"}, "account_sid has a wrong format."),
        ({"from_number": "4155550301"}, "from_number has a wrong format."),
        ({"auth_token": ""}, "Fill in: auth_token."),
        ({"name": ""}, "An inbox needs a name"),
        ({"api_base": "http://twilio.evil.example"}, "is not a server this install allows"),
    ],
)
async def test_bad_twilio_settings_are_a_form_error(
    admin: Browser, fakes: dict[str, Any], change: dict[str, str], words: str
) -> None:
    status, page = await admin.post("/admin/inboxes", {**_twilio(fakes["shop"]), **change}, page="/admin/inboxes")
    assert status == 400 and words in page and 'id="problem-add-sms"' in page and TOKEN not in page
    assert await admin.app[STORE].inboxes.list_inboxes("shop") == []  # type: ignore[attr-defined]


async def test_a_number_taken_by_another_inbox_or_the_install_is_refused(admin: Browser, fakes: dict[str, Any]) -> None:
    await add_inbox(admin, _twilio(fakes["shop"]))
    status, page = await admin.post("/admin/inboxes", _twilio(fakes["shop"], name="Again"), page="/admin/inboxes")
    assert status == 409 and f"Another inbox already receives the Twilio number {NUMBER}" in page
    status, page = await admin.post(
        "/admin/inboxes", _twilio(fakes["shop"], name="Ours", number=OUR_NUMBER), page="/admin/inboxes"
    )
    assert status == 409 and f"{OUR_NUMBER} is this install" in page
    assert len(await admin.app[STORE].inboxes.list_inboxes("shop")) == 1  # type: ignore[attr-defined]


async def test_a_test_message_goes_out_through_the_inbox_s_own_twilio_account(
    admin: Browser, fakes: dict[str, Any]
) -> None:
    inbox_id = await add_inbox(admin, _twilio(fakes["shop"]))
    path = f"/admin/inboxes/{inbox_id}/test"
    status, page = await admin.post(path, {"to": "+37120000000"}, page="/admin/inboxes")
    assert status == 200 and "Test message sent to +37120000000." in article(page, inbox_id)
    [sent] = fakes["shop"].sent
    assert sent["To"] == "+37120000000" and sent["From"] == NUMBER
    assert sent["Body"] == "omnirouter test message from Shop line" and fakes["install"].sent == []

    # Twilio's refusal is shown in words beside the button
    fakes["shop"].failures.append((400, {"code": 21211, "message": "The 'To' number is not a valid phone number."}))
    status, page = await admin.post(path, {"to": "+37120000001"}, page="/admin/inboxes")
    assert status == 200 and "Not sent:" in (row := article(page, inbox_id)) and "21211" in row

    status, page = await admin.post(path, {"to": "37120000000"}, page="/admin/inboxes")
    assert status == 400 and "Type a number in E.164" in page and f'id="problem-test-{inbox_id}"' in page
    # the install's own Twilio number is no other account's inbox
    status, _ = await admin.post("/admin/inboxes/sms/test", {"to": "+37120000000"}, page="/admin/inboxes")
    assert status == 404
    await admin.post(f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}, page="/admin/inboxes")
    status, page = await admin.post(path, {"to": "+37120000000"}, page="/admin/inboxes")
    assert status == 400 and "The inbox is disabled: enable it first." in page
    assert len(fakes["shop"].sent) == 1 and fakes["install"].sent == []
    db = raw_database_of(admin.app[STORE])  # type: ignore[attr-defined]
    assert await db.threads.count_documents({}) == 0


async def test_check_names_the_number_in_its_twilio_account_or_says_what_twilio_refused(
    admin: Browser, fakes: dict[str, FakeTwilio]
) -> None:
    shop = fakes["shop"]
    shop.numbers = {"+14155550999": "Another line", NUMBER: "Corner Shop main line"}
    inbox_id = await add_inbox(admin, _twilio(shop))
    path = f"/admin/inboxes/{inbox_id}/check"
    status, page = await admin.post(path, {}, page="/admin/inboxes")
    assert status == 200, page
    assert f"It works: this is the Twilio number {NUMBER} (Corner Shop main line)." in article(page, inbox_id)

    # a number that is not in that Twilio account
    shop.numbers = {"+14155550999": "Another line"}
    status, page = await admin.post(path, {}, page="/admin/inboxes")
    expected = f"Twilio refused: {NUMBER} is not a number of the Twilio account {SID}"
    assert status == 200 and expected in article(page, inbox_id)

    # credentials Twilio does not take
    store = admin.app[STORE]  # type: ignore[attr-defined]
    await store.inboxes.update_inbox("shop", inbox_id, {"auth_token": "not-the-token"})
    status, page = await admin.post(path, {}, page="/admin/inboxes")
    assert status == 200 and "Twilio refused: 401 (code 20003) Authenticate" in article(page, inbox_id)
    assert "not-the-token" not in page and TOKEN not in page
    assert fakes["install"].numbers == {} and shop.sent == []


async def test_check_asks_no_twilio_server_the_install_does_not_allow(admin: Browser, fakes: dict[str, Any]) -> None:
    """An api_base stored by an older release that this install no longer allows: nothing is asked."""
    inbox_id = await add_inbox(admin, _twilio(fakes["shop"]))
    store = admin.app[STORE]  # type: ignore[attr-defined]
    await store.inboxes.update_inbox("shop", inbox_id, {"api_base": "http://127.0.0.1:9"})
    status, page = await admin.post(f"/admin/inboxes/{inbox_id}/check", {}, page="/admin/inboxes")
    assert status == 200 and "Not tried: account shop: channels.sms.api_base: 127.0.0.1:9" in article(page, inbox_id)


async def test_another_account_s_admin_cannot_see_test_or_change_the_number(
    admin: Browser, fakes: dict[str, Any]
) -> None:
    inbox_id = await add_inbox(admin, _twilio(fakes["shop"]))
    rival = SecureBrowser(admin.client)  # type: ignore[attr-defined]
    try:
        assert (await rival.log_in("rival", "boss", PASSWORD)).status == 303
        page = (await rival.get("/admin/inboxes"))[1]
        assert inbox_id not in page and NUMBER not in page
        for path, form in (
            (f"/admin/inboxes/{inbox_id}", {"name": "taken over", "account_sid": SID, "from_number": NUMBER}),
            (f"/admin/inboxes/{inbox_id}/state", {"action": "disable"}),
            (f"/admin/inboxes/{inbox_id}/test", {"to": "+37120000000"}),
            (f"/admin/inboxes/{inbox_id}/check", {}),
        ):
            status, _ = await rival.post(path, form, page="/admin/inboxes")
            assert status == 404, path
        inbox = await admin.app[STORE].inboxes.get_inbox(inbox_id)  # type: ignore[attr-defined]
        assert inbox.name == "Shop line" and not inbox.disabled and fakes["shop"].sent == []
    finally:
        await rival.close()


async def test_the_twilio_words_are_in_latvian_and_russian(admin: Browser, fakes: dict[str, Any]) -> None:
    inbox_id = await add_inbox(admin, {**_twilio(fakes["shop"]), "serves": "both"})
    store = admin.app[STORE]  # type: ignore[attr-defined]
    owner = await store.agents.agent_by_login("shop", "owner")
    assert owner is not None
    fakes["shop"].numbers = {NUMBER: "Shop line"}
    works = {
        "lv": f"Darbojas: tas ir Twilio numurs {NUMBER} (Shop line).",
        "ru": f"Работает: это номер Twilio {NUMBER}",
    }
    for lang, words in (
        ("lv", ["Pievienot Twilio numuru (SMS)", "Balss tīmekļa āķa URL (Call status changes)", "īsziņas un zvani"]),
        ("ru", ["Добавить номер Twilio (SMS)", "URL голосового вебхука (Call status changes)", "SMS и звонки"]),
    ):
        await store.agents.update_agent(owner.id, lang=lang)
        page = (await admin.get("/admin/inboxes"))[1]
        assert all(w in page for w in words) and f'id="inbox-{inbox_id}"' in page, lang
        _, page = await admin.post(f"/admin/inboxes/{inbox_id}/check", {}, page="/admin/inboxes")
        assert works[lang] in article(page, inbox_id), lang


async def test_the_install_s_own_number_is_checked_and_tested_by_its_own_account_only(
    admin: Browser, fakes: dict[str, FakeTwilio]
) -> None:
    """The row of the install's Twilio number ([sms], [twilio]) has Check and a test message, sent
    with the install's own Twilio account; another account's admin gets 404s and nothing is sent."""
    install, store = fakes["install"], admin.app[STORE]  # type: ignore[attr-defined]
    install.numbers = {OUR_NUMBER: "Install line"}
    await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password=PASSWORD)
    rival = admin  # the shop's admin: the install's number is none of the shop's
    for path, form in (("/admin/inboxes/sms/check", {}), ("/admin/inboxes/sms/test", {"to": "+37120000000"})):
        status, _ = await rival.post(path, form, page="/admin/inboxes")
        assert status == 404, path
    assert install.sent == []

    ada = await signed_in(admin.client, "default", "ada")  # type: ignore[attr-defined]
    try:
        row = article((await ada.get("/admin/inboxes"))[1], "sms")
        assert 'action="/admin/inboxes/sms/check"' in row and 'action="/admin/inboxes/sms/test"' in row
        status, page = await ada.post("/admin/inboxes/sms/check", {}, page="/admin/inboxes")
        assert status == 200
        assert f"It works: this is the Twilio number {OUR_NUMBER} (Install line)." in article(page, "sms")
        status, page = await ada.post("/admin/inboxes/sms/test", {"to": "+37120000000"}, page="/admin/inboxes")
        assert status == 200 and "Test message sent to +37120000000." in article(page, "sms")
        [sent] = install.sent
        assert sent["To"] == "+37120000000" and sent["From"] == OUR_NUMBER
        account = await store.accounts.get_account("default")
        assert sent["Body"] == f"omnirouter test message from {account.name} (sms)"
        status, page = await ada.post("/admin/inboxes/sms/test", {"to": "37120000000"}, page="/admin/inboxes")
        assert status == 400 and 'id="problem-test-sms"' in page and len(install.sent) == 1

        install.numbers = {}  # a number the install's Twilio account does not have
        _, page = await ada.post("/admin/inboxes/sms/check", {}, page="/admin/inboxes")
        assert f"Twilio refused: {OUR_NUMBER} is not a number of the Twilio account" in article(page, "sms")
    finally:
        await ada.close()
    assert fakes["shop"].sent == []
    audited = await raw_database_of(store).audit.find({"action": "inbox.test", "target": "sms"}).to_list()
    assert [(a["actor_name"], a["details"]["sent"]) for a in audited] == [("ada", True)]


@pytest.mark.parametrize("for_accounts", [False, True])
async def test_an_install_without_a_number_of_its_own_serves_numbers_only_with_sms_for_accounts(
    embedded: Any, db_name: str, start_client: Any, fakes: dict[str, Any], for_accounts: bool
) -> None:
    """No ``[twilio]``/``[sms]`` number of the install's own: without ``sms.for_accounts`` the form
    says which setting is missing (422) and adds nothing; with it the number is added and works."""
    settings = make_settings(
        embedded.uri,
        db_name,
        server={"public_url": PUBLIC_URL},
        sms={"for_accounts": for_accounts},
        egress=reachable(fakes.values()),
    )
    browser = await signed_in(await two_accounts(await start_client(settings)))
    try:
        status, page = await browser.post("/admin/inboxes", _twilio(fakes["shop"]), page="/admin/inboxes")
        if not for_accounts:
            assert status == 422 and "its settings need sms.for_accounts = true" in page
            assert await browser.app[STORE].inboxes.list_inboxes("shop") == []  # type: ignore[attr-defined]
            return
        assert status == 303
        [inbox] = await browser.app[STORE].inboxes.list_inboxes("shop")  # type: ignore[attr-defined]
        status, page = await browser.post(
            f"/admin/inboxes/{inbox.id}/test", {"to": "+37120000000"}, page="/admin/inboxes"
        )
        assert status == 200 and "Test message sent to +37120000000." in article(page, inbox.id)
        assert [s["From"] for s in fakes["shop"].sent] == [NUMBER] and fakes["install"].sent == []
        assert 'id="inbox-sms"' not in page  # the install has no number of its own to show
    finally:
        await browser.close()
