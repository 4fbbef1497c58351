"""The *Routing* form of an extra inbox on the inboxes page: its admin turns the bot off, names a
team and the inbox's own hours; bad hours are a form error in words; emptied fields are the
account's again; another account's admin gets a 404 and changes nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import QUEUE, STORE
from bot.services.teams import is_team
from conversations.models import utcnow
from tests.conftest import make_settings, raw_database_of
from tests.web.admin.inboxes_kit import add_inbox, article, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

EMPTY = {"bot": "", "strategy": "", "team": "", "business_hours": "", "timezone": "", "out_of_hours_reply": ""}


@pytest.fixture
async def router(embedded: Any, db_name: str, start_client: Any) -> TestClient:
    return await two_accounts(await start_client(make_settings(embedded.uri, db_name)))


@pytest.fixture
async def admin(router: TestClient) -> AsyncIterator[Browser]:
    browser = await signed_in(router)
    yield browser
    await browser.close()


async def web_chat(admin: Browser) -> str:
    form = {"channel": "webchat", "name": "Sales chat", "greeting": "", "color": "", "sites": ""}
    return await add_inbox(admin, form)


async def test_an_admin_gives_an_inbox_its_own_routing_and_gives_it_back(admin: Browser) -> None:
    store = admin.app[STORE]  # type: ignore[attr-defined]
    inbox_id = await web_chat(admin)
    own = {**EMPTY, "bot": "off", "team": "sales", "business_hours": "mon-fri 09:00-17:00", "timezone": "Europe/Riga"}
    status, body = await admin.post(f"/admin/inboxes/{inbox_id}/routing", own, page="/admin/inboxes")
    assert status == 303, body
    assert await store.inboxes.inbox_routing(inbox_id) == {
        "bot": False,  # a boolean (the embedded store returns one set inside a document as 0)
        "team": "sales",
        "business_hours": "mon-fri 09:00-17:00",
        "timezone": "Europe/Riga",
    }
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert 'value="sales"' in row and '<option value="off" selected>' in row

    for bad, says in (
        ({"business_hours": "weekdays 9-5"}, "routing.business_hours"),
        ({"timezone": "Mars/Olympus"}, "routing.timezone"),
        ({"team": "sales team!"}, "team"),
        ({"team": "s" * 33}, "team"),  # the rule of agents' teams: at most 32
    ):
        status, page = await admin.post(f"/admin/inboxes/{inbox_id}/routing", {**own, **bad}, page="/admin/inboxes")
        assert status == 400 and says in page and f'id="problem-routing-{inbox_id}"' in page, bad
    assert (await store.inboxes.inbox_routing(inbox_id))["team"] == "sales"  # nothing changed

    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/routing", EMPTY, page="/admin/inboxes")
    assert status == 303 and await store.inboxes.inbox_routing(inbox_id) == {}  # the account's again


async def test_an_admin_chooses_how_an_inboxs_conversations_reach_agents(admin: Browser) -> None:
    """The strategy: the account's by default (the form says which that is), or the inbox's own;
    a value that is none is refused and changes nothing."""
    store, queue = admin.app[STORE], admin.app[QUEUE]  # type: ignore[attr-defined]
    await queue.set_routing("shop", strategy="next")
    inbox_id = await web_chat(admin)
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert '<option value="" selected>the account&#39;s (next: agents ask for the next)</option>' in row

    auto = {**EMPTY, "strategy": "auto"}
    status, body = await admin.post(f"/admin/inboxes/{inbox_id}/routing", auto, page="/admin/inboxes")
    assert status == 303, body
    assert await store.inboxes.inbox_routing(inbox_id) == {"strategy": "auto"}
    assert (await queue.routing("shop", inbox_id)).strategy == "auto"  # followed at once
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert '<option value="auto" selected>' in row and '<option value="">the account&#39;s (next' in row

    status, body = await admin.post(
        f"/admin/inboxes/{inbox_id}/routing", {**EMPTY, "strategy": "fastest"}, page="/admin/inboxes"
    )
    assert status == 400 and "strategy" in body
    assert await store.inboxes.inbox_routing(inbox_id) == {"strategy": "auto"}
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/routing", EMPTY, page="/admin/inboxes")
    assert status == 303 and await store.inboxes.inbox_routing(inbox_id) == {}
    assert (await queue.routing("shop", inbox_id)).strategy == "next"  # the account's again


async def test_another_accounts_admin_cannot_route_an_inbox(admin: Browser, router: TestClient) -> None:
    inbox_id = await web_chat(admin)
    rival = await signed_in(router, "rival", "boss")
    try:
        status, _ = await rival.post(
            f"/admin/inboxes/{inbox_id}/routing", {**EMPTY, "bot": "off"}, page="/admin/inboxes"
        )
        assert status == 404
    finally:
        await rival.close()
    assert await router.server.app[STORE].inboxes.inbox_routing(inbox_id) == {}


async def shop_versions(store: Any) -> None:
    """Two model versions of the shop (the newer active), one of the rival's. The form only lists
    and checks them: the pipeline's answers by a pinned version are tests/router/test_inbox_models.py's."""
    info = {"intents": 2, "examples": 10, "created_by": "test"}
    for account, version in (("shop", "shop-1"), ("shop", "shop-2"), ("rival", "rival-1")):
        learned = {"learned_from": ["m-erased"]} if version == "shop-1" else {}
        await store.nlu.save_nlu_model(account, version, b"model", {**info, **learned}, utcnow())
    assert await store.nlu.activate_nlu_model("shop", "shop-2", "test", utcnow())


async def test_an_admin_pins_an_inbox_to_a_model_version_and_is_told_when_it_is_retired(admin: Browser) -> None:
    store = admin.app[STORE]  # type: ignore[attr-defined]
    await shop_versions(store)
    inbox_id = await web_chat(admin)
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert '<option value="shop-1">' in row and '<option value="shop-2">' in row and "rival-1" not in row

    status, page = await admin.post(
        f"/admin/inboxes/{inbox_id}/routing", {**EMPTY, "model": "rival-1"}, page="/admin/inboxes"
    )
    assert status == 400 and "not one of this account" in page and f'id="problem-routing-{inbox_id}"' in page
    assert await store.inboxes.inbox_routing(inbox_id) == {}

    status, _ = await admin.post(
        f"/admin/inboxes/{inbox_id}/routing", {**EMPTY, "model": "shop-1"}, page="/admin/inboxes"
    )
    assert status == 303 and await store.inboxes.inbox_routing(inbox_id) == {"model": "shop-1"}
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert '<option value="shop-1" selected>' in row and "model-unavailable" not in row

    await store.nlu.retire_nlu_models("shop", ["m-erased"], "erasure", utcnow())
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert "model-unavailable" in row and "shop-1" in row and "active model answers it" in row
    # saving its other settings keeps the pin (the page says what happens); choosing it anew is refused
    status, _ = await admin.post(
        f"/admin/inboxes/{inbox_id}/routing", {**EMPTY, "model": "shop-1", "team": "sales"}, page="/admin/inboxes"
    )
    assert status == 303 and await store.inboxes.inbox_routing(inbox_id) == {"model": "shop-1", "team": "sales"}
    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}/routing", EMPTY, page="/admin/inboxes")
    assert status == 303 and await store.inboxes.inbox_routing(inbox_id) == {}
    status, _ = await admin.post(
        f"/admin/inboxes/{inbox_id}/routing", {**EMPTY, "model": "shop-1"}, page="/admin/inboxes"
    )
    assert status == 400 and await store.inboxes.inbox_routing(inbox_id) == {}


async def test_a_team_an_earlier_release_took_is_kept_while_other_settings_change(admin: Browser) -> None:
    """Before teams had one rule everywhere, an inbox's team could be any text (the API took it):
    such a team stays as it is when the form is saved with it, and only a new team keeps to the
    rule. The API does the same (tests/router/test_inbox_routing.py)."""
    store = admin.app[STORE]  # type: ignore[attr-defined]
    inbox_id = await web_chat(admin)
    await raw_database_of(store).inboxes.update_one({"_id": inbox_id}, {"$set": {"routing.team": "Night desk"}})
    kept = {**EMPTY, "team": "Night desk", "timezone": "Europe/Riga"}
    status, body = await admin.post(f"/admin/inboxes/{inbox_id}/routing", kept, page="/admin/inboxes")
    assert status == 303, body
    assert await store.inboxes.inbox_routing(inbox_id) == {"team": "Night desk", "timezone": "Europe/Riga"}
    status, page = await admin.post(
        f"/admin/inboxes/{inbox_id}/routing", {**kept, "team": "Day desk"}, page="/admin/inboxes"
    )
    assert status == 400 and "A team is one name of 1 to 32 letters, digits, - or _." in page
    assert (await store.inboxes.inbox_routing(inbox_id))["team"] == "Night desk"


async def test_a_pin_older_than_the_newest_fifty_versions_is_still_listed_and_not_said_gone(admin: Browser) -> None:
    store = admin.app[STORE]  # type: ignore[attr-defined]
    await shop_versions(store)
    inbox_id = await web_chat(admin)
    status, _ = await admin.post(
        f"/admin/inboxes/{inbox_id}/routing", {**EMPTY, "model": "shop-1"}, page="/admin/inboxes"
    )
    assert status == 303
    info = {"intents": 2, "examples": 10, "created_by": "test"}
    for n in range(51):  # trained since: shop-1 is no longer among the newest fifty
        await store.nlu.save_nlu_model("shop", f"shop-later-{n:02}", b"model", info, utcnow())
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert '<option value="shop-1" selected>' in row and "model-unavailable" not in row


def _team_input(row: str) -> str:
    found = re.search(r'<input name="team"[^>]*>', row)
    assert found is not None, row
    return found.group(0)


async def test_the_team_field_in_a_browser_takes_what_the_server_takes(admin: Browser, browser: Any) -> None:
    """The form's maxlength and pattern are the server's rule of team names (bot/services/teams.py):
    Chromium finds the same names valid as ``is_team`` does; a team an earlier release took is
    not refused by the form (the server keeps it, above)."""
    store = admin.app[STORE]  # type: ignore[attr-defined]
    inbox_id = await web_chat(admin)
    field = _team_input(article((await admin.get("/admin/inboxes"))[1], inbox_id))
    assert 'maxlength="32"' in field and "pattern=" in field
    names = ["sales", "vip_2", "night-desk", "pārdošana", "продажи", "s" * 32, "s" * 33, "sales team", "a,b", "x!", ""]
    page = await browser.new_page()
    try:
        await page.set_content(f"<form>{field}</form>")
        for name in names:
            await page.fill("input[name=team]", name)  # typed, as a user does: maxlength then applies
            typed = await page.input_value("input[name=team]")
            valid = await page.eval_on_selector("input[name=team]", "e => e.checkValidity()")
            assert valid == (typed == "" or is_team(typed)), name
            assert (typed == name) == (len(name) <= 32), name  # the 33rd character is not typed
        # a value longer than 32 set by a script (not typed) is refused by the pattern too
        too_long = await page.eval_on_selector(
            "input[name=team]", "e => { e.value = 's'.repeat(33); return e.checkValidity() }"
        )
        assert too_long is False
    finally:
        await page.close()
    await raw_database_of(store).inboxes.update_one({"_id": inbox_id}, {"$set": {"routing.team": "Night desk"}})
    field = _team_input(article((await admin.get("/admin/inboxes"))[1], inbox_id))
    assert 'value="Night desk"' in field and "pattern=" not in field and "maxlength" not in field
