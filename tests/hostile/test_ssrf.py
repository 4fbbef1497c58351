"""No request of the router goes where an account or a payload points it (SSRF): not a WhatsApp
media URL the Graph API names, an MMS media URL or an image in a customer's HTML mail; not an
account's own Telegram or WhatsApp ``api_base`` aimed at the router's own API or the network it runs
in (refused when saved, and again when a stored one is used: nothing is sent); not a redirect from
an allowed host to one that is not; not a redirect from the Rasa server. A canary listening on
127.0.0.1 must receive nothing."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.handlers.kit.egress import Egress
from bot.keys import ADAPTERS, STORE
from bot.nlu.remote import NluUnavailable, RasaClient
from bot.services.agents import add_agent
from bot.web.api.kit import issue_token
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests import traffic
from tests.conftest import make_settings, raw_database_of
from tests.fakes import LocalServer
from tests.fakes.graph_api import ACCESS_TOKEN, PHONE_NUMBER_ID
from tests.fakes.listener import Listener
from tests.fakes.telegram_api import TOKEN
from tests.fakes.twilio import fixture as twilio_fixture
from tests.handlers.channels import WA_SECRET, fixture
from tests.hostile.conftest import every_channel, post
from tests.router.test_inbound import wait_for


class Canary(LocalServer):
    """An internal service the router must never be tricked into calling."""

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{tail:.*}", self._hit)

    async def _hit(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        return web.Response(body=b"internal secrets")


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    server = Canary()
    await server.start()
    yield server
    await server.stop()


def private_urls(canary: Canary) -> list[str]:
    port = canary.url.rsplit(":", 1)[1]
    return [
        f"{canary.url}/steal",
        f"https://127.0.0.1:{port}/steal",
        f"https://localhost:{port}/steal",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/x",
        "https://[::1]:9/x",
        "https://0.0.0.0/x",
        "file:///etc/passwd",
        "gopher://127.0.0.1:25/x",
        "https://127.0.0.1:notaport/x",
    ]


async def test_whatsapp_media_urls_on_private_addresses_are_not_fetched(
    everything: TestClient, providers: Any, canary: Canary
) -> None:
    graph_api = providers[1]
    for n, url in enumerate(private_urls(canary)):
        media_id = f"media-{n}"
        graph_api.media[media_id] = (b"picture", "image/png")
        graph_api.media_urls[media_id] = url
        payload = copy.deepcopy(fixture("whatsapp", "image"))
        msg = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        msg.update(id=f"wamid.SSRF{n}", image={**msg["image"], "id": media_id})
        assert (await post(everything, traffic.whatsapp(payload))).status == 200
        stored = await raw_database_of(everything.server.app[STORE]).messages.find_one(
            {"external_id": f"wamid.SSRF{n}"}
        )
        response = await everything.get(f"/api/messages/{stored['_id']}/attachments/0")
        assert response.status == 502, (url, response.status)
        assert (await response.json())["error"] == "provider_error"
    assert canary.hits == []
    graph_api.media["fine"] = (b"picture", "image/png")  # the provider's own media server still works
    payload = copy.deepcopy(fixture("whatsapp", "image"))
    msg = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.update(id="wamid.FINE", image={**msg["image"], "id": "fine"})
    await post(everything, traffic.whatsapp(payload))
    stored = await raw_database_of(everything.server.app[STORE]).messages.find_one({"external_id": "wamid.FINE"})
    assert await (await everything.get(f"/api/messages/{stored['_id']}/attachments/0")).read() == b"picture"


async def test_mms_media_are_never_fetched_from_the_host_their_url_names(
    everything: TestClient, canary: Canary
) -> None:
    params = twilio_fixture("sms", "inbound_mms", MediaUrl0=f"{canary.url}/steal", NumMedia="1")
    assert (await post(everything, traffic.twilio("/webhooks/sms", params))).status == 200
    stored = await raw_database_of(everything.server.app[STORE]).messages.find_one({"direction": "in"})
    assert stored["attachments"][0]["url"] == f"{canary.url}/steal"
    response = await everything.get(f"/api/messages/{stored['_id']}/attachments/0")
    assert response.status == 409 and canary.hits == []
    media_path = urlsplit(twilio_fixture("sms", "inbound_mms")["MediaUrl0"]).path  # Twilio's own path, our host
    params = twilio_fixture("sms", "inbound_mms", MediaUrl0=canary.url + media_path, NumMedia="1", MessageSid="MM2")
    assert (await post(everything, traffic.twilio("/webhooks/sms", params))).status == 200
    stored = await raw_database_of(everything.server.app[STORE]).messages.find_one({"external_id": "MM2"})
    response = await everything.get(f"/api/messages/{stored['_id']}/attachments/0")
    assert response.status == 502 and canary.hits == []  # asked of twilio.api_base, which has no such file


async def test_images_in_html_mail_are_not_fetched(everything: TestClient, canary: Canary) -> None:
    raw = (
        b"From: Ann <ann@example.net>\r\nTo: support@shop.example\r\nSubject: look\r\nMessage-ID: <h@x>\r\n"
        b'Content-Type: text/html\r\n\r\n<p>see</p><img src="%s/img"><link rel=stylesheet href="%s/css">'
        b'<iframe src="%s/frame"></iframe><script src="%s/js"></script>' % ((canary.url.encode(),) * 4)
    )
    await everything.server.app[ADAPTERS]["email"].ingest(raw)  # type: ignore[attr-defined]
    stored = await raw_database_of(everything.server.app[STORE]).messages.find_one({"direction": "in"})
    assert stored["text"] == "see" and canary.hits == []


# --- an account's own API server (the egress guard) --------------------------------------------

TG_SHOP2 = {"token": TOKEN, "webhook_secret": "shop2-secret"}
WA_SHOP2 = {
    "phone_number_id": PHONE_NUMBER_ID,
    "access_token": ACCESS_TOKEN,
    "app_secret": WA_SECRET,
    "verify_token": "shop2-verify",
}


async def shop2_admin_token(client: TestClient) -> dict[str, str]:
    """The Authorization header of an API token of account shop2 (its admin's powers, not the install's)."""
    store: Repositories = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Second shop", utcnow())
    return {"Authorization": f"Bearer {await issue_token(store, 'shop2', 'shop2 admin', ['read', 'write'], 'test')}"}


def hostile_api_bases(client: TestClient, canary: Canary) -> list[str]:
    port = canary.url.rsplit(":", 1)[1]
    return [
        f"http://127.0.0.1:{client.server.port}/api/threads/thr_x/resolve?",
        canary.url,
        f"http://localhost:{port}",
        f"http://[::ffff:127.0.0.1]:{port}",
        "http://169.254.169.254/latest",
        "https://10.0.0.1",
        "https://api.telegram.org.evil.example",
    ]


async def test_an_account_cannot_set_its_api_base_to_the_router_or_an_internal_address(
    everything: TestClient, providers: Any, canary: Canary
) -> None:
    headers = await shop2_admin_token(everything)
    for channel, config in (("telegram", TG_SHOP2), ("whatsapp", WA_SHOP2)):
        for url in hostile_api_bases(everything, canary):
            response = await everything.put(
                f"/api/accounts/shop2/channels/{channel}", headers=headers, json={**config, "api_base": url}
            )
            assert response.status == 400, (channel, url, response.status)
            body = await response.json()
            assert body["error"] == "api_base_not_allowed" and "is not a host this install allows" in body["detail"]
        assert (await everything.server.app[STORE].accounts.get_account("shop2")).channels == {}  # type: ignore[union-attr]
    allowed = {
        "telegram": ["https://api.telegram.org", providers[0].url],  # the provider's, the install's own
        "whatsapp": ["https://graph.facebook.com/", providers[1].url],
    }
    own_number = {**WA_SHOP2, "phone_number_id": "106540352249999"}  # the install's is no account's to take
    for channel, config in (("telegram", TG_SHOP2), ("whatsapp", own_number)):
        for url in allowed[channel]:
            response = await everything.put(
                f"/api/accounts/shop2/channels/{channel}", headers=headers, json={**config, "api_base": url}
            )
            assert response.status == 200, (url, await response.text())
    assert canary.hits == []


async def test_the_account_page_refuses_such_an_api_base_in_english_and_latvian(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, canary: Canary
) -> None:
    from tests.web.admin.test_accounts import Browser

    client: TestClient = await start_client(make_settings(embedded.uri, db_name, telegram={"for_accounts": True}))
    store: Repositories = client.server.app[STORE]
    await store.accounts.ensure_account("shop2", "Second shop", utcnow())
    agent, password = await add_agent(store, "shop2", "boss", role=Role.ADMIN, password="boss-password-1")
    assert agent is not None
    admin = Browser(client)
    try:
        assert (await admin.log_in("shop2", "boss", password)).status == 303
        form = {**TG_SHOP2, "api_base": canary.url}
        status, page = await admin.post("/admin/account/channels/telegram", form, "/admin/account")
        assert status == 400 and "is not a server this install allows" in page and "https://api.telegram.org" in page
        await store.agents.update_agent(agent.id, lang="lv")
        status, page = await admin.post("/admin/account/channels/telegram", form, "/admin/account")
        assert status == 400 and "nav serveris, ko šī instalācija atļauj" in page
    finally:
        await admin.close()
    assert (await store.accounts.get_account("shop2")).channels == {} and canary.hits == []  # type: ignore[union-attr]


async def test_a_stored_api_base_an_older_release_accepted_sends_nothing(
    everything: TestClient, providers: Any, canary: Canary
) -> None:
    """The issue's attack: the bot's reply POSTed to the router's own API, resolving another account's thread."""
    store: Repositories = everything.server.app[STORE]
    assert (await post(everything, traffic.telegram_text(1, 4242))).status == 200  # a thread of the default account
    victim = await raw_database_of(store).threads.find_one({"account_id": "default"})
    await store.accounts.ensure_account("shop2", "Second shop", utcnow())
    own_api = f"http://127.0.0.1:{everything.server.port}/api/threads/{victim['_id']}/resolve?"
    await store.accounts.set_account_channel("shop2", "telegram", {**TG_SHOP2, "api_base": own_api})
    await store.accounts.set_account_channel("shop2", "whatsapp", {**WA_SHOP2, "api_base": canary.url})

    tg = traffic.telegram_text(2, 5151)
    assert (
        await post(
            everything,
            replace(
                tg,
                path="/webhooks/telegram/shop2",
                headers={**tg.headers, "X-Telegram-Bot-Api-Secret-Token": "shop2-secret"},
            ),
        )
    ).status == 200
    wa = traffic.whatsapp_text(3, "37120000003")
    assert (await post(everything, replace(wa, path="/webhooks/whatsapp/shop2"))).status == 200

    async def both_failed() -> bool:
        return await raw_database_of(store).messages.count_documents({"account_id": "shop2", "send.state": "dead"}) == 2

    await wait_for(both_failed, timeout=10)
    assert (await raw_database_of(store).threads.find_one({"_id": victim["_id"]}))["status"] != "resolved"
    assert canary.hits == []
    for message in (
        await raw_database_of(store).messages.find({"account_id": "shop2", "send": {"$exists": True}}).to_list()
    ):
        item = message["send"]
        assert item["attempts"] == 1 and "is not a host this install allows" in item["last_error"], item
        assert "nothing sent" in item["last_error"]


async def test_a_redirect_from_an_allowed_host_to_one_that_is_not_sends_nothing(
    embedded: EmbeddedMongo, db_name: str, providers: Any, start_client: Any, canary: Canary
) -> None:
    redirector = Listener(redirect_to=canary.url)  # a local Bot API server the operator allows by name
    await redirector.start()
    try:
        bot_api, graph_api, twilio = providers
        client: TestClient = await start_client(
            every_channel(
                embedded.uri,
                db_name,
                bot_api.url,
                graph_api.url,
                twilio.url,
                egress={"allowed_destinations": f"localhost:{redirector.port}"},
            )
        )
        headers = await shop2_admin_token(client)
        response = await client.put(
            "/api/accounts/shop2/channels/telegram",
            headers=headers,
            json={**TG_SHOP2, "api_base": f"http://localhost:{redirector.port}"},
        )
        assert response.status == 200, await response.text()
        tg = traffic.telegram_text(1, 6161)
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
            return (
                await raw_database_of(store).messages.count_documents({"account_id": "shop2", "send.state": "dead"})
                == 1
            )

        await wait_for(failed, timeout=10)
        assert redirector.hits and canary.hits == []
        item = (await raw_database_of(store).messages.find_one({"account_id": "shop2", "send": {"$exists": True}}))[
            "send"
        ]
        assert "127.0.0.1 is not a public address (loopback)" in item["last_error"], item["last_error"]
    finally:
        await redirector.stop()


# --- the remote Rasa server -------------------------------------------------------------------


async def test_rasa_is_reached_at_the_host_the_operator_named_and_not_past_its_redirects(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, canary: Canary
) -> None:
    from tests.fakes.rasa import FakeRasa
    from tests.nlu.test_policy import say

    rasa = FakeRasa()
    await rasa.server.start_server()
    redirector = Listener(redirect_to=canary.url)
    await redirector.start()
    try:
        rasa.intents["hello"] = ("greet", 0.97)
        named = make_settings(
            embedded.uri, db_name, nlu={"engine": "rasa", "rasa_url": f"http://localhost:{rasa.server.port}"}
        )
        client = await start_client(named)
        async with client.ws_connect("/webchat/ws") as ws:
            await ws.receive_json()
            decision, _ = await say(ws, "r1", "hello")
        assert (decision["action"], decision["reason"]) == ("answered", "greet") and len(rasa.requests) == 1

        moved = make_settings(
            embedded.uri, db_name, nlu={"engine": "rasa", "rasa_url": f"http://localhost:{redirector.port}"}
        )
        client = await start_client(moved)
        async with client.ws_connect("/webchat/ws") as ws:
            await ws.receive_json()
            decision, _ = await say(ws, "r2", "hello")
        assert (decision["action"], decision["reason"]) == ("queued", "nlu_unavailable")
        assert redirector.hits == ["/model/parse"] and canary.hits == []
    finally:
        await redirector.stop()
        await rasa.server.close()


async def test_a_rasa_client_refuses_a_private_address_the_operator_did_not_allow() -> None:
    from tests.fakes.rasa import FakeRasa

    rasa = FakeRasa()
    await rasa.server.start_server()
    client = RasaClient(rasa.url, 2.0, Egress().session)
    try:
        with pytest.raises(NluUnavailable, match="not a public address"):
            await client.parse("hello")
        assert rasa.requests == []
    finally:
        await client.close()
        await rasa.server.close()
