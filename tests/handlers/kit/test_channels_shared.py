"""What Telegram and WhatsApp share: one contact per phone number across channels, a store outage
answered with 503 on both webhooks, and channels that refuse to start half-configured."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.app import create_app
from bot.handlers.channels import enabled_channels
from bot.handlers.whatsapp.settings import WhatsappSettings
from bot.keys import ADAPTERS, STORE
from bot.setting_fields import SettingsError
from bot.settings import Settings, load_settings
from conversations.embedded import EmbeddedMongo
from tests import factories
from tests.conftest import make_settings
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings, fixture, post_telegram, post_whatsapp
from tests.router.test_inbound import wait_for


def whatsapp_from(number: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("whatsapp", "text"))
    value = payload["entry"][0]["changes"][0]["value"]
    value["contacts"][0]["wa_id"] = number
    value["messages"][0].update({"from": number, "id": f"wamid.from{number}"})
    return payload


async def test_one_phone_number_is_one_contact_across_channels(router: TestClient) -> None:
    store = router.server.app[STORE]
    # Anna writes on WhatsApp first, then on Telegram, and shares her own number there
    await post_whatsapp(router, whatsapp_from("37120001234"))
    await post_telegram(router, fixture("telegram", "text"))
    contacts = {m.channel: m.contact_id for m in await factories.messages(store, direction="in")}
    assert contacts["whatsapp"] != contacts["telegram"]  # nothing says they are one person yet
    await post_telegram(router, fixture("telegram", "contact_own"))
    owners = {m.contact_id for m in await factories.messages(store, direction="in")}
    assert owners == {contacts["whatsapp"]}, "the Telegram contact merged into the one who had the number"
    contact = await store.contacts.get_contact(contacts["whatsapp"])
    assert contact is not None and {(i.channel, i.address) for i in contact.identities} == {
        ("whatsapp", "37120001234"),
        ("telegram", "5512345678"),
    }
    links = await store.contacts.identities_of("default", contacts["whatsapp"])
    assert {i.key for i in links} == {"whatsapp:37120001234", "telegram:5512345678", "phone:+37120001234"}
    assert await store.contacts.identities_of("default", contacts["telegram"]) == []  # every link moved over
    merged = await store.privacy.contact_scope("default", contacts["telegram"])  # merges are followed
    assert merged is not None and merged.contact_id == contacts["whatsapp"]
    assert merged.contact_ids == (contacts["whatsapp"], contacts["telegram"])
    threads = await factories.threads(store)
    assert {t.contact_id for t in threads} == {contacts["whatsapp"]} and len(threads) == 2
    # and the next Telegram message lands in the same, still open, Telegram thread
    again = copy.deepcopy(fixture("telegram", "text"))
    again["update_id"] += 100
    again["message"]["message_id"] = 300
    await post_telegram(router, again)
    assert len(await factories.threads(store)) == 2


async def test_a_phone_number_first_seen_on_telegram_is_found_from_whatsapp(router: TestClient) -> None:
    store = router.server.app[STORE]
    await post_telegram(router, fixture("telegram", "contact_own"))
    await post_whatsapp(router, whatsapp_from("37120001234"))
    assert len({m.contact_id for m in await factories.messages(store, direction="in")}) == 1


async def test_a_store_outage_is_a_503_and_the_redelivery_is_recorded_once(
    tmp_path: Path, start_client: Any, bot_api: FakeBotAPI, graph_api: FakeGraphAPI
) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    try:
        client = await start_client(
            channel_settings(server.uri, "outage", telegram_api=bot_api.url, graph_api=graph_api.url)
        )
        await server.stop()
        for response in (
            await post_telegram(client, fixture("telegram", "text")),
            await post_whatsapp(client, fixture("whatsapp", "batched")),
        ):
            assert response.status == 503 and response.headers["Retry-After"]
            assert (await response.json())["error"] == "store_unavailable"
        await server.start()
        await wait_for(lambda: _healthy(client), timeout=15)
        assert (await (await post_telegram(client, fixture("telegram", "text"))).json())["recorded"] == 1
        assert (await (await post_whatsapp(client, fixture("whatsapp", "batched"))).json())["recorded"] == 4
        assert len(await factories.messages(client.server.app[STORE], direction="in")) == 5
    finally:
        await server.stop()


async def _healthy(client: TestClient) -> bool:
    return (await client.get("/healthz")).status == 200


def test_channels_are_enabled_by_their_settings(settings: Settings) -> None:
    assert enabled_channels(settings) == ["webchat"]
    on = settings.replace("telegram", token="1:x", webhook_secret="s").replace("whatsapp", phone_number_id="1")
    assert enabled_channels(on) == ["webchat", "telegram", "whatsapp"]


@pytest.mark.parametrize(
    ("section", "values", "message"),
    [
        ("telegram", {"token": "1:x"}, "telegram.webhook_secret must be set in webhook mode"),
        ("whatsapp", {"phone_number_id": "1", "access_token": "t"}, "whatsapp.app_secret, verify_token must be set"),
    ],
)
def test_a_half_configured_channel_stops_start_up_with_one_line(
    embedded: EmbeddedMongo, section: str, values: dict[str, Any], message: str
) -> None:
    settings = make_settings(embedded.uri, "x", **{section: values})
    with pytest.raises(SettingsError, match=message):
        create_app(settings)


def test_polling_mode_needs_no_secret(embedded: EmbeddedMongo) -> None:
    settings = make_settings(embedded.uri, "x", telegram={"token": "1:x", "mode": "polling"})
    assert "telegram" in create_app(settings)[ADAPTERS]


def test_a_bad_webhook_secret_is_named(tmp_path: Path) -> None:
    path = tmp_path / "o.toml"
    path.write_text('[telegram]\nwebhook_secret = "has spaces"\n')
    with pytest.raises(SettingsError, match=r"telegram.webhook_secret .* must be 1-256 characters"):
        load_settings(path, env={})


def test_templates_are_tables_in_the_file_and_json_in_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "o.toml"
    path.write_text('[whatsapp.templates.order_update]\nlanguage = "en_US"\nparameters = ["name", "order"]\n')
    assert load_settings(path, env={}).section(WhatsappSettings).templates == {
        "order_update": {"language": "en_US", "parameters": ["name", "order"]}
    }
    env = {"OMNIROUTER_WHATSAPP_TEMPLATES": '{"hello": {"language": "lv"}}'}
    assert load_settings(None, env=env).section(WhatsappSettings).templates == {"hello": {"language": "lv"}}
    with pytest.raises(SettingsError, match="template 'x' needs a language"):
        load_settings(None, env={"OMNIROUTER_WHATSAPP_TEMPLATES": '{"x": {}}'})
    with pytest.raises(SettingsError, match="expected a table"):
        load_settings(None, env={"OMNIROUTER_WHATSAPP_TEMPLATES": "not json"})
