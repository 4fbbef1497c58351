"""An account admin cannot act as the install's superadmin through the router's own API.

The attack: account A's Telegram ``api_base`` names the router itself,
``http://127.0.0.1:<port>/api/threads/<B's thread>/resolve?``, so the bot's next reply to A's customer
is POSTed by the router to its own API, from 127.0.0.1 and without a token — which, on an install
without ``api.token``, used to count as the superadmin. The value is written straight into the store
here, as one accepted before the egress guard refused it: whatever lets such a URL through, the API
must not obey it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.keys import PIPELINE, STORE
from bot.services.accounts import create_account
from conversations.thread_models import ThreadStatus
from conversations.traffic import Identity, Inbound
from tests.conftest import make_settings, raw_database_of
from tests.handlers.channels import fixture, post_telegram
from tests.router.test_inbound import wait_for


async def test_a_reply_posted_to_the_router_s_own_api_resolves_nobody_s_thread(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    settings = make_settings(
        embedded.uri,
        db_name,
        api={"token": "", "token_file": str(tmp_path / "api.token")},
        telegram={"for_accounts": True, "pacing": 0.0},
    )
    client = await start_client(settings)
    app, store = client.server.app, client.server.app[STORE]
    for account in ("shop-a", "shop-b"):
        await create_account(store, account, account.title(), None)
    recorded, task = await app[PIPELINE].receive(
        Inbound(
            account_id="shop-b",
            channel="webchat",
            external_id="b-1",
            sender=Identity("webchat", "bea"),
            text="I need a human",
        )
    )
    assert task is not None
    await task
    victim = recorded.thread.id
    assert (await store.threads.get_thread(victim)).status == ThreadStatus.QUEUED  # type: ignore[union-attr]

    own_api = f"http://127.0.0.1:{client.server.port}/api/threads/{victim}/resolve?"
    await store.accounts.set_account_channel(
        "shop-a", "telegram", {"token": "123:shop-a-bot", "webhook_secret": "shop-a-secret", "api_base": own_api}
    )
    answer = await post_telegram(
        client, fixture("telegram", "text"), secret="shop-a-secret", path="/webhooks/telegram/shop-a"
    )
    assert answer.status == 200 and (await answer.json())["recorded"] == 1

    async def reply_given_up() -> bool:  # the queued notice to A's customer, addressed to our own API
        item = await raw_database_of(store).messages.find_one({"account_id": "shop-a", "send": {"$exists": True}})
        return item is not None and item["send"].get("state") == "dead"

    await wait_for(reply_given_up, timeout=15)
    item = await raw_database_of(store).messages.find_one({"account_id": "shop-a", "send": {"$exists": True}})
    assert item is not None and "api_base" in str(item["send"].get("last_error")), item  # the egress guard said why
    thread = await store.threads.get_thread(victim)
    assert thread is not None and thread.status == ThreadStatus.QUEUED, "B's thread was resolved through A's bot"
    assert (
        await raw_database_of(store).audit.count_documents({"account_id": "shop-b", "action": {"$regex": "resolve"}})
        == 0
    )
