"""Telegram replies through our Bot API client against the local fake Bot API: end to end, keyboards,
documents, 429 retry_after through the outbox, errors, pacing, downloads, polling."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from pymongo.errors import OperationFailure

from bot.handlers.kit.egress_guards import EgressGuards
from bot.handlers.kit.media import AttachmentTooLarge
from bot.handlers.kit.protocol import ChannelContext, PermanentSendError, RetryableSendError
from bot.handlers.telegram.adapter import TelegramAdapter
from bot.handlers.telegram.polling import Poller
from bot.keys import OUTBOX, PIPELINE, STORE
from bot.services.agents import add_agent
from bot.tasks import stop_tasks
from bot.web.keys import SERVICES
from conversations.agent_models import Role
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from conversations.thread_models import OutboxState
from conversations.traffic import Identity, Outbound
from tests import factories
from tests.fakes.telegram_api import FakeBotAPI
from tests.handlers.channels import channel_settings, fixture, post_telegram
from tests.router.test_inbound import wait_for

NOTICE = "Thanks for your message! A member of our team will reply here as soon as possible."


async def sent_count(bot_api: FakeBotAPI, expected: int, method: str = "sendMessage") -> bool:
    return len(bot_api.sent(method)) >= expected


async def thread_of(client: TestClient) -> Any:
    store = client.server.app[STORE]
    message = (await factories.messages(store, direction="in"))[0]
    return await store.threads.get_thread(message.thread_id)


async def test_webhook_in_thread_reply_out_exactly_once(router: TestClient, bot_api: FakeBotAPI) -> None:
    assert (await post_telegram(router, fixture("telegram", "text"))).status == 200
    await wait_for(lambda: sent_count(bot_api, 1))
    assert (await post_telegram(router, fixture("telegram", "text"))).status == 200  # redelivery
    await asyncio.sleep(0.3)
    assert bot_api.sent() == [{"chat_id": "5512345678", "text": NOTICE}]
    store = router.server.app[STORE]
    [out] = await factories.messages(store, direction="out")
    assert out.delivery_status == "sent" and out.external_id == "5512345678:1000"
    assert len(await factories.outbox(store, state=OutboxState.SENT)) == 1


async def test_an_agent_reply_with_options_gets_a_reply_keyboard(router: TestClient, bot_api: FakeBotAPI) -> None:
    await post_telegram(router, fixture("telegram", "text"))
    thread = await thread_of(router)
    response = await router.post(
        f"/api/threads/{thread.id}/replies",
        json={"id": "r1", "text": "Was it the blue one?", "options": ["Yes", "No"], "agent": "ann"},
    )
    assert response.status == 202
    await wait_for(lambda: sent_count(bot_api, 2))
    reply = next(p for p in bot_api.sent() if p["text"] == "Was it the blue one?")
    assert reply["reply_markup"]["keyboard"] == [[{"text": "Yes"}], [{"text": "No"}]]
    assert reply["reply_markup"]["one_time_keyboard"] is True


async def test_inline_buttons_and_documents_go_out_as_telegram_expects(router: TestClient, bot_api: FakeBotAPI) -> None:
    await post_telegram(router, fixture("telegram", "text"))
    thread = await thread_of(router)
    outbox = router.server.app[OUTBOX]
    await outbox.enqueue_reply(
        dedup_key="inline",
        thread=thread,
        to=Identity("telegram", thread.address),
        text="Helpful?",
        sender={"kind": "bot"},
        options=("Yes", "No"),
        meta={"buttons": "inline"},
    )
    response = await router.post(
        f"/api/threads/{thread.id}/replies",
        json={"id": "doc", "text": "Your invoice", "document": {"url": "https://shop.example/inv.pdf"}},
    )
    assert response.status == 202
    await wait_for(lambda: sent_count(bot_api, 1, "sendDocument"))
    await wait_for(lambda: sent_count(bot_api, 2))
    inline = next(p for p in bot_api.sent() if p["text"] == "Helpful?")
    assert inline["reply_markup"]["inline_keyboard"] == [
        [{"text": "Yes", "callback_data": "Yes"}],
        [{"text": "No", "callback_data": "No"}],
    ]
    assert bot_api.sent("sendDocument") == [
        {"chat_id": "5512345678", "document": "https://shop.example/inv.pdf", "caption": "Your invoice"}
    ]


async def test_a_document_by_address_is_a_file_id_or_an_http_url_never_a_local_file(
    router: TestClient, bot_api: FakeBotAPI
) -> None:
    """A local Bot API server reads a ``file://`` address as a file on its host and uploads it."""
    await post_telegram(router, fixture("telegram", "text"))
    thread = await thread_of(router)
    for n, document in enumerate(
        ({"file_id": "file:///srv/omnirouter/var/secret.key"}, {"url": "file:///etc/hostname"})
    ):
        response = await router.post(f"/api/threads/{thread.id}/replies", json={"id": f"bad{n}", "document": document})
        assert response.status == 400 and "document" in (await response.json())["detail"], document
    response = await router.post(
        f"/api/threads/{thread.id}/replies", json={"id": "ok", "document": {"file_id": "BQACAgIAAxkBAAIBOWZ-x_1"}}
    )
    assert response.status == 202
    await wait_for(lambda: sent_count(bot_api, 1, "sendDocument"))
    assert bot_api.sent("sendDocument")[0]["document"] == "BQACAgIAAxkBAAIBOWZ-x_1"
    adapter = router.server.app[OUTBOX]._adapters["telegram"]
    for document in ({"file_id": "file:///etc/hostname"}, {"url": "HTTPS://x/y"}, {"url": "/etc/hostname"}):
        outbound = Outbound(
            account_id="default",
            channel="telegram",
            thread_id=thread.id,
            message_id="m",
            to=Identity("telegram", thread.address),
            text="",
            meta={"document": document},
        )
        with pytest.raises(PermanentSendError, match="document"):
            await adapter.send(outbound)
    assert len(bot_api.sent("sendDocument")) == 1


async def test_a_429_retry_after_is_honoured_through_the_outbox(router: TestClient, bot_api: FakeBotAPI) -> None:
    bot_api.fail_next(429, retry_after=1)
    await post_telegram(router, fixture("telegram", "text"))
    await wait_for(lambda: sent_count(bot_api, 2), timeout=10)
    first, second = [c for c in bot_api.calls if c.method == "sendMessage"]
    assert second.at - first.at >= 1.0
    store = router.server.app[STORE]
    await wait_for(lambda: _outbox_state(store, OutboxState.SENT))
    [item] = await factories.outbox(store)
    assert item.attempts == 2 and item.last_error is not None and item.last_error.startswith("telegram 429")


async def _outbox_state(store: Repositories, state: OutboxState) -> bool:
    return len(await factories.outbox(store, state=state)) == 1


async def test_a_server_error_is_retried_and_a_blocked_bot_is_a_dead_letter(
    router: TestClient, bot_api: FakeBotAPI
) -> None:
    adapter = router.server.app[OUTBOX]._adapters["telegram"]
    outbound = Outbound(
        account_id="default",
        channel="telegram",
        thread_id="t",
        message_id="m",
        to=Identity("telegram", "5512345678"),
        text="hi",
    )
    bot_api.fail_next(500)
    with pytest.raises(RetryableSendError):
        await adapter.send(outbound)
    bot_api.fail_next(403)
    with pytest.raises(PermanentSendError, match="blocked by the user"):
        await adapter.send(outbound)
    assert await adapter.send(outbound) == "5512345678:1000"


async def test_sends_to_one_chat_are_paced(embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI) -> None:
    settings = channel_settings(embedded.uri, db_name, telegram_api=bot_api.url, telegram={"pacing": 0.3})
    adapter = TelegramAdapter(ChannelContext(settings, "default", EgressGuards.from_settings(settings)))
    try:

        def to(chat: str, n: int) -> Outbound:
            return Outbound(
                account_id="default",
                channel="telegram",
                thread_id="t",
                message_id=f"m{n}",
                to=Identity("telegram", chat),
                text=f"n{n}",
            )

        started = time.monotonic()
        await asyncio.gather(*(adapter.send(to("100", n)) for n in range(3)), adapter.send(to("200", 9)))
        times = {c.params["text"]: c.at - started for c in bot_api.calls}
        assert times["n9"] < 0.2  # another chat is not held up
        gaps = sorted(times[f"n{n}"] for n in range(3))
        assert gaps[1] - gaps[0] >= 0.28 and gaps[2] - gaps[1] >= 0.28
    finally:
        await adapter.close()


async def test_attachments_download_by_file_id_within_the_cap(router: TestClient, bot_api: FakeBotAPI) -> None:
    bot_api.files["BQACAgIAAxkBAAMHZinvoice"] = b"%PDF-1.4 invoice"
    await post_telegram(router, fixture("telegram", "document"))
    [message] = await factories.messages(router.server.app[STORE], direction="in")
    response = await router.get(f"/api/messages/{message.id}/attachments/0")
    assert response.status == 200 and await response.read() == b"%PDF-1.4 invoice"
    assert response.headers["Content-Type"] == "application/pdf"
    assert 'filename="invoice-4471.pdf"' in response.headers["Content-Disposition"]

    adapter = router.server.app[OUTBOX]._adapters["telegram"]
    bot_api.files["big"] = b"x" * 2048
    adapter.settings = adapter.settings.__class__(**{**adapter.settings.__dict__, "max_download_bytes": 1024})
    with pytest.raises(AttachmentTooLarge):
        await adapter.fetch_attachment("default", "big")


async def test_polling_records_updates_and_confirms_only_recorded_ones(router: TestClient, bot_api: FakeBotAPI) -> None:
    adapter = router.server.app[OUTBOX]._adapters["telegram"]
    poller = Poller(adapter, router.server.app[PIPELINE], pause=0.01)
    bot = await adapter.bots.get("default")
    second = copy.deepcopy(fixture("telegram", "text"))
    second["update_id"] += 1
    second["message"].update(message_id=102, text="and a second question")
    for update in (fixture("telegram", "text"), second, fixture("telegram", "channel_post")):
        bot_api.push_update(update)
    assert await poller.poll_once(bot) == 3
    assert poller.offset == 730001012 and bot_api.confirmed_offset is None  # confirmed by the next call
    await poller.poll_once(bot)
    assert bot_api.confirmed_offset == 730001012 and bot_api.updates == []
    assert sorted(m.text for m in await factories.messages(router.server.app[STORE], direction="in")) == [
        "Hello, where is my order 4471?",
        "and a second question",
    ]


async def test_polling_does_not_confirm_an_update_it_could_not_record(
    tmp_path: Any, bot_api: FakeBotAPI, start_client: Any
) -> None:
    server = EmbeddedMongo(tmp_path / "store")
    await server.start()
    try:
        client = await start_client(channel_settings(server.uri, "poll", telegram_api=bot_api.url))
        adapter = client.server.app[OUTBOX]._adapters["telegram"]
        poller = Poller(adapter, client.server.app[PIPELINE], pause=0.01)
        bot = await adapter.bots.get("default")
        bot_api.push_update(fixture("telegram", "text"))
        await server.stop()
        assert await poller.poll_once(bot) == 0 and poller.offset is None
        await server.start()
        await wait_for(lambda: _recorded(poller, bot), timeout=20)
        assert poller.offset == 730001002
    finally:
        await server.stop()


async def _recorded(poller: Poller, bot: Any) -> bool:
    return await poller.poll_once(bot) == 1


async def test_polling_outlives_a_proxy_error_page(router: TestClient, bot_api: FakeBotAPI) -> None:
    """A 502 page (HTML, not Telegram's JSON) is a passing outage like any other: it must not end
    the polling task, which nothing restarts."""
    adapter = router.server.app[OUTBOX]._adapters["telegram"]
    poller = Poller(adapter, router.server.app[PIPELINE], pause=0.01)
    bot_api.gateway_error_next()  # at deleteWebhook, before polling starts
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: _answered(bot_api, "getUpdates", 200), timeout=10)
        bot_api.gateway_error_next(2)
        await wait_for(lambda: _answered(bot_api, "getUpdates", 502), timeout=10)
        bot_api.push_update(fixture("telegram", "text"))
        await wait_for(lambda: _offset_is(poller, 730001002), timeout=10)
        assert not task.done()
        [message] = await factories.messages(router.server.app[STORE], direction="in")
        assert message.text == "Hello, where is my order 4471?"
    finally:
        await stop_tasks([task])


class FailingOnce:
    """The pipeline, but its first record fails with a store error that is no outage (the embedded
    store reports a full disk inside a bulk write as code 8)."""

    def __init__(self, sink: Any) -> None:
        self._sink, self.failed = sink, False

    async def record(self, items: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise OperationFailure("database or disk is full", 8)
        return await self._sink.record(items)


async def test_polling_outlives_a_store_error_that_is_no_outage(router: TestClient, bot_api: FakeBotAPI) -> None:
    """An update the store could not record for a reason that is no outage is fetched again and
    recorded: nothing restarts the polling task, so no error may end it."""
    adapter = router.server.app[OUTBOX]._adapters["telegram"]
    sink = FailingOnce(router.server.app[PIPELINE])
    poller = Poller(adapter, sink, pause=0.01)
    bot_api.push_update(fixture("telegram", "text"))
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: _offset_is(poller, 730001002), timeout=10)
        assert sink.failed and not task.done()
        [message] = await factories.messages(router.server.app[STORE], direction="in")
        assert message.text == "Hello, where is my order 4471?"  # the update was fetched again, recorded once
    finally:
        await stop_tasks([task])


async def _answered(bot_api: FakeBotAPI, method: str, status: int) -> bool:
    return any(c.method == method and c.status == status for c in bot_api.calls)


async def _offset_is(poller: Poller, offset: int) -> bool:
    return poller.offset == offset


async def test_an_account_with_its_own_bot_gets_its_own_webhook(router: TestClient, bot_api: FakeBotAPI) -> None:
    store: Repositories = router.server.app[STORE]
    from conversations.models import utcnow

    await store.accounts.ensure_account("shop2", "Second shop", utcnow())
    response = await router.put(
        "/api/accounts/shop2/channels/telegram",
        json={"token": bot_api.token, "webhook_secret": "shop2-secret", "api_base": bot_api.url},
    )
    assert response.status == 200
    assert (await post_telegram(router, fixture("telegram", "text"), path="/webhooks/telegram/shop2")).status == 401
    ok = await post_telegram(
        router, fixture("telegram", "text"), secret="shop2-secret", path="/webhooks/telegram/shop2"
    )
    assert ok.status == 200 and (await ok.json())["recorded"] == 1
    [message] = await factories.messages(store, "shop2", direction="in")
    assert message.account_id == "shop2" and await factories.messages(store, direction="in") == []
    await wait_for(lambda: sent_count(bot_api, 1))  # the notice goes out through shop2's bot


async def test_polling_mode_runs_by_itself_from_start_to_reply(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, start_client: Any
) -> None:
    settings = channel_settings(
        embedded.uri,
        db_name,
        telegram_api=bot_api.url,
        telegram={"mode": "polling", "webhook_secret": "", "poll_timeout": 1},
    )
    client = await start_client(settings)
    bot_api.push_update(fixture("telegram", "text"))
    await wait_for(lambda: sent_count(bot_api, 1), timeout=10)
    assert bot_api.sent() == [{"chat_id": "5512345678", "text": NOTICE}]
    assert next(c.method for c in bot_api.calls) == "deleteWebhook"
    assert len(await factories.messages(client.server.app[STORE], direction="in")) == 1


async def test_an_agent_writing_shows_typing_in_the_telegram_chat(router: TestClient, bot_api: FakeBotAPI) -> None:
    await post_telegram(router, fixture("telegram", "text"))
    thread = await thread_of(router)
    store = router.server.app[STORE]
    admin, _ = await add_agent(store, "default", "tia", name="Tia", role=Role.ADMIN)
    assert admin is not None
    assert await router.server.app[SERVICES].replies.typing(thread.id, admin)
    assert bot_api.sent("sendChatAction") == [{"chat_id": "5512345678", "action": "typing"}]
    bot_api.fail_next(403, description="Forbidden: bot was blocked by the user")
    assert not await router.server.app[SERVICES].replies.typing(thread.id, admin)  # a courtesy: no error
