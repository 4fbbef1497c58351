"""The Bot API client against the local fake: every recorded update reads the same polled as posted,
Telegram's refusals keep their code, description and retry_after, an answer that is not the Bot
API's is told apart, downloads stream, and the channel imports no Bot API model library (the
memory and CPU figures are the bench's: docs/channels/telegram.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.handlers.kit.egress import Egress, HostRule
from bot.handlers.kit.payload import Payload
from bot.handlers.kit.protocol import MalformedPayload, UnsupportedEvent
from bot.handlers.telegram.botapi import BotAPI, BotAPIError, BotAPIUnreachable
from bot.handlers.telegram.updates import ALLOWED_UPDATES, parse_update
from tests.fakes.telegram_api import FakeBotAPI

ROOT = Path(__file__).resolve().parents[2]
RECORDED = sorted((Path(__file__).parent / "fixtures").glob("*.json"))


def guard(bot_api: FakeBotAPI) -> Egress:
    return Egress([HostRule("127.0.0.1", int(bot_api.url.rsplit(":", 1)[1]))])


@pytest.fixture
async def api(bot_api: FakeBotAPI) -> Any:
    client = BotAPI(bot_api.token, bot_api.url, guard(bot_api), timeout=5)
    yield client
    await client.close()


def events_of(update: Payload) -> Any:
    try:
        return parse_update(update, "default")
    except (UnsupportedEvent, MalformedPayload) as exc:
        return type(exc).__name__, str(exc)


async def test_every_recorded_update_reads_the_same_polled_as_posted(api: BotAPI, bot_api: FakeBotAPI) -> None:
    assert len(RECORDED) == 12
    for path in RECORDED:
        bot_api.push_update(json.loads(path.read_text()))
    polled = await api.get_updates(None, 0, list(ALLOWED_UPDATES))
    assert [update.raw for update in polled] == [json.loads(path.read_text()) for path in RECORDED]
    for path, update in zip(RECORDED, polled, strict=True):
        assert events_of(update) == events_of(Payload.parse(path.read_bytes())), path.name
    assert bot_api.sent("getUpdates")[0] == {"timeout": "0", "allowed_updates": list(ALLOWED_UPDATES)}


async def test_parameters_go_as_the_bot_api_reads_them(api: BotAPI, bot_api: FakeBotAPI) -> None:
    sent = await api.send_message(
        7, "hi [1]", reply_markup={"keyboard": [[{"text": "Yes"}]], "one_time_keyboard": True}
    )
    assert sent.integer("message_id") == 1000
    await api.send_document(7, "https://shop.example/a.pdf")
    await api.delete_webhook()
    assert bot_api.sent() == [
        {"chat_id": "7", "text": "hi [1]", "reply_markup": {"keyboard": [[{"text": "Yes"}]], "one_time_keyboard": True}}
    ]
    assert bot_api.sent("sendDocument") == [{"chat_id": "7", "document": "https://shop.example/a.pdf"}]
    assert bot_api.sent("deleteWebhook") == [{"drop_pending_updates": "false"}]


async def test_refusals_keep_code_description_and_retry_after(api: BotAPI, bot_api: FakeBotAPI) -> None:
    bot_api.fail_next(429, retry_after=3)
    with pytest.raises(BotAPIError) as flood:
        await api.send_message(7, "hi")
    assert (flood.value.code, flood.value.retry_after, flood.value.transient) == (429, 3.0, True)
    bot_api.fail_next(403)
    with pytest.raises(BotAPIError) as blocked:
        await api.send_message(7, "hi")
    assert (blocked.value.code, blocked.value.description, blocked.value.transient) == (
        403,
        "Forbidden: bot was blocked by the user",
        False,
    )
    bot_api.fail_next(500)
    with pytest.raises(BotAPIError) as trouble:
        await api.answer_callback_query("q")
    assert trouble.value.transient
    with pytest.raises(BotAPIError) as unknown:
        await api.call("noSuchMethod", {})
    assert unknown.value.code == 404


async def test_an_answer_that_is_not_the_bot_apis_is_told_apart(api: BotAPI, bot_api: FakeBotAPI) -> None:
    bot_api.gateway_error_next()
    with pytest.raises(BotAPIUnreachable, match="HTTP 502 without a Bot API answer"):
        await api.get_updates(None, 0, list(ALLOWED_UPDATES))
    wrong = BotAPI("1:wrong", bot_api.url, guard(bot_api), timeout=5)
    try:
        with pytest.raises(BotAPIError, match="Unauthorized"):
            await wrong.get_webhook_info()
    finally:
        await wrong.close()


async def test_files_download_as_they_arrive(api: BotAPI, bot_api: FakeBotAPI) -> None:
    bot_api.files["f1"] = b"x" * 300_000
    file = await api.get_file("f1")
    assert (file.string("file_path"), file.integer("file_size")) == ("files/f1", 300_000)
    data = b"".join([chunk async for chunk in api.download(file.string("file_path"))])
    assert data == bot_api.files["f1"]
    with pytest.raises(BotAPIError) as missing:
        async for _ in api.download("files/nothing"):
            pass
    assert missing.value.code == 404


def test_the_telegram_channel_imports_no_bot_api_model_library() -> None:
    """aiogram's pydantic models of the Bot API cost ~100 MB resident when imported (see
    docs/channels/telegram.md): the channel must not bring them back."""
    probe = (
        "import sys, bot.handlers.telegram, bot.handlers.telegram.polling, bot.cli.channels; "
        "print(sorted(m for m in ('aiogram', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"
