"""A web chat inbox's own pre-chat form, set through the API (``settings.prechat``): its widget
and its socket ask its fields, the account's first web chat asks the account's, the answers land
on the contact as the account's form's do; left out or ``null``, the inbox asks the account's.
A form that cannot be kept is a 400 in words."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests.conftest import TEST_API_TOKEN
from tests.handlers.webchat.test_visitor_forms import PRIVACY, answer, ask_prechat

INSTALL = {"Authorization": f"Bearer {TEST_API_TOKEN}"}
OWN = {"name": False, "email": False, "phone": True, "consent": False}  # the inbox asks a phone number only


async def web_chat(client: TestClient, **settings: Any) -> dict[str, Any]:
    body = {"channel": "webchat", "name": "Support chat", "settings": settings}
    made = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
    assert made.status == 201, await made.text()
    return dict(await made.json())


async def asked(client: TestClient, inbox_id: str | None) -> Any:
    """The pre-chat form the widget of the web chat ``inbox_id`` (``None``: the account's first) shows."""
    params = {"account": "default", **({"inbox": inbox_id} if inbox_id else {})}
    config = await client.get("/widget/config", params=params)
    assert config.status == 200
    return (await config.json())["prechat"]


async def patch(client: TestClient, inbox_id: str, prechat: Any) -> Any:
    body = {"settings": {"prechat": prechat}}
    return await client.patch(f"/api/accounts/default/inboxes/{inbox_id}", json=body, headers=INSTALL)


async def test_an_inbox_asks_its_own_form_and_the_first_web_chat_the_accounts(client: TestClient) -> None:
    await ask_prechat(client)  # the account's: name, e-mail and consent
    inbox = await web_chat(client, prechat=OWN)
    assert inbox["settings"]["prechat"] == {"enabled": True, **OWN, "privacy_url": ""}
    assert await asked(client, inbox["id"]) == {"fields": ["phone"], "consent": False, "privacy_url": ""}
    assert await asked(client, None) == {"fields": ["name", "email"], "consent": True, "privacy_url": PRIVACY}
    plain = await web_chat(client)  # none of its own: the account's
    assert await asked(client, plain["id"]) == await asked(client, None)

    store = client.server.app[STORE]
    async with client.ws_connect("/webchat/ws", params={"account": "default", "inbox": inbox["id"]}) as ws:
        welcome = await ws.receive_json()
        assert welcome["prechat"] is True
        wrong = await answer(ws, {"type": "prechat", "name": "Dana"})  # the account's fields are not this form's
        assert (wrong["field"], wrong["code"]) == ("phone", "bad_phone")
        assert await answer(ws, {"type": "prechat", "phone": "+371 2000 0000"}) == {
            "type": "prechat_done",
            "name": None,
        }
    visitor = welcome["visitor_token"].split(".")[0]
    contact_id = await store.contacts.contact_by_identity("default", "webchat", visitor)
    contact = await store.contacts.get_contact(contact_id)
    assert contact is not None and contact.prechat is not None and contact.prechat["fields"] == ["phone"]
    assert await store.contacts.contact_by_identity("default", "phone", "+37120000000") == contact_id


async def test_a_change_turns_the_inboxs_form_off_and_null_gives_it_the_accounts_again(client: TestClient) -> None:
    await ask_prechat(client)
    inbox = await web_chat(client)
    changed = await patch(client, inbox["id"], {**OWN, "consent": True, "privacy_url": PRIVACY})
    assert changed.status == 200, await changed.text()
    assert (await changed.json())["settings"]["prechat"] == {
        "enabled": True,
        **OWN,
        "consent": True,
        "privacy_url": PRIVACY,
    }
    assert await asked(client, inbox["id"]) == {"fields": ["phone"], "consent": True, "privacy_url": PRIVACY}

    changed = await patch(client, inbox["id"], {"enabled": False})  # this web chat asks nothing
    assert changed.status == 200 and (await changed.json())["settings"]["prechat"]["enabled"] is False
    assert await asked(client, inbox["id"]) is None
    async with client.ws_connect("/webchat/ws", params={"account": "default", "inbox": inbox["id"]}) as ws:
        assert (await ws.receive_json())["prechat"] is False

    changed = await patch(client, inbox["id"], None)
    assert changed.status == 200 and (await changed.json())["settings"]["prechat"] is None
    assert await asked(client, inbox["id"]) == await asked(client, None)


async def test_a_form_that_cannot_be_kept_is_a_400_in_words(client: TestClient) -> None:
    inbox = await web_chat(client, prechat=OWN)
    for prechat, says in (
        ({"consent": True}, "needs privacy_url"),
        ({"phone": True, "privacy_url": "http://shop.example/privacy"}, "privacy_url must be an https address"),
        ({"phone": True, "privacy_url": "https://[shop"}, "privacy_url must be an https address"),
        ({"age": True}, "age"),
        ({"phone": "yes"}, "phone"),
    ):
        body = {"channel": "webchat", "name": "x", "settings": {"prechat": prechat}}
        refused = await client.post("/api/accounts/default/inboxes", json=body, headers=INSTALL)
        assert refused.status == 400 and says in (await refused.json())["detail"], prechat
        refused = await patch(client, inbox["id"], prechat)
        assert refused.status == 400 and says in (await refused.json())["detail"], prechat
    telegram = {"channel": "telegram", "name": "x", "settings": {"token": "1:a", "webhook_secret": "s", "prechat": OWN}}
    assert (await client.post("/api/accounts/default/inboxes", json=telegram, headers=INSTALL)).status == 400
    assert [i.id for i in await client.server.app[STORE].inboxes.list_inboxes("default")] == [inbox["id"]]
    assert await asked(client, inbox["id"]) == {"fields": ["phone"], "consent": False, "privacy_url": ""}
