"""Inboxes: two accounts on one install, each with two Telegram bots and two WhatsApp numbers (its
channel settings and one extra inbox of each). The same customer writes to all eight: eight
conversations, each answered by the bot or number it wrote to, none crossing an account or an inbox;
an account manages only its own inboxes."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.handlers.kit import accounts as channel_accounts
from bot.keys import STORE
from bot.services.reports import build_report, report_csv
from bot.web.api.kit import issue_token
from bot.web.keys import FIRST_ADMIN
from conversations.models import utcnow
from tests.conftest import TEST_API_TOKEN, raw_database_of
from tests.fakes import reachable, running
from tests.fakes.graph_api import PHONE_NUMBER_ID, FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import (
    TG_SECRET,
    WA_SECRET,
    WA_VERIFY,
    channel_settings,
    fixture,
    own_channels,
    post_telegram,
    post_whatsapp,
    sign,
)
from tests.router.test_inbound import wait_for
from tests.web.console.test_console import log_in

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


@pytest.fixture
async def fakes() -> AsyncIterator[dict[str, Any]]:
    """One fake Bot API and one fake Graph API per inbox, each with its own token."""
    made: dict[str, Any] = {}
    for n, owner in enumerate(("default", "default-2", "shop2", "shop2-2")):
        made[f"tg:{owner}"] = FakeBotAPI(token=f"{100 + n}:bot-of-{owner}")
        made[f"wa:{owner}"] = FakeGraphAPI(token=f"EAAG-{owner}", first_id=1000 * (n + 1))
    async with running(*made.values()):
        yield made


def _telegram(fake: FakeBotAPI, secret: str) -> dict[str, Any]:
    return {"token": fake.token, "webhook_secret": secret, "api_base": fake.url}


def _whatsapp(fake: FakeGraphAPI, number: str, secret: str) -> dict[str, Any]:
    return {
        "phone_number_id": number,
        "access_token": fake.token,
        "app_secret": secret,
        "verify_token": f"verify-{number}",
        "api_base": fake.url,
    }


def _wa_message(number: str, wamid: str) -> dict[str, Any]:
    body = copy.deepcopy(fixture("whatsapp", "text"))
    change = body["entry"][0]["changes"][0]["value"]
    change["metadata"]["phone_number_id"] = number
    change["messages"][0]["id"] = wamid
    change["messages"][0]["timestamp"] = str(int(time.time()))  # inside WhatsApp's 24-hour window
    return body


async def test_two_accounts_with_two_inboxes_of_each_channel_never_cross(
    embedded: Any,
    db_name: str,
    start_client: Any,
    fakes: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(channel_accounts, "REFRESH_SECONDS", 0.2)  # inboxes read again soon after a change
    settings = own_channels(embedded.uri, db_name, fakes["tg:default"], fakes["wa:default"], fakes.values())
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    await store.accounts.set_account_channel("shop2", "telegram", _telegram(fakes["tg:shop2"], "shop2-tg"))
    await store.accounts.set_account_channel("shop2", "whatsapp", _whatsapp(fakes["wa:shop2"], "2001", "shop2-wa"))
    shop2 = {"Authorization": f"Bearer {await issue_token(store, 'shop2', 'ops', ['read', 'write'], 'test')}"}

    # each account adds a second bot and a second number: with its own token, or the install's
    created: dict[str, dict[str, Any]] = {}
    for account, headers, owner, number in (
        ("default", INSTALL, "default-2", "1002"),
        ("shop2", shop2, "shop2-2", "2002"),
    ):
        for channel, config in (
            ("telegram", _telegram(fakes[f"tg:{owner}"], f"{owner}-tg")),
            ("whatsapp", _whatsapp(fakes[f"wa:{owner}"], number, f"{owner}-wa")),
        ):
            body = {"channel": channel, "name": f"{owner} {channel}", "settings": config}
            answer = await client.post(f"/api/accounts/{account}/inboxes", json=body, headers=headers)
            assert answer.status == 201, await answer.text()
            shown = await answer.json()
            assert shown["webhook_url"].endswith(f"/webhooks/{channel}/{account}/{shown['id']}")
            assert shown["secrets"]["access_token" if channel == "whatsapp" else "token"] is True
            assert config.get("token", config.get("access_token")) not in json.dumps(shown)  # never shown back
            created[f"{channel}:{owner}"] = shown
    raw = await raw_database_of(store).inboxes.find({}).to_list()
    assert len(raw) == 4 and not any(fakes[f"tg:{o}"].token in str(raw) for o in ("default-2", "shop2-2"))

    # an account sees and changes only its own inboxes
    extra = created["telegram:default-2"]["id"]
    assert (await client.get("/api/accounts/default/inboxes", headers=shop2)).status == 404
    assert (await client.post("/api/accounts/default/inboxes", json=body, headers=shop2)).status == 404
    assert (await client.patch(f"/api/accounts/shop2/inboxes/{extra}", json={"name": "x"}, headers=shop2)).status == 404
    mine = await (await client.get("/api/accounts/shop2/inboxes", headers=shop2)).json()
    assert sorted(i["name"] for i in mine["items"]) == ["shop2-2 telegram", "shop2-2 whatsapp"]
    # one number delivers into one inbox only
    again = {"channel": "whatsapp", "name": "again", "settings": _whatsapp(fakes["wa:shop2-2"], "1002", "s")}
    taken = await client.post("/api/accounts/shop2/inboxes", json=again, headers=shop2)
    assert taken.status == 409 and (await taken.json())["error"] == "inbox_taken"
    # nor another account's own number (its first inbox), nor may an account's own settings take an
    # inbox's number or the install's; its own number it may save again
    first = {"channel": "whatsapp", "name": "first", "settings": _whatsapp(fakes["wa:shop2-2"], "2001", "s")}
    taken = await client.post("/api/accounts/default/inboxes", json=first, headers=INSTALL)
    assert taken.status == 409 and (await taken.json())["error"] == "inbox_taken"
    for number, status in (("1002", 409), (PHONE_NUMBER_ID, 409), ("2002", 409), ("2001", 200)):
        own_settings = _whatsapp(fakes["wa:shop2"], number, "shop2-wa")
        answer = await client.put("/api/accounts/shop2/channels/whatsapp", json=own_settings, headers=shop2)
        assert answer.status == status, (number, await answer.text())
    # nor is the install's own number any account's inbox
    own = {"channel": "whatsapp", "name": "own", "settings": _whatsapp(fakes["wa:shop2-2"], PHONE_NUMBER_ID, "s")}
    for account, headers in (("shop2", shop2), ("default", INSTALL)):
        taken = await client.post(f"/api/accounts/{account}/inboxes", json=own, headers=headers)
        assert taken.status == 409 and (await taken.json())["error"] == "inbox_taken"

    # the same person writes to all eight (the same Telegram message id to each bot)
    update = fixture("telegram", "text")
    paths = {
        "default": ("/webhooks/telegram", TG_SECRET),
        "default-2": (f"/webhooks/telegram/default/{extra}", "default-2-tg"),
        "shop2": ("/webhooks/telegram/shop2", "shop2-tg"),
        "shop2-2": (f"/webhooks/telegram/shop2/{created['telegram:shop2-2']['id']}", "shop2-2-tg"),
    }
    for path, secret in paths.values():
        assert (await post_telegram(client, update, secret=secret, path=path)).status == 200
    numbers = {
        "default": ("/webhooks/whatsapp", PHONE_NUMBER_ID, WA_SECRET),
        "default-2": (f"/webhooks/whatsapp/default/{created['whatsapp:default-2']['id']}", "1002", "default-2-wa"),
        "shop2": ("/webhooks/whatsapp/shop2", "2001", "shop2-wa"),
        "shop2-2": (f"/webhooks/whatsapp/shop2/{created['whatsapp:shop2-2']['id']}", "2002", "shop2-2-wa"),
    }
    for n, (path, number, secret) in enumerate(numbers.values()):
        body_bytes = json.dumps(_wa_message(number, f"wamid.INBOX{n}")).encode()
        assert (await post_whatsapp(client, body_bytes, signature=sign(body_bytes, secret), path=path)).status == 200

    async def all_answered() -> bool:
        return all(len(fakes[f"tg:{o}"].sent("sendMessage")) >= 1 for o in paths) and all(
            len(fakes[f"wa:{o}"].sent()) >= 1 for o in numbers
        )

    await wait_for(all_answered, timeout=30)
    threads = await raw_database_of(store).threads.find({}).to_list()
    by_place = sorted((t["account_id"], t["channel"], t.get("inbox_id") or "") for t in threads)
    assert by_place == sorted(
        [
            ("default", "telegram", ""),
            ("default", "telegram", extra),
            ("default", "whatsapp", ""),
            ("default", "whatsapp", created["whatsapp:default-2"]["id"]),
            ("shop2", "telegram", ""),
            ("shop2", "telegram", created["telegram:shop2-2"]["id"]),
            ("shop2", "whatsapp", ""),
            ("shop2", "whatsapp", created["whatsapp:shop2-2"]["id"]),
        ]
    )
    messages = await raw_database_of(store).messages.find({"direction": "in"}).to_list()
    assert len(messages) == 8  # the same Telegram message id in four bots: four messages
    for owner in paths:  # each answer went out through the bot and the number written to, once
        assert len(fakes[f"tg:{owner}"].sent("sendMessage")) == 1
        assert len(fakes[f"wa:{owner}"].sent()) == 1
    number_of = {o: numbers[o][1] for o in numbers}
    for owner, number in number_of.items():
        assert all(f"/{number}/messages" in r.path for r in fakes[f"wa:{owner}"].requests)

    # the reports count each inbox's conversations, the first inbox of a channel named by its channel
    today = utcnow().date()
    report = await build_report(store, "shop2", today, today, first_response_minutes=5, now=utcnow())
    assert sorted((row.key, row.name, row.channel, row.count) for row in report.by_inbox) == sorted(
        [
            ("first:telegram", "", "telegram", 1),
            ("first:whatsapp", "", "whatsapp", 1),
            (created["telegram:shop2-2"]["id"], "shop2-2 telegram", "telegram", 1),
            (created["whatsapp:shop2-2"]["id"], "shop2-2 whatsapp", "whatsapp", 1),
        ]
    )
    lines = report_csv(report).splitlines()
    assert "conversations_by_inbox,telegram: shop2-2 telegram,count,1" in lines
    assert "conversations_by_inbox,telegram: telegram (first inbox),count,1" in lines
    login, password = client.server.app[FIRST_ADMIN]  # the install's admin, in the default account
    assert (await log_in(client, login, password)).status == 303
    page = await (await client.get("/admin/reports")).text()
    assert 'id="by-inbox"' in page and "default-2 telegram" in page and "shop2-2" not in page

    # a bot is refused its neighbour's secret; an unknown inbox, or another account's, is a 404
    assert (await post_telegram(client, update, secret="shop2-tg", path=paths["default-2"][0])).status == 401
    assert (
        await post_telegram(client, update, secret="x", path="/webhooks/telegram/default/inb_nothing")
    ).status == 404
    cross = f"/webhooks/telegram/default/{created['telegram:shop2-2']['id']}"
    assert (await post_telegram(client, update, secret="shop2-2-tg", path=cross)).status == 404
    logged = [getattr(r, "omnirouter_fields", {}) for r in caplog.records if r.getMessage() == "channel.unknown_inbox"]
    assert {(f.get("account"), f.get("inbox")) for f in logged} >= {
        ("default", "inb_nothing"),
        ("default", created["telegram:shop2-2"]["id"]),
    }

    # Meta's subscription check of an inbox's own URL takes that inbox's verify token only
    wa_path = numbers["default-2"][0]
    check = {"hub.mode": "subscribe", "hub.challenge": "c-17"}
    answer = await client.get(wa_path, params={**check, "hub.verify_token": "verify-1002"})
    assert answer.status == 200 and await answer.text() == "c-17"
    for token in ("verify-2002", WA_VERIFY, ""):  # another inbox's, the install's, none
        assert (await client.get(wa_path, params={**check, "hub.verify_token": token})).status == 403

    # a disabled inbox takes nothing more (once its settings are read again: the refresh interval)
    wa_extra = created["whatsapp:default-2"]["id"]
    for inbox in (extra, wa_extra):
        answer = await client.patch(f"/api/accounts/default/inboxes/{inbox}", json={"disabled": True}, headers=INSTALL)
        assert answer.status == 200 and (await answer.json())["disabled"] is True
        assert (await store.inboxes.get_inbox(inbox)).disabled  # type: ignore[union-attr]
    late = {**update, "update_id": update["update_id"] + 1000}
    late_wa = json.dumps(_wa_message("1002", "wamid.LATE")).encode()

    async def both_refused() -> bool:
        telegram = await post_telegram(client, late, secret="default-2-tg", path=paths["default-2"][0])
        whatsapp = await post_whatsapp(client, late_wa, signature=sign(late_wa, "default-2-wa"), path=wa_path)
        return telegram.status == 404 and whatsapp.status == 404

    await wait_for(both_refused, timeout=30)
    assert (await client.get(wa_path, params={**check, "hub.verify_token": "verify-1002"})).status == 404


async def test_bad_inbox_settings_are_refused_with_a_clear_400(client: TestClient) -> None:
    for body, says in (
        ({"channel": "fax", "name": "x", "settings": {}}, "channel"),
        ({"channel": "telegram", "name": "x", "settings": {"token": "a b"}}, "settings"),
        ({"channel": "telegram", "name": "", "settings": {"token": "t", "webhook_secret": "s"}}, "name"),
        (
            {
                "channel": "telegram",
                "name": "x",
                "settings": {"token": "t", "webhook_secret": "s", "api_base": "http://10.0.0.1"},
            },
            "",
        ),
    ):
        answer = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
        assert answer.status == 400, (body, await answer.text())
        assert says in (await answer.json())["detail"]
    assert await client.server.app[STORE].inboxes.list_inboxes("default") == []


async def test_numbers_of_one_meta_app_share_its_one_callback_url(
    embedded: Any, db_name: str, start_client: Any, fakes: dict[str, Any]
) -> None:
    """Meta calls one URL for every number of an app: each change goes to the inbox of its number,
    if that inbox is the account's and under the same app secret."""
    settings = channel_settings(
        embedded.uri,
        db_name,
        graph_api=fakes["wa:default"].url,
        egress=reachable(fakes.values()),
        whatsapp={"access_token": fakes["wa:default"].token},
    )
    client: TestClient = await start_client(settings)
    store = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Shop two", utcnow())
    same_app = await store.inboxes.create_inbox(
        "default",
        "whatsapp",
        "second number",
        _whatsapp(fakes["wa:default-2"], "1002", WA_SECRET),
        utcnow(),
        "whatsapp:1002",
    )
    other_app = await store.inboxes.create_inbox(
        "default",
        "whatsapp",
        "other app",
        _whatsapp(fakes["wa:shop2-2"], "1003", "another-app"),
        utcnow(),
        "whatsapp:1003",
    )
    elsewhere = await store.inboxes.create_inbox(  # another account's number, even under this app's secret
        "shop2", "whatsapp", "theirs", _whatsapp(fakes["wa:shop2"], "2001", WA_SECRET), utcnow(), "whatsapp:2001"
    )
    assert same_app and other_app and elsewhere
    body = _wa_message(PHONE_NUMBER_ID, "wamid.APP0")
    for n, number in enumerate(("1002", "1003", "2001"), start=1):
        entry = _wa_message(number, f"wamid.APP{n}")["entry"][0]
        entry["id"] = f"WABA{n}"
        body["entry"].append(entry)
    raw = json.dumps(body).encode()
    assert (await post_whatsapp(client, raw, signature=sign(raw, WA_SECRET))).status == 200

    async def both_answered() -> bool:
        return len(fakes["wa:default"].sent()) >= 1 and len(fakes["wa:default-2"].sent()) >= 1

    await wait_for(both_answered, timeout=30)
    threads = await raw_database_of(store).threads.find({}).to_list()
    assert sorted((t["account_id"], t.get("inbox_id") or "") for t in threads) == [
        ("default", ""),
        ("default", same_app.id),
    ]
    assert not fakes["wa:shop2-2"].sent() and not fakes["wa:shop2"].sent()
