"""One egress guard per purpose: an account's admin cannot use a host the operator typed for one
purpose (the Rasa server, the install's Bot API or Graph API server) through another (its webhooks,
its own Telegram bot); a host the operator allows without a port is allowed on 80 and 443 only; the
guards are built once, when the router starts. Driven through the API as an account's admin would,
against the real provider fakes and a canary on 127.0.0.1 that must receive nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import EGRESS, PIPELINE, STORE
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import OutboxState
from conversations.traffic import Identity, Inbound
from tests import factories, traffic
from tests.fakes.listener import Listener
from tests.fakes.rasa import FakeRasa
from tests.hostile.conftest import every_channel, post
from tests.hostile.test_ssrf import TG_SHOP2, Canary, canary, shop2_admin_token  # noqa: F401  (canary: a fixture)
from tests.router.test_inbound import wait_for


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    server = FakeRasa()
    await server.server.start_server()
    yield server
    await server.server.close()


async def shop2_customer_writes(client: TestClient, text: str) -> None:
    """A customer of account shop2 writes (a new thread: a ``thread.created`` event for its webhooks)."""
    _recorded, task = await client.server.app[PIPELINE].receive(
        Inbound(
            account_id="shop2",
            channel="webchat",
            external_id=f"shop2:{text}",
            sender=Identity("webchat", "v-shop2"),
            text=text,
        )
    )
    if task is not None:
        await task


async def test_a_webhook_cannot_reach_the_install_s_rasa_or_provider_api_servers(
    embedded: EmbeddedMongo, db_name: str, providers: Any, start_client: Any, rasa: FakeRasa
) -> None:
    bot_api, graph_api, twilio = providers
    client: TestClient = await start_client(
        every_channel(
            embedded.uri,
            db_name,
            bot_api.url,
            graph_api.url,
            twilio.url,
            nlu={"engine": "rasa", "rasa_url": rasa.url},
            webhooks={"poll_interval": 0.05},
        )
    )
    headers = await shop2_admin_token(client)
    for url in (
        f"{rasa.url}/model/train",
        f"{bot_api.url}/bot1:x/sendMessage",
        f"{graph_api.url}/v23.0/x/messages",
        f"{twilio.url}/2010-04-01/Accounts",
    ):
        response = await client.post("/api/webhooks", headers=headers, json={"url": url})
        assert response.status == 400, (url, await response.text())
        assert "is not a public address (loopback)" in (await response.json())["detail"]
    rasa_port = rasa.url.rsplit(":", 1)[1]
    named = await client.post(
        "/api/webhooks",
        headers=headers,
        json={"url": f"http://localhost:{rasa_port}/model/parse", "events": ["thread.created"]},
    )
    assert named.status == 201  # a name is checked when it is resolved, at delivery
    sub_id = (await named.json())["subscription"]["id"]
    await shop2_customer_writes(client, "hello")

    async def dead() -> bool:
        items = (await (await client.get(f"/api/webhooks/{sub_id}/deliveries", headers=headers)).json())["items"]
        return bool(items) and items[0]["state"] == "dead"

    await wait_for(dead, timeout=10)
    items = (await (await client.get(f"/api/webhooks/{sub_id}/deliveries", headers=headers)).json())["items"]
    assert "not a public address (loopback)" in items[0]["last_error"]
    # Rasa got the router's own call for the customer's words (its guard allows it), no webhook body
    assert [request["body"] for request in rasa.requests] == [{"text": "hello"}]


async def test_an_account_s_bot_cannot_be_sent_on_to_the_install_s_whatsapp_server(
    embedded: EmbeddedMongo, db_name: str, providers: Any, start_client: Any, canary: Canary
) -> None:
    """The operator allows a local Bot API server for accounts; it answers with a redirect to the
    install's own WhatsApp server (here the canary): the Telegram guard does not follow it there."""
    redirector = Listener(redirect_to=canary.url)
    await redirector.start()
    try:
        bot_api, _, twilio = providers
        client: TestClient = await start_client(
            every_channel(
                embedded.uri,
                db_name,
                bot_api.url,
                canary.url,
                twilio.url,
                egress={"allowed_destinations": f"localhost:{redirector.port}"},
            )
        )
        headers = await shop2_admin_token(client)
        response = await client.put(
            "/api/accounts/shop2/channels/telegram", headers=headers, json={**TG_SHOP2, "api_base": canary.url}
        )
        assert (
            response.status == 400
            and f"{canary.url.removeprefix('http://')} is not a host this install allows"
            in (await response.json())["detail"]
        )
        response = await client.put(
            "/api/accounts/shop2/channels/telegram",
            headers=headers,
            json={**TG_SHOP2, "api_base": f"http://localhost:{redirector.port}"},
        )
        assert response.status == 200, await response.text()
        tg = traffic.telegram_text(1, 7171)
        await post(
            client,
            replace(
                tg,
                path="/webhooks/telegram/shop2",
                headers={**tg.headers, "X-Telegram-Bot-Api-Secret-Token": "shop2-secret"},
            ),
        )
        store: Repositories = client.server.app[STORE]

        async def failed() -> bool:
            return len(await factories.outbox(store, "shop2", OutboxState.DEAD)) == 1

        await wait_for(failed, timeout=10)
        assert redirector.hits and canary.hits == []
        [item] = await factories.outbox(store, "shop2")
        assert "127.0.0.1 is not a public address (loopback)" in (item.last_error or ""), item.last_error
    finally:
        await redirector.stop()


async def test_a_host_allowed_without_a_port_is_allowed_on_80_and_443_only(
    embedded: EmbeddedMongo, db_name: str, providers: Any, start_client: Any, canary: Canary
) -> None:
    bot_api, graph_api, twilio = providers
    client: TestClient = await start_client(
        every_channel(
            embedded.uri, db_name, bot_api.url, graph_api.url, twilio.url, egress={"allowed_destinations": "localhost"}
        )
    )
    headers = await shop2_admin_token(client)
    port = canary.url.rsplit(":", 1)[1]
    for url, status in (
        (f"http://localhost:{port}", 400),
        ("http://localhost:27017", 400),
        ("https://localhost:8443", 400),
        ("https://localhost", 200),
        ("http://localhost/", 200),
        ("https://localhost:443/bot", 200),
    ):
        response = await client.put(
            "/api/accounts/shop2/channels/telegram", headers=headers, json={**TG_SHOP2, "api_base": url}
        )
        assert response.status == status, (url, await response.text())
    response = await client.put(
        "/api/accounts/shop2/channels/telegram",
        headers=headers,
        json={**TG_SHOP2, "api_base": "http://[FD00:0::5]:8081"},
    )
    detail = (await response.json())["detail"]  # an IPv6 host and its port, written so that one can tell them apart
    assert response.status == 400 and detail.startswith("channels.telegram.api_base: [fd00::5]:8081 is not a host"), (
        detail
    )
    assert canary.hits == []


async def test_the_guards_are_built_once_when_the_router_starts(
    embedded: EmbeddedMongo, db_name: str, providers: Any, start_client: Any
) -> None:
    """Checking a URL uses the guards the router built at start, not new ones per request."""
    bot_api, graph_api, twilio = providers
    client: TestClient = await start_client(
        every_channel(
            embedded.uri, db_name, bot_api.url, graph_api.url, twilio.url, egress={"allowed_destinations": "crm.lan"}
        )
    )
    guards = client.server.app[EGRESS]
    headers = await shop2_admin_token(client)
    for _ in range(3):
        response = await client.put(
            "/api/accounts/shop2/channels/telegram", headers=headers, json={**TG_SHOP2, "api_base": "https://crm.lan"}
        )
        assert response.status == 200, await response.text()
        response = await client.post("/api/webhooks", headers=headers, json={"url": "https://crm.lan/hook"})
        assert response.status == 201, await response.text()
    assert client.server.app[EGRESS] is guards
