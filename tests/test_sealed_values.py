"""Sealed values are bound to their account and field: one copied to another account or another
field does not open, and the channel of that account says so (no 500, never used as stored); a
plain value where a sealed one belongs is refused; values the previous release sealed (bound to
the key only) and secrets it kept in clear, the web chat key among them, are upgraded at the first
start of this release, once: a plain value written into the store after that stays refused."""

from __future__ import annotations

import base64
import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bot.handlers.kit.egress_guards import EgressGuards
from bot.handlers.kit.protocol import PermanentSendError
from bot.handlers.webchat.tokens import VisitorTokens
from bot.install_token import SECRET_NAME, InstallTokenError, rotate
from bot.keys import ADAPTERS, STORE
from bot.network_settings import WebhookSettings
from bot.router.webhooks.sender import WebhookSender
from bot.secret_key import open_sealer
from bot.settings import SecuritySettings
from bot.web.api.kit import issue_token
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.sealing import INSTALL, Sealer, SealingError, parse_key
from conversations.tenant_models import Account, DeliveryState, WebhookSubscription
from tests.conftest import TEST_SECRET_KEY, anonymous, make_settings, raw_database_of
from tests.handlers.channels import fixture, post_telegram

KEY = parse_key(TEST_SECRET_KEY)
TOKEN_FIELD = "channels.telegram.token"


def sealed_by_the_previous_release(plain: str) -> str:
    """A value sealed as the release before this one sealed it: AES-GCM with the key id alone
    as associated data (``sealed:v1:``)."""
    key_id = Sealer(KEY).key_id
    nonce = os.urandom(12)
    box = AESGCM(KEY).encrypt(nonce, plain.encode(), key_id.encode())
    return f"sealed:v1:{key_id}:{base64.b64encode(nonce + box).decode()}"


def test_a_sealed_value_opens_only_for_the_account_and_field_it_was_sealed_for() -> None:
    sealer = Sealer(KEY)
    sealed = sealer.seal("123:token", "shopa", TOKEN_FIELD)
    assert sealer.unseal(sealed, "shopa", TOKEN_FIELD) == "123:token"
    with pytest.raises(SealingError, match=r"of account shopb does not open: .* sealed for another account or field"):
        sealer.unseal(sealed, "shopb", TOKEN_FIELD)
    with pytest.raises(SealingError, match="does not open"):
        sealer.unseal(sealed, "shopa", "channels.telegram.webhook_secret")
    with pytest.raises(SealingError, match="does not open"):
        sealer.unseal(sealed, INSTALL, "secrets.webchat-visitor-tokens.value")
    with pytest.raises(SealingError, match="stored in clear where a sealed value belongs"):
        sealer.unseal("123:token", "shopa", TOKEN_FIELD)
    with pytest.raises(SealingError, match="first sealed format"):
        sealer.unseal(sealed_by_the_previous_release("123:token"), "shopa", TOKEN_FIELD)


async def two_accounts(client: TestClient) -> Repositories:
    store: Repositories = client.server.app[STORE]
    for account, bot_token in (("shopa", "111:shopa-bot-token"), ("shopb", "222:shopb-bot-token")):
        assert await store.accounts.create_account(Account(id=account, name=account, created_at=utcnow()))
        await store.accounts.set_account_channel(
            account, "telegram", {"token": bot_token, "webhook_secret": f"{account}-hook"}
        )
    return store


async def refused_for(client: TestClient, account: str, hook_secret: str) -> str:
    """What the account's Telegram channel does with its unusable secret: a webhook is answered
    404 (a clear JSON error, never a 500), a send fails for good saying why; the why is returned."""
    response = await post_telegram(
        client, fixture("telegram", "text"), secret=hook_secret, path=f"/webhooks/telegram/{account}"
    )
    assert response.status == 404 and (await response.json())["error"] == "unknown_account"
    with pytest.raises(PermanentSendError) as failed:
        await client.server.app[ADAPTERS]["telegram"].bots.for_send(account)  # type: ignore[attr-defined]
    return str(failed.value)


async def test_a_token_copied_to_another_account_does_not_open_and_that_channel_says_so(
    embedded: Any, db_name: str, start_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, telegram={"for_accounts": True}))
    store = await two_accounts(client)
    raw = await raw_database_of(store).accounts.find_one({"_id": "shopa"})
    assert raw is not None
    await raw_database_of(store).accounts.update_one(
        {"_id": "shopb"}, {"$set": {"channels.telegram.token": raw["channels"]["telegram"]["token"]}}
    )  # someone with the files copies it

    account = await store.accounts.get_account("shopb")
    assert account is not None and "token" not in account.channels["telegram"]
    assert account.sealing_problems and "sealed for another account" in account.sealing_problems["telegram.token"]
    with caplog.at_level(logging.ERROR, logger="omnirouter.handlers"):
        why = await refused_for(client, "shopb", "shopb-hook")
    assert "channels.telegram.token of account shopb does not open" in why and "111:shopa" not in why
    assert any(r.getMessage() == "channel.account_misconfigured" for r in caplog.records)
    token = await issue_token(store, "shopb", "ops", ["read"], "test")
    shown = await (await client.get("/api/accounts/shopb", headers={"Authorization": f"Bearer {token}"})).json()
    assert shown["channels"]["telegram"]["unreadable"] == ["token"]
    assert shown["channels"]["telegram"]["secrets"] == {"webhook_secret": True}
    opened = await store.accounts.get_account("shopa")  # the account it was copied from is untouched
    assert opened is not None and opened.channels["telegram"]["token"] == "111:shopa-bot-token"


async def test_a_secret_moved_to_another_field_does_not_open(embedded: Any, db_name: str, start_client: Any) -> None:
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, telegram={"for_accounts": True}))
    store = await two_accounts(client)
    raw = await raw_database_of(store).accounts.find_one({"_id": "shopb"})
    assert raw is not None
    await raw_database_of(store).accounts.update_one(
        {"_id": "shopb"}, {"$set": {"channels.telegram.webhook_secret": raw["channels"]["telegram"]["token"]}}
    )
    why = await refused_for(client, "shopb", "222:shopb-bot-token")
    assert "channels.telegram.webhook_secret of account shopb does not open" in why

    for subscription_id, secret in (("wh_1", "first-secret"), ("wh_2", "second-secret")):
        await store.webhooks.create_webhook(
            WebhookSubscription(
                id=subscription_id,
                account_id="shopb",
                url="https://example.com/",
                events=["thread.created"],
                secret=secret,
                created_at=utcnow(),
            )
        )
    first = await raw_database_of(store).webhook_subscriptions.find_one({"_id": "wh_1"})
    assert first is not None
    await raw_database_of(store).webhook_subscriptions.update_one(
        {"_id": "wh_2"}, {"$set": {"secret": first["secret"]}}
    )
    moved = await store.webhooks.get_webhook("wh_2")
    assert moved is not None and moved.secret == "" and "does not open" in (moved.secret_problem or "")


async def test_a_plain_value_written_into_a_secret_field_is_refused(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, telegram={"for_accounts": True}))
    store = await two_accounts(client)
    await raw_database_of(store).accounts.update_one(
        {"_id": "shopb"}, {"$set": {"channels.telegram.webhook_secret": "planted"}}
    )
    why = await refused_for(client, "shopb", "planted")  # the planted secret opens nothing
    assert "channels.telegram.webhook_secret of account shopb is stored in clear" in why

    subscription = WebhookSubscription(
        id="wh_planted",
        account_id="shopb",
        url="https://example.com/hook",
        events=["thread.created"],
        secret="s",
        created_at=utcnow(),
    )
    await store.webhooks.create_webhook(subscription)
    await raw_database_of(store).webhook_subscriptions.update_one(
        {"_id": "wh_planted"}, {"$set": {"secret": "planted"}}
    )
    listed = await store.webhooks.list_webhooks("shopb")
    assert [s.secret for s in listed] == [""] and "stored in clear" in (listed[0].secret_problem or "")
    await store.webhooks.enqueue_deliveries(listed, "evt_1", "thread.created", "{}", utcnow(), "thr_1")
    sender = WebhookSender(
        store, WebhookSettings(), EgressGuards.from_settings(make_settings("mongodb://unused", "unused")).webhooks
    )
    delivery = await store.webhooks.lease_delivery(sender.owner, utcnow(), timedelta(seconds=30))
    assert delivery is not None
    await sender.deliver(delivery)  # never signed with the planted secret: dead at once, saying why
    dead = await store.webhooks.get_delivery(delivery.id)
    assert dead is not None and dead.state == DeliveryState.DEAD and "stored in clear" in (dead.last_error or "")
    await sender.close()


async def test_values_sealed_by_the_previous_release_and_clear_secrets_are_upgraded_at_start(
    store: Repositories,
) -> None:
    """A store written the way the previous release wrote it: its sealing check, a channel token
    and a webhook secret sealed bound to the key only, a channel secret and the web chat key in
    clear. After one start, every one is sealed for its account and field and opens there."""
    await raw_database_of(store).secrets.insert_one(
        {
            "_id": "sealing-key-check",
            "key_id": Sealer(KEY).key_id,
            "sample": sealed_by_the_previous_release("omnirouter sealing check"),
        }
    )
    await raw_database_of(store).secrets.insert_one({"_id": "webchat-visitor-tokens", "value": "the-old-clear-key"})
    await raw_database_of(store).accounts.insert_one(
        {
            "_id": "old",
            "name": "Old",
            "created_at": 0,
            "channels": {
                "telegram": {
                    "token": sealed_by_the_previous_release("77:old-token"),
                    "webhook_secret": "old-clear-hook",
                }
            },
        }
    )
    await raw_database_of(store).webhook_subscriptions.insert_one(
        {
            "_id": "wh_old",
            "account_id": "old",
            "url": "https://example.com/hook",
            "events": ["thread.created"],
            "secret": sealed_by_the_previous_release("whsec_old"),
            "created_at": 0,
            "active": True,
        }
    )

    await open_sealer(SecuritySettings(secret_key=TEST_SECRET_KEY), store)

    raws = [
        await raw_database_of(store)[c].find_one({"_id": i})
        for c, i in (
            ("secrets", "sealing-key-check"),
            ("secrets", "webchat-visitor-tokens"),
            ("accounts", "old"),
            ("webhook_subscriptions", "wh_old"),
        )
    ]
    text = str(raws)
    assert "sealed:v1:" not in text and "the-old-clear-key" not in text and "old-clear-hook" not in text
    assert text.count("sealed:v2:") == 5
    account = await store.accounts.get_account("old")
    assert account is not None and account.sealing_problems is None
    assert account.channels["telegram"] == {"token": "77:old-token", "webhook_secret": "old-clear-hook"}
    assert (await store.webhooks.get_webhook("wh_old")).secret == "whsec_old"  # type: ignore[union-attr]
    assert await store.secrets.sealed_secret("webchat-visitor-tokens", lambda: "a-new-key") == (
        "the-old-clear-key",
        False,
    )
    await open_sealer(SecuritySettings(secret_key=TEST_SECRET_KEY), store)  # the next start: nothing to do
    assert (await store.webhooks.get_webhook("wh_old")).secret == "whsec_old"  # type: ignore[union-attr]


async def test_web_chat_visitors_keep_their_tokens_when_the_clear_key_is_sealed(
    embedded: Any, db_name: str, start_client: Any
) -> None:
    """The web chat key the previous release kept in clear: sealed at the next start, and a
    visitor's token issued with it still names the same visitor."""
    old = Repositories.connect(embedded.uri, db_name)
    await raw_database_of(old).secrets.insert_one({"_id": "webchat-visitor-tokens", "value": "the-old-clear-key"})
    await old.close()
    visitor, token = VisitorTokens("the-old-clear-key").issue("default")
    client: TestClient = await start_client(make_settings(embedded.uri, db_name, webchat={"secret": ""}))
    raw = await raw_database_of(client.server.app[STORE]).secrets.find_one({"_id": "webchat-visitor-tokens"})
    assert raw is not None and raw["value"].startswith("sealed:v2:") and "the-old-clear-key" not in str(raw)
    response = await client.post("/webchat/messages", json={"id": "m1", "text": "still me", "visitor_token": token})
    assert response.status == 202, await response.text()
    # the same visitor as before the upgrade
    assert await client.server.app[STORE].contacts.contact_by_identity("default", "webchat", visitor) is not None
    forged = VisitorTokens("another-key").token_for("default", visitor)
    refused = await client.post("/webchat/messages", json={"id": "m2", "text": "me too", "visitor_token": forged})
    assert refused.status == 400


async def test_the_upgrade_runs_once_and_a_plain_secret_planted_later_stays_refused(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    """Someone who can write to the store (not read the key) plants a known install token and a
    channel token in clear, hoping the next start seals them for use. The store was upgraded
    already: the next start refuses both, saying what to do, and the planted token opens nothing."""
    settings = make_settings(
        embedded.uri,
        db_name,
        api={"token": "", "token_file": str(tmp_path / "api.token")},
        telegram={"for_accounts": True},
    )
    first = await start_client(settings)
    store: Repositories = first.server.app[STORE]
    assert (await store.secrets.sealing_check() or {}).get("format") == 2  # upgraded on the first start: once
    await two_accounts(first)
    await raw_database_of(store).secrets.update_one(
        {"_id": SECRET_NAME}, {"$set": {"value": "omi_known-to-the-attacker"}}
    )
    await raw_database_of(store).accounts.update_one(
        {"_id": "shopb"}, {"$set": {"channels.telegram.webhook_secret": "planted"}}
    )

    with pytest.raises(InstallTokenError) as refused:
        await start_client(settings)
    assert "secrets.api-install-token.value is stored in clear where a sealed value belongs: refused" in str(
        refused.value
    )
    assert "omnirouter api-token --rotate" in str(refused.value)
    raw = await raw_database_of(store).secrets.find_one({"_id": SECRET_NAME})
    assert raw is not None and raw["value"] == "omi_known-to-the-attacker"  # never sealed, so never used

    await rotate(settings.api, store)  # what the message says to do; the router starts again
    client = await start_client(settings)
    async with anonymous(client) as session:
        async with session.get("/api/outbox", headers={"Authorization": "Bearer omi_known-to-the-attacker"}) as answer:
            assert answer.status == 401
    why = await refused_for(client, "shopb", "planted")  # the planted channel secret: still refused
    assert "channels.telegram.webhook_secret of account shopb is stored in clear" in why
