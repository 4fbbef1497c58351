"""Media URLs pointing at private addresses are never fetched (SSRF): not the WhatsApp media URL
the Graph API names, not an MMS media URL, not an image in a customer's HTML mail."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bot.keys import ADAPTERS, STORE
from tests import traffic
from tests.fakes import LocalServer
from tests.fakes.twilio import fixture as twilio_fixture
from tests.handlers.channels import fixture
from tests.hostile.conftest import post


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
    return [f"{canary.url}/steal", f"https://127.0.0.1:{port}/steal", f"https://localhost:{port}/steal",
            "https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/x", "https://[::1]:9/x",
            "https://0.0.0.0/x", "file:///etc/passwd", "gopher://127.0.0.1:25/x", "https://127.0.0.1:notaport/x"]


async def test_whatsapp_media_urls_on_private_addresses_are_not_fetched(everything: TestClient, providers: Any,
                                                                         canary: Canary) -> None:
    graph_api = providers[1]
    for n, url in enumerate(private_urls(canary)):
        media_id = f"media-{n}"
        graph_api.media[media_id] = (b"picture", "image/png")
        graph_api.media_urls[media_id] = url
        payload = copy.deepcopy(fixture("whatsapp", "image"))
        msg = payload["entry"][0]["changes"][0]["value"]["messages"][0]
        msg.update(id=f"wamid.SSRF{n}", image={**msg["image"], "id": media_id})
        assert (await post(everything, traffic.whatsapp(payload))).status == 200
        stored = await everything.server.app[STORE]._db.messages.find_one({"external_id": f"wamid.SSRF{n}"})
        response = await everything.get(f"/api/messages/{stored['_id']}/attachments/0")
        assert response.status == 502, (url, response.status)
        assert (await response.json())["error"] == "provider_error"
    assert canary.hits == []
    graph_api.media["fine"] = (b"picture", "image/png")  # the provider's own media server still works
    payload = copy.deepcopy(fixture("whatsapp", "image"))
    msg = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    msg.update(id="wamid.FINE", image={**msg["image"], "id": "fine"})
    await post(everything, traffic.whatsapp(payload))
    stored = await everything.server.app[STORE]._db.messages.find_one({"external_id": "wamid.FINE"})
    assert await (await everything.get(f"/api/messages/{stored['_id']}/attachments/0")).read() == b"picture"


async def test_mms_media_urls_are_kept_not_fetched(everything: TestClient, canary: Canary) -> None:
    params = twilio_fixture("sms", "inbound_mms", MediaUrl0=f"{canary.url}/steal", NumMedia="1")
    assert (await post(everything, traffic.twilio("/webhooks/sms", params))).status == 200
    stored = await everything.server.app[STORE]._db.messages.find_one({"direction": "in"})
    assert stored["attachments"][0]["url"] == f"{canary.url}/steal"
    response = await everything.get(f"/api/messages/{stored['_id']}/attachments/0")
    assert response.status == 409 and canary.hits == []


async def test_images_in_html_mail_are_not_fetched(everything: TestClient, canary: Canary) -> None:
    raw = (b"From: Ann <ann@example.net>\r\nTo: support@shop.example\r\nSubject: look\r\nMessage-ID: <h@x>\r\n"
           b"Content-Type: text/html\r\n\r\n<p>see</p><img src=\"%s/img\"><link rel=stylesheet href=\"%s/css\">"
           b"<iframe src=\"%s/frame\"></iframe><script src=\"%s/js\"></script>" % ((canary.url.encode(),) * 4))
    await everything.server.app[ADAPTERS]["email"].ingest(raw)  # type: ignore[attr-defined]
    stored = await everything.server.app[STORE]._db.messages.find_one({"direction": "in"})
    assert stored["text"] == "see" and canary.hits == []
