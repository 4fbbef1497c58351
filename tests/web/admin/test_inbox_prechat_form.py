"""The pre-chat form of a web chat inbox in its edit form on the inboxes page: its admin gives it
its own form (the account page's fields), its widget asks that; a privacy notice that is not an
https address is a form error in words; unticked, the inbox asks the account's form again;
another account's admin gets a 404 and changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests.conftest import make_settings
from tests.web.admin.inboxes_kit import add_inbox, article, signed_in, two_accounts
from tests.web.admin.test_accounts import Browser

PRIVACY = "https://shop.example/privacy"
CHAT = {"name": "Support chat", "greeting": "", "color": "", "sites": ""}
OWN = {**CHAT, "prechat_own": "on", "prechat": "on", "prechat_phone": "on", "prechat_consent": "on"}


@pytest.fixture
async def router(embedded: Any, db_name: str, start_client: Any) -> TestClient:
    return await two_accounts(await start_client(make_settings(embedded.uri, db_name)))


@pytest.fixture
async def admin(router: TestClient) -> AsyncIterator[Browser]:
    browser = await signed_in(router)
    yield browser
    await browser.close()


async def asked(router: TestClient, inbox_id: str | None) -> Any:
    params = {"account": "shop", **({"inbox": inbox_id} if inbox_id else {})}
    return (await (await router.get("/widget/config", params=params)).json())["prechat"]


async def test_an_admin_gives_a_web_chat_its_own_pre_chat_form_and_gives_it_back(
    admin: Browser, router: TestClient
) -> None:
    store = admin.app[STORE]  # type: ignore[attr-defined]
    inbox_id = await add_inbox(admin, {"channel": "webchat", **CHAT})
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert 'class="inbox-prechat"' in row and 'name="prechat_own" checked' not in row

    status, page = await admin.post(
        f"/admin/inboxes/{inbox_id}", {**OWN, "privacy_url": "http://x.example"}, page="/admin/inboxes"
    )
    assert (
        status == 400
        and "The privacy notice needs an https address" in page
        and f'id="problem-edit-{inbox_id}"' in page
    )
    status, page = await admin.post(
        f"/admin/inboxes/{inbox_id}", {**OWN, "privacy_url": "https://[x"}, page="/admin/inboxes"
    )
    assert status == 400 and "The privacy notice needs an https address" in page
    status, page = await admin.post(f"/admin/inboxes/{inbox_id}", OWN, page="/admin/inboxes")  # consent, no notice
    assert status == 400 and "The privacy notice needs an https address" in page
    assert "prechat" not in (await store.inboxes.get_inbox(inbox_id)).config

    status, body = await admin.post(
        f"/admin/inboxes/{inbox_id}", {**OWN, "privacy_url": PRIVACY}, page="/admin/inboxes"
    )
    assert status == 303, body
    assert await asked(router, inbox_id) == {"fields": ["phone"], "consent": True, "privacy_url": PRIVACY}
    assert await asked(router, None) is None  # the account's first web chat: the account asks nothing
    row = article((await admin.get("/admin/inboxes"))[1], inbox_id)
    assert 'name="prechat_own" checked' in row and 'name="prechat_phone" checked' in row
    assert 'name="prechat_name" checked' not in row and f'value="{PRIVACY}"' in row

    status, _ = await admin.post(f"/admin/inboxes/{inbox_id}", CHAT, page="/admin/inboxes")  # own form unticked
    assert status == 303 and (await store.inboxes.get_inbox(inbox_id)).config["prechat"] is None
    assert await asked(router, inbox_id) is None


async def test_another_accounts_admin_cannot_set_a_web_chats_pre_chat_form(admin: Browser, router: TestClient) -> None:
    inbox_id = await add_inbox(admin, {"channel": "webchat", **CHAT})
    rival = await signed_in(router, "rival", "boss")
    try:
        status, _ = await rival.post(
            f"/admin/inboxes/{inbox_id}", {**OWN, "privacy_url": PRIVACY}, page="/admin/inboxes"
        )
        assert status == 404
    finally:
        await rival.close()
    assert "prechat" not in (await admin.app[STORE].inboxes.get_inbox(inbox_id)).config  # type: ignore[attr-defined]
    assert await asked(router, inbox_id) is None
