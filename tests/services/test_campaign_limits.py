"""Campaigns keep to their provider's limits, through the router and the fake provider APIs: an SMS
campaign starts messages no faster than the sender's rate at Twilio, and a WhatsApp campaign writes
first to no more distinct customers in 24 hours than the account's messaging tier allows."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.campaigns import create_campaign
from bot.settings import Settings
from bot.web.keys import CAMPAIGNS
from conversations.campaigns import CampaignState
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity
from tests.conftest import operator_client, raw_database_of
from tests.factories import ACCOUNT, inbound, record
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.twilio import FakeTwilio
from tests.handlers.channels import channel_settings
from tests.handlers.sms.test_sms import sms_settings, twilio  # noqa: F401 (a fixture)
from tests.router.test_inbound import wait_for
from tests.services.test_campaigns import graph_sent, is_done, state_of, twilio_sent

DAY_MS = 24 * 3600 * 1000


async def test_an_sms_campaign_starts_messages_at_the_senders_rate_not_the_campaign_rate(
    embedded: EmbeddedMongo, db_name: str, twilio: FakeTwilio
) -> None:
    settings = sms_settings(
        embedded.uri, db_name, twilio.url, campaigns={"rate": 100, "poll_interval": 0.1}, sms={"messages_per_second": 5}
    )
    async with operator_client(settings) as router:
        store = router.server.app[STORE]
        for n in range(11):
            await store.contacts.find_or_create_contact(ACCOUNT, Identity("sms", f"+141555510{n:02}"), None, utcnow())
        campaign = await create_campaign(
            store, router.server.app[CAMPAIGNS], account_id=ACCOUNT, name="Slow", channel="sms", text="Sale today"
        )
        await wait_for(lambda: is_done(store, campaign.id), timeout=20)
        await wait_for(lambda: twilio_sent(twilio, 11))
        started = sorted(m.created_at for m in await store.messages.list_messages(ACCOUNT, direction="out"))
    # 11 messages at 5 a second: 10 intervals of 0.2 s (at the campaign rate alone, 0.1 s in all)
    assert len(started) == 11 and (started[-1] - started[0]).total_seconds() >= 1.9


def whatsapp_settings(embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI, daily_unique: int) -> Settings:
    return channel_settings(
        embedded.uri,
        db_name,
        graph_api=graph_api.url,
        campaigns={"rate": 100, "poll_interval": 0.1},
        whatsapp={"daily_unique_limit": daily_unique},
    )


async def whatsapp_campaign(router: TestClient, count: int) -> str:
    app = router.server.app
    store: Repositories = app[STORE]
    for n in range(count):
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("whatsapp", f"3712000000{n}"), None, utcnow())
    campaign = await create_campaign(
        store,
        app[CAMPAIGNS],
        account_id=ACCOUNT,
        name="Orders",
        channel="whatsapp",
        text="",
        template="order_update",
        parameters=["Ann", "A-17"],
    )
    return campaign.id


async def test_a_whatsapp_campaign_holds_at_the_messaging_tier_and_goes_on_once_the_window_moves(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="omnirouter.services.campaigns")
    async with operator_client(whatsapp_settings(embedded, db_name, graph_api, daily_unique=3)) as router:
        store = router.server.app[STORE]
        campaign_id = await whatsapp_campaign(router, 5)
        await wait_for(lambda: graph_sent(graph_api, 3))
        await asyncio.sleep(1.5)
        assert len(graph_api.sent()) == 3
        assert await state_of(store, campaign_id) == CampaignState.SENDING
        first = min(m.created_at for m in await store.messages.list_messages(ACCOUNT, direction="out"))
        [held] = [r for r in caplog.records if r.getMessage() == "campaign.tier_limit"]
        until = datetime.fromisoformat(held.omnirouter_fields["until"])
        assert abs((until - (first + timedelta(hours=24))).total_seconds()) < 1  # when the first leaves the window
        # a day on: the three messages leave the rolling window
        await raw_database_of(store).messages.update_many(
            {"meta.campaign": campaign_id}, {"$inc": {"created_at": -DAY_MS - 60_000}}
        )
        await wait_for(lambda: is_done(store, campaign_id), timeout=20)
        await wait_for(lambda: graph_sent(graph_api, 5))
        assert sorted(call["to"] for call in graph_api.sent()) == [f"3712000000{n}" for n in range(5)]
        assert await store.campaigns.recipient_counts(campaign_id) == {"queued": 5}


async def test_a_campaign_stopped_while_it_waits_for_the_tier_sends_no_more_when_the_window_moves(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    async with operator_client(whatsapp_settings(embedded, db_name, graph_api, daily_unique=2)) as router:
        store = router.server.app[STORE]
        campaign_id = await whatsapp_campaign(router, 4)
        await wait_for(lambda: graph_sent(graph_api, 2))
        assert await store.campaigns.cancel_campaign(ACCOUNT, campaign_id)
        await asyncio.sleep(1.5)  # the waiting campaign sees the stop within a second
        await raw_database_of(store).messages.update_many(
            {"meta.campaign": campaign_id}, {"$inc": {"created_at": -DAY_MS - 60_000}}
        )
        await asyncio.sleep(2.0)
        assert len(graph_api.sent()) == 2
        assert await state_of(store, campaign_id) == CampaignState.CANCELLED
        assert await store.campaigns.recipient_counts(campaign_id) == {"queued": 2}


async def test_without_a_tier_limit_a_whatsapp_campaign_sends_to_everyone(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    async with operator_client(whatsapp_settings(embedded, db_name, graph_api, daily_unique=0)) as router:
        store = router.server.app[STORE]
        campaign_id = await whatsapp_campaign(router, 5)
        await wait_for(lambda: is_done(store, campaign_id), timeout=20)
        await wait_for(lambda: graph_sent(graph_api, 5))


async def test_the_tier_counts_distinct_contacts_of_the_accounts_campaigns_on_the_channel_in_the_window(
    store: Repositories,
) -> None:
    now = utcnow()
    for account, address, channel, campaign, hours_ago in [
        ("acme", "37120000001", "whatsapp", "c1", 1),
        ("acme", "37120000001", "whatsapp", "c2", 2),  # the same contact again: counted once
        ("acme", "37120000002", "whatsapp", "c1", 3),
        ("acme", "37120000003", "whatsapp", "c1", 30),  # out of the window
        ("acme", "37120000004", "whatsapp", None, 1),  # an agent's reply, not a campaign's
        ("acme", "37120000005", "sms", "c3", 1),  # another channel
        ("other", "37120000006", "whatsapp", "c4", 1),  # another account
    ]:
        _, thread, _ = await record(
            store, inbound(f"in-{account}-{address}-{campaign}", address, account=account, channel=channel)
        )
        await store.outbox.create_outbound(
            dedup_key=f"{account}:{address}:{campaign}",
            thread=thread,
            to=Identity(channel, address),
            text="Hello",
            sender={"kind": "bot"},
            now=now - timedelta(hours=hours_ago),
            meta={"campaign": campaign} if campaign else None,
        )
    written, leaves_first = await store.campaigns.written_first("acme", "whatsapp", now - timedelta(hours=24))
    assert written == 2
    assert leaves_first is not None and abs((leaves_first - (now - timedelta(hours=3))).total_seconds()) < 1
    other, _ = await store.campaigns.written_first("other", "whatsapp", now - timedelta(hours=24))
    assert other == 1
