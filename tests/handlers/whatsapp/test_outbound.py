"""WhatsApp replies through pywa's async client (a plain text without it) against the local fake
Graph API: end to end with status reports, the 24-hour window and templates, buttons and lists,
retries, media downloads."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import time
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pywa_async.errors import WhatsAppError

from bot.handlers.kit.media import AttachmentTooLarge
from bot.handlers.kit.protocol import PermanentSendError, RetryableSendError
from bot.handlers.whatsapp.adapter import IMAGE_LIMIT, _send_error
from bot.keys import OUTBOX, STORE
from bot.services.agents import add_agent
from bot.services.replies import AgentFile
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import OutboxState
from conversations.traffic import Identity, Outbound
from tests import factories
from tests.fakes.graph_api import FakeGraphAPI
from tests.handlers.channels import fixture, post_whatsapp
from tests.router.test_inbound import wait_for

NOTICE = "Thanks for your message! A member of our team will reply here as soon as possible."


def fresh(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded payload whose messages were sent just now (inside the service window)."""
    payload = copy.deepcopy(fixture("whatsapp", name))
    for entry in payload["entry"]:
        for change in entry["changes"]:
            for message in change["value"].get("messages", []):
                message["timestamp"] = str(int(time.time()))
                message.update(changes)
    return payload


async def sent(graph: FakeGraphAPI, expected: int) -> bool:
    return len(graph.sent()) >= expected


async def thread_of(client: TestClient) -> Any:
    store = client.server.app[STORE]
    message = (await factories.messages(store, direction="in"))[0]
    return await store.threads.get_thread(message.thread_id)


def reply_to(thread: Any, text: str) -> Outbound:
    """A reply to the fixture's customer in ``thread``, as the outbox queues it."""
    return Outbound(
        account_id="default",
        channel="whatsapp",
        thread_id=thread.id,
        message_id="m",
        to=Identity("whatsapp", "16505551234"),
        text=text,
        window_ends_at=thread.wa_window_ends_at,
    )


def status(wamid: str, state: str) -> dict[str, Any]:
    payload = copy.deepcopy(fixture("whatsapp", f"status_{state}"))
    payload["entry"][0]["changes"][0]["value"]["statuses"][0].update(id=wamid, timestamp=str(int(time.time())))
    return payload


async def test_webhook_in_thread_reply_out_exactly_once_then_delivered(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    payload = fresh("text")
    assert (await post_whatsapp(router, payload)).status == 200
    await wait_for(lambda: sent(graph_api, 1))
    assert (await post_whatsapp(router, payload)).status == 200  # redelivery
    await asyncio.sleep(0.3)
    assert graph_api.sent() == [
        {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": "16505551234",
            "type": "text",
            "text": {"body": NOTICE, "preview_url": False},
        }
    ]
    assert graph_api.requests[0].path == "/v23.0/106540352242922/messages"
    store = router.server.app[STORE]
    [out] = await factories.messages(store, direction="out")
    assert out.external_id == "wamid.FAKE000001" and out.delivery_status == "sent"
    await post_whatsapp(router, status("wamid.FAKE000001", "delivered"))
    delivered = await store.messages.get_message(out.id)
    assert delivered is not None and delivered.delivery_status == "delivered"


async def test_outside_the_window_free_form_is_refused_and_a_template_goes_out(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    await post_whatsapp(router, fixture("whatsapp", "text"))  # written a year ago: the window is closed
    thread = await thread_of(router)
    refused = await router.post(f"/api/threads/{thread.id}/replies", json={"id": "r1", "text": "Still there?"})
    assert refused.status == 409
    error = await refused.json()
    assert error["error"] == "service_window_closed"
    assert "24-hour customer service window" in error["detail"] and "order_update" in error["detail"]

    wrong = await router.post(f"/api/threads/{thread.id}/replies", json={"id": "r2", "template": "nope"})
    assert wrong.status == 409 and (await wrong.json())["error"] == "unknown_template"
    short = await router.post(
        f"/api/threads/{thread.id}/replies", json={"id": "r3", "template": "order_update", "parameters": ["Sheena"]}
    )
    assert short.status == 400 and "takes 2 parameters" in (await short.json())["detail"]

    ok = await router.post(
        f"/api/threads/{thread.id}/replies",
        json={"id": "r4", "template": "order_update", "parameters": {"order": "4471", "name": "Sheena"}},
    )
    assert ok.status == 202 and (await ok.json())["text"] == "[template order_update] Sheena, 4471"
    await wait_for(lambda: sent(graph_api, 1))
    [body] = graph_api.sent()
    assert body["type"] == "template" and body["template"]["name"] == "order_update"
    assert body["template"]["language"] == {"code": "en_US"}
    [component] = body["template"]["components"]
    assert component["type"].lower() == "body"
    assert component["parameters"] == [{"type": "text", "text": "Sheena"}, {"type": "text", "text": "4471"}]
    # the automatic notice could not go out either: dead-lettered with the reason, not sent
    [notice] = [item for item in await factories.outbox(router.server.app[STORE]) if item.text == NOTICE]
    assert notice.state == "dead" and "24-hour customer service window" in (notice.last_error or "")


async def test_options_become_buttons_a_list_or_a_numbered_text(router: TestClient, graph_api: FakeGraphAPI) -> None:
    await post_whatsapp(router, fresh("text"))
    thread = await thread_of(router)
    many = [f"Option {n}" for n in range(1, 13)]
    for key, options in (("b", ["Yes", "No"]), ("l", many[:5]), ("t", many)):
        response = await router.post(
            f"/api/threads/{thread.id}/replies", json={"id": key, "text": f"pick {key}", "options": options}
        )
        assert response.status == 202
    await wait_for(lambda: sent(graph_api, 4))
    bodies = {
        b.get("interactive", {}).get("body", {}).get("text") or b.get("text", {}).get("body", ""): b
        for b in graph_api.sent()
    }
    buttons = bodies["pick b"]["interactive"]
    assert buttons["type"] == "button"
    assert [b["reply"]["title"] for b in buttons["action"]["buttons"]] == ["Yes", "No"]
    listed = bodies["pick l"]["interactive"]
    assert listed["type"] == "list" and [r["title"] for r in listed["action"]["sections"][0]["rows"]] == many[:5]
    numbered = next(text for text in bodies if text.startswith("pick t"))
    assert numbered.endswith("11. Option 11\n12. Option 12")


async def test_a_document_reply(router: TestClient, graph_api: FakeGraphAPI) -> None:
    await post_whatsapp(router, fresh("text"))
    thread = await thread_of(router)
    response = await router.post(
        f"/api/threads/{thread.id}/replies",
        json={
            "id": "d",
            "text": "Your invoice",
            "document": {"url": "https://shop.example/inv.pdf", "name": "inv.pdf"},
        },
    )
    assert response.status == 202
    await wait_for(lambda: sent(graph_api, 2))
    document = next(b for b in graph_api.sent() if b["type"] == "document")["document"]
    assert document == {"link": "https://shop.example/inv.pdf", "caption": "Your invoice", "filename": "inv.pdf"}


async def test_a_document_by_media_id_goes_out_and_a_path_never_reaches_pywa(
    router: TestClient, graph_api: FakeGraphAPI, tmp_path: Any
) -> None:
    """pywa reads a string naming a file on this host as that file, uploads it and sends it (a token
    holder writing to their own number would get the install's key), so only an http(s) URL or
    WhatsApp's numeric media id is sent by address."""
    await post_whatsapp(router, fresh("text"))
    thread = await thread_of(router)
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"the install's key")
    for document in ({"url": str(secret)}, {"media_id": str(secret)}, {"url": "file:///etc/hostname"}):
        response = await router.post(
            f"/api/threads/{thread.id}/replies", json={"id": f"bad-{len(document)}{document}", "document": document}
        )
        assert response.status == 400, document
        assert "document" in (await response.json())["detail"]
    response = await router.post(
        f"/api/threads/{thread.id}/replies",
        json={"id": "by-id", "text": "Your label", "document": {"media_id": "4490709327"}},
    )
    assert response.status == 202
    await wait_for(lambda: sent(graph_api, 2))
    document = next(b for b in graph_api.sent() if b["type"] == "document")["document"]
    assert document == {"id": "4490709327", "caption": "Your label"}

    # an outbox item that got past the API (stored by an older release) is refused by the adapter
    adapter = router.server.app[OUTBOX]._adapters["whatsapp"]
    for document in (
        {"url": str(secret)},
        {"media_id": str(secret)},
        {"media_id": "aGVsbG8="},  # base64: pywa would upload the bytes
        {"url": "HTTPS://shop.example/inv.pdf"},  # pywa tells a URL by its lower-case scheme only
        {"url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1"},  # downloaded unguarded
    ):
        outbound = dataclasses.replace(reply_to(thread, "here"), meta={"document": document})
        with pytest.raises(PermanentSendError, match="document"):
            await adapter.send(outbound)
    assert graph_api.media == {}  # nothing was uploaded


async def test_429_with_retry_after_is_honoured_through_the_outbox(router: TestClient, graph_api: FakeGraphAPI) -> None:
    graph_api.fail_next(429, retry_after=1)
    await post_whatsapp(router, fresh("text"))
    await wait_for(lambda: sent(graph_api, 2), timeout=10)
    store = router.server.app[STORE]
    [item] = await factories.outbox(store)
    assert (item.last_error or "").startswith("whatsapp 130429")
    first, second = (r.at for r in graph_api.requests if r.path.endswith("/messages"))
    assert second - first >= 1.0  # no sooner than Retry-After
    await wait_for(lambda: _sent_state(router))
    assert [item.attempts for item in await factories.outbox(store)] == [2]


async def _sent_state(client: TestClient) -> bool:
    return len(await factories.outbox(client.server.app[STORE], state=OutboxState.SENT)) == 1


async def test_errors_map_to_retry_or_dead_letter(router: TestClient, graph_api: FakeGraphAPI) -> None:
    await post_whatsapp(router, fresh("text"))
    await wait_for(lambda: sent(graph_api, 1))
    thread = await thread_of(router)
    adapter = router.server.app[OUTBOX]._adapters["whatsapp"]
    outbound = reply_to(thread, "hi")
    graph_api.fail_next(500)
    with pytest.raises(RetryableSendError):
        await adapter.send(outbound)
    graph_api.fail_next(400, code=131047, message="Re-engagement message")
    with pytest.raises(PermanentSendError, match="outside the 24-hour window"):
        await adapter.send(outbound)
    graph_api.fail_next(400, code=131026, message="Message undeliverable")
    with pytest.raises(PermanentSendError, match="131026"):
        await adapter.send(outbound)
    assert (await adapter.send(outbound)).startswith("wamid.FAKE")


async def test_a_reply_retried_past_its_queued_window_goes_out_if_the_customer_wrote_again(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    """A send reads nothing while the window it was queued with is open; past that end it asks the
    thread, so a customer who wrote again meanwhile still gets the retried reply."""
    await post_whatsapp(router, fresh("text"))
    await wait_for(lambda: sent(graph_api, 1))
    thread = await thread_of(router)
    adapter = router.server.app[OUTBOX]._adapters["whatsapp"]
    queued = Outbound(
        account_id="default",
        channel="whatsapp",
        thread_id=thread.id,
        message_id="m",
        to=Identity("whatsapp", "16505551234"),
        text="hi",
        window_ends_at=utcnow() - timedelta(minutes=1),  # queued in an earlier window, now over
    )
    assert (await adapter.send(queued)).startswith("wamid.FAKE")  # the thread's window is open again
    gone = dataclasses.replace(queued, thread_id="no-such-thread")
    with pytest.raises(PermanentSendError, match="24-hour"):
        await adapter.send(gone)


async def test_media_downloads_by_id_within_the_cap_and_is_kept(router: TestClient, graph_api: FakeGraphAPI) -> None:
    store = router.server.app[STORE]
    adapter = router.server.app[OUTBOX]._adapters["whatsapp"]
    capped = adapter.settings.__class__(**{**adapter.settings.__dict__, "max_download_bytes": 1000})
    adapter.settings, roomy = capped, adapter.settings
    graph_api.media["big"] = (b"x" * 4096, "image/jpeg")
    with pytest.raises(AttachmentTooLarge):
        await adapter.fetch_attachment("default", "big")
    graph_api.media["1003383421387257"] = (b"y" * 2000, "application/pdf")
    await post_whatsapp(router, fixture("whatsapp", "document"))
    [message] = await factories.messages(store, direction="in")
    refused = await router.get(f"/api/messages/{message.id}/attachments/0")
    assert refused.status == 413 and (await refused.json())["error"] == "too_large"
    assert await store.files.cached("default", message.id, 0) is None  # nothing kept of a refused file

    adapter.settings = roomy
    graph_api.media["1003383421387257"] = (b"%PDF receipt", "application/pdf")
    response = await router.get(f"/api/messages/{message.id}/attachments/0")
    assert response.status == 200 and await response.read() == b"%PDF receipt"
    missing = await router.get(f"/api/messages/{message.id}/attachments/1")
    assert missing.status == 404
    graph_api.media["1003383421387257"] = (b"gone from the provider", "application/pdf")
    again = await router.get(f"/api/messages/{message.id}/attachments/0")  # from the store's GridFS now
    assert again.status == 200 and await again.read() == b"%PDF receipt"
    kept = await store.files.cached("default", message.id, 0)
    assert kept is not None and kept.length == len(b"%PDF receipt") and kept.contact_id == message.contact_id


async def test_every_new_conversation_has_its_window_before_its_first_reply(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    """Under a burst of webhooks the window is on the thread before the notice is sent (see
    bench/webhooks.py for a bigger burst)."""
    for n in range(40):
        payload = fresh("text", id=f"wamid.BURST{n}")
        payload["entry"][0]["changes"][0]["value"]["messages"][0]["from"] = str(16505550000 + n % 20)
        assert (await post_whatsapp(router, payload)).status == 200
    await wait_for(lambda: sent(graph_api, 20), timeout=15)
    store = router.server.app[STORE]
    await wait_for(lambda: _no_pending(store))
    assert await factories.outbox(store, state=OutboxState.DEAD) == []
    assert len([t for t in await factories.threads(store) if (t.wa_window_ends_ms or 0) > 0]) == 20


async def _no_pending(store: Repositories) -> bool:
    return await factories.outbox(store, state=OutboxState.PENDING) == []


async def test_an_agents_file_is_uploaded_and_sent_as_an_image_or_a_document(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    store = router.server.app[STORE]
    await post_whatsapp(router, fresh("text"))  # inside the 24-hour window
    [thread] = await factories.threads(store)
    admin, _ = await add_agent(store, "default", "ola", name="Ola", role=Role.ADMIN)
    assert admin is not None
    replies = router.server.app[SERVICES].replies
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
    await replies.answer(thread.id, admin, "The box", "nonce-wa-1", AgentFile("box.png", "image/png", png))
    await replies.answer(thread.id, admin, "", "nonce-wa-2", AgentFile("label.pdf", "application/pdf", b"%PDF label"))

    async def sent() -> bool:
        return len([m for m in graph_api.sent_ok() if m.get("type") in ("image", "document")]) == 2

    await wait_for(sent)
    resent = await replies.answer(  # the same form sent again (a double click): the same reply, once
        thread.id, admin, "The box", "nonce-wa-1", AgentFile("box.png", "image/png", png)
    )
    assert resent.text == "The box"
    image, document = [m for m in graph_api.sent_ok() if m.get("type") in ("image", "document")]
    assert image["type"] == "image" and image["image"]["caption"] == "The box"
    assert graph_api.media[image["image"]["id"]] == (png, "image/png")
    assert document["type"] == "document" and document["document"]["filename"] == "label.pdf"
    assert graph_api.media[document["document"]["id"]] == (b"%PDF label", "application/pdf")
    poster = png + b"\x00" * IMAGE_LIMIT  # over WhatsApp's 5 MB for an image: it goes as a document
    await replies.answer(thread.id, admin, "", "nonce-wa-3", AgentFile("poster.png", "image/png", poster))
    await wait_for(lambda: _sent_files(graph_api, 3))
    big = [m for m in graph_api.sent_ok() if m.get("type") in ("image", "document")][-1]
    assert big["type"] == "document" and big["document"]["filename"] == "poster.png"


async def _sent_files(graph_api: FakeGraphAPI, count: int) -> bool:
    return len([m for m in graph_api.sent_ok() if m.get("type") in ("image", "document")]) == count


async def test_a_plain_text_goes_out_and_fails_as_it_did_through_pywa(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    """A plain text reply is one POST sent without pywa (about two thirds of a send's CPU): its
    JSON is what pywa's ``send_message`` sends, and each failure reads as pywa's would have."""
    await post_whatsapp(router, fresh("text"))
    await wait_for(lambda: sent(graph_api, 1))
    thread = await thread_of(router)
    adapter = router.server.app[OUTBOX]._adapters["whatsapp"]
    number = await adapter.numbers.for_send("default", None)
    outbound = reply_to(thread, "Opening hours: 9–17 ✓ https://example.com")
    ours = await adapter.send(outbound)
    theirs = str((await number.graph.pywa.send_message("16505551234", outbound.text)).id)
    assert ours.startswith("wamid.FAKE") and theirs.startswith("wamid.FAKE") and ours != theirs
    mine, pywas = graph_api.requests[-2:]
    assert (mine.path, mine.body, mine.authorization) == (pywas.path, pywas.body, pywas.authorization)
    scoped = dataclasses.replace(outbound, to=Identity("whatsapp", "US.13491208655302741918"))
    await adapter.send(scoped)  # a business-scoped user id: pywa knows how to address it
    assert graph_api.requests[-1].body["recipient"] == "US.13491208655302741918"
    assert "to" not in graph_api.requests[-1].body

    failures: list[dict[str, Any]] = [
        {"status": 429, "retry_after": 7},
        {"status": 500},
        {"status": 400, "code": 131047, "message": "Re-engagement message"},
        {"status": 400, "code": 131050, "message": "Stopped marketing"},
        {"status": 502, "raw": "<html>Bad gateway</html>"},
        {"status": 503, "raw": ""},
    ]
    for failure in failures:
        outcomes = []
        for send in (adapter.send, lambda o: _through_pywa(adapter, number, o)):
            graph_api.fail_next(**failure)
            with pytest.raises((RetryableSendError, PermanentSendError)) as raised:
                await send(outbound)
            outcomes.append((type(raised.value), str(raised.value), getattr(raised.value, "retry_after", None)))
        assert outcomes[0] == outcomes[1], failure
    assert outcomes[0][0] is RetryableSendError  # a gateway's empty 503
    graph_api.fail_next(429, retry_after=7)
    with pytest.raises(RetryableSendError) as limited:
        await adapter.send(outbound)
    assert limited.value.retry_after == 7


async def _through_pywa(adapter: Any, number: Any, outbound: Outbound) -> str:
    """The send as it was: pywa's ``send_message``, its errors mapped by the adapter."""
    try:
        return str((await number.graph.pywa.send_message(outbound.to.address, outbound.text)).id)
    except WhatsAppError as exc:
        raise _send_error(exc) from None


async def test_a_plain_text_answered_without_a_message_id_is_not_sent_again(
    router: TestClient, graph_api: FakeGraphAPI
) -> None:
    """A 200 whose body names no message: the message may have gone out, so it is not retried."""
    await post_whatsapp(router, fresh("text"))
    await wait_for(lambda: sent(graph_api, 1))
    thread = await thread_of(router)
    adapter = router.server.app[OUTBOX]._adapters["whatsapp"]
    outbound = reply_to(thread, "hi")
    graph_api.fail_next(200, raw="<html>ok</html>")
    with pytest.raises(PermanentSendError, match="without a message id; not retried"):
        await adapter.send(outbound)
