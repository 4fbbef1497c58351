"""`omnirouter say --channel telegram|whatsapp` and `omnirouter telegram ...` as a person runs them."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests import factories
from tests.cli.test_serve import run
from tests.fakes.graph_api import PHONE_NUMBER_ID, FakeGraphAPI
from tests.fakes.telegram_api import TOKEN, FakeBotAPI
from tests.handlers.channels import TG_SECRET, WA_SECRET
from tests.router.test_inbound import wait_for


async def test_say_on_telegram_posts_a_signed_update(router: TestClient, bot_api: FakeBotAPI, tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{router.server.port}"
    env = {"OMNIROUTER_TELEGRAM_WEBHOOK_SECRET": TG_SECRET}
    code, out, err = await run(
        "say", "--channel", "telegram", "--as", "Anna", "where is my order?", "--server", server, env=env, cwd=tmp_path
    )
    assert code == 0, err
    assert out == "recorded by the router's telegram webhook as a message from Anna\n"
    [message] = await factories.messages(router.server.app[STORE], direction="in")
    assert message.channel == "telegram" and message.text == "where is my order?"
    assert message.sender["name"] == "Anna"

    async def notice_sent() -> bool:
        return len(bot_api.sent()) == 1

    await wait_for(notice_sent)
    assert bot_api.sent()[0]["chat_id"] == message.sender["address"]

    code, _, err = await run(
        "say",
        "--channel",
        "telegram",
        "hi",
        "--server",
        server,
        env={"OMNIROUTER_TELEGRAM_WEBHOOK_SECRET": "not-the-secret"},
        cwd=tmp_path,
    )
    assert code == 2 and "refused the signature" in err and "Traceback" not in err
    code, _, err = await run("say", "--channel", "telegram", "hi", "--server", server, cwd=tmp_path)
    assert code == 2 and "set telegram.webhook_secret" in err


async def test_say_on_whatsapp_posts_a_signed_webhook(
    router: TestClient, graph_api: FakeGraphAPI, tmp_path: Path
) -> None:
    server = f"http://127.0.0.1:{router.server.port}"
    env = {"OMNIROUTER_WHATSAPP_APP_SECRET": WA_SECRET, "OMNIROUTER_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID}
    code, out, err = await run(
        "say", "--channel", "whatsapp", "--from", "+371 2000 1234", "hello", "--server", server, env=env, cwd=tmp_path
    )
    assert code == 0, err
    assert out.startswith("recorded by the router's whatsapp webhook")
    [message] = await factories.messages(router.server.app[STORE], direction="in")
    assert message.channel == "whatsapp" and message.sender["address"] == "37120001234"

    async def notice_sent() -> bool:
        return len(graph_api.sent()) == 1

    await wait_for(notice_sent)  # the window is open: the notice went out through the Graph API
    assert graph_api.sent()[0]["to"] == "37120001234"


async def test_telegram_set_webhook_registers_url_secret_and_update_kinds(bot_api: FakeBotAPI, tmp_path: Path) -> None:
    env = {
        "OMNIROUTER_TELEGRAM_TOKEN": TOKEN,
        "OMNIROUTER_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "OMNIROUTER_TELEGRAM_API_BASE": bot_api.url,
        "OMNIROUTER_PUBLIC_URL": "https://chat.example.com",
    }
    code, out, err = await run("telegram", "set-webhook", env=env, cwd=tmp_path)
    assert code == 0, err
    assert out == "webhook set: https://chat.example.com/webhooks/telegram (updates waiting at Telegram: 0)\n"
    assert bot_api.webhook == {
        "url": "https://chat.example.com/webhooks/telegram",
        "secret_token": TG_SECRET,
        "allowed_updates": ["message", "edited_message", "callback_query"],
        "drop_pending_updates": "false",
    }
    code, out, _ = await run("telegram", "set-webhook", "--account", "shop2", "--secret", "s2", env=env, cwd=tmp_path)
    assert code == 0 and "https://chat.example.com/webhooks/telegram/shop2" in out
    code, out, _ = await run("telegram", "webhook-info", env=env, cwd=tmp_path)
    assert code == 0 and out.startswith("url: https://chat.example.com/webhooks/telegram/shop2, pending updates: 0")

    code, _, err = await run("telegram", "set-webhook", env={**env, "OMNIROUTER_PUBLIC_URL": ""}, cwd=tmp_path)
    assert code == 2 and "set server.public_url" in err
    code, _, err = await run("telegram", "set-webhook", "--token", "1:wrong", env=env, cwd=tmp_path)
    assert code == 1 and err == "omnirouter: Telegram refused: Unauthorized\n"
