"""Declarative HTTP actions against a local stand-in for a shop's order API: the slot goes into
the URL escaped, the sealed secret into the header, the answer's fields into slots and the reply;
a 404 says the not-found response; a failing API hands the conversation over."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.handlers.kit.egress import Egress, HostRule
from bot.keys import DISPATCHER, NLU, SETTINGS, STORE
from bot.router.dialogue.actions import ActionFailed
from bot.router.dialogue.content import Content
from bot.router.dialogue.domain import DomainError, HttpAction, load_domain
from bot.router.dialogue.http_actions import HttpActions, _at, _body, _path_value, action_secret
from bot.services.agents import add_agent
from bot.services.bot_content import current, publish
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests import factories
from tests.conftest import make_settings
from tests.nlu.conftest import install
from tests.nlu.test_policy import say

ROOT = Path(__file__).resolve().parents[3]
ORDERS = {"A-10234": {"order": {"status": "shipped", "parcels": [{"carrier": "DPD"}]}}}

HTTP_ACTION = """
http_actions:
  action_order_lookup:
    method: GET
    url: "http://127.0.0.1:{port}/orders/{{order_number}}"
    headers:
      Authorization: "Bearer {{secret:shop}}"
    slots:
      order_status: order.status
      carrier: order.parcels.0.carrier
    reply: utter_order_found
    not_found: utter_order_not_found
    timeout: 2
responses:
  utter_order_found:
    - text: "Order {{order_number}} is {{order_status}}, with {{carrier}}."
  utter_order_not_found:
    - text: "There is no order {{order_number}}."
"""


class Shop:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        app = web.Application()
        app.router.add_get("/orders/{number}", self._order)
        app.router.add_get("/moved", self._moved)
        self.server = TestServer(app, host="127.0.0.1")

    async def _moved(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/orders/A-10234")

    async def _order(self, request: web.Request) -> web.Response:
        number = request.match_info["number"]
        self.seen.append((number, request.headers.get("Authorization", "")))
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.json_response({"error": "unauthorised"}, status=401)
        if number == "B-50000":
            return web.json_response({"error": "down"}, status=503)
        found = ORDERS.get(number)
        return web.json_response(found) if found else web.json_response({"error": "no such order"}, status=404)


@pytest.fixture
async def shop() -> AsyncIterator[Shop]:
    shop = Shop()
    await shop.server.start_server()
    yield shop
    await shop.server.close()


@pytest.fixture
async def shop_bot(
    tmp_path: Path, shop: Shop, embedded: EmbeddedMongo, db_name: str, store: Repositories, starter_blob: bytes,
    start_client: Any,
) -> TestClient:  # fmt: skip
    folder = tmp_path / "dialogue"
    shutil.copytree(ROOT / "config" / "dialogue", folder)
    domain = yaml.safe_load((folder / "domain.yml").read_text())
    extra = yaml.safe_load(HTTP_ACTION.format(port=shop.server.port))
    domain["http_actions"] = extra["http_actions"]
    domain["responses"].update(extra["responses"])
    (folder / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True))
    rules = (folder / "rules.yml").read_text().replace("action: action_order_status", "action: action_order_lookup")
    (folder / "rules.yml").write_text(rules)
    await install(store, starter_blob)
    settings = make_settings(
        embedded.uri,
        db_name,
        dialogue={"folder": str(folder)},
        egress={"allowed_destinations": f"127.0.0.1:{shop.server.port}"},
    )
    client: TestClient = await start_client(settings)
    await client.server.app[STORE].secrets.replace_sealed_secret(action_secret("shop"), "s3cret")
    return client


async def ask(client: TestClient, number: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with client.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        return await say(ws, "h1", f"can you check order {number}")


async def test_the_answer_fills_slots_and_the_reply(shop_bot: TestClient, shop: Shop) -> None:
    decision, [reply] = await ask(shop_bot, "A-10234")
    assert decision["reason"] == "form:order_status_form:completed"
    assert reply["text"] == "Order A-10234 is shipped, with DPD."
    assert shop.seen == [("A-10234", "Bearer s3cret")]
    secrets = await shop_bot.server.app[STORE].secrets._db.secrets.find_one({"_id": action_secret("shop")})
    assert secrets is not None and "s3cret" not in str(secrets)  # sealed at rest


async def test_an_accounts_published_action_reads_that_accounts_secrets_never_the_installs(
    shop_bot: TestClient, shop: Shop
) -> None:
    """Content an account's admins publish may name any URL: were ``{secret:shop}`` the install's
    secret there, an admin could have it sent to a server of theirs. It is the account's own."""
    app = shop_bot.server.app
    store, settings = app[STORE], app[SETTINGS]
    admin, _ = await add_agent(store, "default", "ada", name="Ada", role=Role.ADMIN, password="a long passphrase")
    assert admin is not None
    files = (await current(store, settings, "default")).content  # the install's files, with the action
    assert (await publish(store, app[NLU], settings, "default", files, admin)).version is not None
    _, [reply] = await ask(shop_bot, "A-10234")  # kept exactly as the install has it: still the install's
    assert reply["text"] == "Order A-10234 is shipped, with DPD." and shop.seen == [("A-10234", "Bearer s3cret")]

    # the same action aimed elsewhere by the account (here: another path of the same host)
    changed = Content(
        files.responses, files.domain.replace("/orders/{order_number}", "/orders/{order_number}?x=1"), files.rules
    )
    assert changed.domain != files.domain
    assert (await publish(store, app[NLU], settings, "default", changed, admin)).version is not None
    shop.seen.clear()
    decision, _ = await ask(shop_bot, "A-10234")
    assert (decision["action"], decision["reason"]) == ("queued", "action_failed:action_order_lookup")
    assert shop.seen == []  # the install's secret went nowhere
    thread = await store.threads.get_thread(decision["thread_id"])
    assert thread is not None
    [note] = [e for e in await store.queue.contact_timeline(thread.contact_id) if e.kind == "action"]
    assert "no action secret shop is stored for account default" in str(note.to_json())

    await store.secrets.replace_sealed_secret(action_secret("shop", "default"), "s3cret")
    decision, [reply] = await ask(shop_bot, "A-10234")
    assert reply["text"] == "Order A-10234 is shipped, with DPD."
    assert shop.seen == [("A-10234", "Bearer s3cret")]


async def test_a_404_says_the_not_found_response(shop_bot: TestClient) -> None:
    decision, [reply] = await ask(shop_bot, "A-99999")
    assert decision["action"] == "answered" and reply["text"] == "There is no order A-99999."


async def test_a_failing_api_hands_the_conversation_over(shop_bot: TestClient) -> None:
    decision, _ = await ask(shop_bot, "B-50000")
    assert (decision["action"], decision["reason"]) == ("queued", "action_failed:action_order_lookup")


async def test_a_replayed_dispatch_carries_out_the_recorded_step_and_calls_nothing_again(
    shop_bot: TestClient, shop: Shop
) -> None:
    """A dispatch replayed after a crash (here: by hand, after the thread's next message moved its
    dialogue state on) sends what the message's first decision said, and neither calls the action
    again nor notes it twice."""
    store = shop_bot.server.app[STORE]
    async with shop_bot.ws_connect("/webchat/ws") as ws:
        await ws.receive_json()
        first, [_] = await say(ws, "r1", "can you check order A-10234")
        later, _ = await say(ws, "r2", "what are your opening hours?")
    [message] = [m for m in await factories.messages(store, direction="in") if m.text.endswith("A-10234")]
    thread = await store.threads.get_thread(first["thread_id"])
    assert thread is not None
    notes = [e for e in await store.queue.contact_timeline(thread.contact_id) if e.kind == "action"]
    replies = await factories.messages(store, direction="out")

    again = await shop_bot.server.app[DISPATCHER].dispatch(message)

    assert (str(again.action), again.reason) == ("answered", first["reason"])
    assert list(again.replies) == first["replies"]  # the same reply, not a second one
    assert shop.seen == [("A-10234", "Bearer s3cret")]  # called once
    assert len(await factories.messages(store, direction="out")) == len(replies)
    assert [e for e in await store.queue.contact_timeline(thread.contact_id) if e.kind == "action"] == notes
    state = await store.threads.thread_nlu_state(thread.id)
    assert state["by"] == (await store.messages.get_message(later["replies"][0])).in_reply_to  # unchanged


def test_slots_go_into_a_body_and_answers_are_read_by_path() -> None:
    slots = {"order_number": "A-1", "count": 3}
    assert _body({"id": "{order_number}", "n": "{count}", "note": "order {order_number}", "x": [1]}, slots) == {
        "id": "A-1", "n": 3, "note": "order A-1", "x": [1]
    }  # fmt: skip
    assert _at({"a": {"b": [{"c": 5}]}}, "a.b.0.c") == 5 and _at({"a": 1}, "a.b") is None


def test_a_wrong_http_action_is_refused(tmp_path: Path) -> None:
    (tmp_path / "domain.yml").write_text("http_actions:\n  action_x:\n    url: ftp://x\n")
    with pytest.raises(DomainError, match=r"http_actions\.action_x needs `url:`"):
        load_domain(tmp_path)


def test_a_slot_value_is_one_escaped_path_segment_and_never_climbs_the_path() -> None:
    assert _path_value("a/b", "s") == "a%2Fb" and _path_value("x?y#z", "s") == "x%3Fy%23z"
    for climbing in ("..", ".", "", " ", None):
        with pytest.raises(ActionFailed, match="not a value to put in the URL"):
            _path_value(climbing, "order_number")


def order_lookup(shop: Shop) -> HttpAction:
    """The shop's order lookup, declared by hand (the number in slot ``n``)."""
    return HttpAction(
        "action_x",
        "GET",
        f"http://127.0.0.1:{shop.server.port}/orders/{{n}}",
        {"Authorization": "Bearer {secret:shop}"},
    )


async def test_error_answers_open_the_breaker_and_redirects_are_not_followed(shop: Shop) -> None:
    guard = Egress([HostRule("127.0.0.1", shop.server.port)])
    http = HttpActions(guard.session, _secret)
    lookup = order_lookup(shop)
    try:
        with pytest.raises(ActionFailed, match="answered 302"):
            await http.run(
                HttpAction("action_y", "GET", f"http://127.0.0.1:{shop.server.port}/moved", {"X-Key": "{secret:shop}"}),
                {},
            )
        assert shop.seen == []  # the redirect's target never got the secret
        for _ in range(4):  # with the redirect, five error answers in a row
            with pytest.raises(ActionFailed, match="answered 503"):
                await http.run(lookup, {"n": "B-50000"})
        with pytest.raises(ActionFailed, match="failed 5 times in a row"):
            await http.run(lookup, {"n": "A-10234"})
        assert len(shop.seen) == 4  # the open breaker called nobody
    finally:
        await http.close()


async def _secret(stored_name: str) -> str | None:
    return "s3cret" if stored_name == action_secret("shop") else None


async def test_an_accounts_action_goes_through_the_account_guard_and_breaker(shop: Shop) -> None:
    """The install's guard allows its own hosts (here the shop, as it allows the action server's);
    an account's action goes through a guard that does not, and its failures open its own breaker."""
    install = Egress([HostRule("127.0.0.1", shop.server.port)])
    http = HttpActions(install.session, _secrets_of_both, Egress([]).session)
    lookup = order_lookup(shop)
    try:
        for _ in range(5):
            with pytest.raises(ActionFailed, match=r"127\.0\.0\.1"):
                await http.run(lookup, {"n": "A-10234"}, "acme")
        with pytest.raises(ActionFailed, match="failed 5 times in a row"):
            await http.run(lookup, {"n": "A-10234"}, "acme")
        assert shop.seen == []  # refused before it was sent
        found, _ = await http.run(lookup, {"n": "A-10234"})  # the install's breaker is its own
        assert found == {} and shop.seen == [("A-10234", "Bearer s3cret")]
    finally:
        await http.close()


async def _secrets_of_both(stored_name: str) -> str | None:
    return "s3cret" if stored_name in (action_secret("shop"), action_secret("shop", "acme")) else None
