"""Campaigns sent through the router to the fake Telegram Bot API: once per contact even when the
router stops mid-campaign and a new one resumes it, skips counted, and the configured pace kept."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest

from bot.keys import STORE
from bot.services.campaigns import PAGE, CampaignRefused, create_campaign
from bot.settings import Settings
from bot.web.keys import CAMPAIGNS
from conversations.campaigns import Audience, Campaign, CampaignState, Recipient, RecipientState
from conversations.embedded import EmbeddedMongo
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.traffic import Identity
from tests.conftest import operator_client
from tests.factories import ACCOUNT
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.telegram_api import FakeBotAPI
from tests.fakes.twilio import FakeTwilio
from tests.handlers.channels import channel_settings, fixture, post_telegram
from tests.handlers.sms.test_sms import sms_settings, twilio  # noqa: F401 (a fixture)
from tests.router.test_inbound import wait_for


def settings_for(embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI, rate: float) -> Settings:
    return channel_settings(
        embedded.uri,
        db_name,
        telegram_api=bot_api.url,
        campaigns={"rate": rate, "poll_interval": 0.1},
        outbox={"lease_seconds": 1},
    )


async def telegram_contacts(store: Repositories, count: int) -> list[str]:
    return [
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("telegram", str(9000 + n)), None, utcnow())
        for n in range(count)
    ]


async def state_of(store: Repositories, campaign_id: str) -> CampaignState | None:
    return await store.campaigns.campaign_state(campaign_id)


async def test_a_campaign_resumed_by_a_new_router_sends_each_contact_once(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    # the first router queues 10 a second (its stop lands seconds before the end, however far its
    # outbox lags behind), the second 40
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=10)) as first:
        store = first.server.app[STORE]
        await telegram_contacts(store, 60)
        campaign = await create_campaign(
            store, first.server.app[CAMPAIGNS], account_id=ACCOUNT, name="Spring", channel="telegram", text="Hello!"
        )
        await wait_for(lambda: sent_at_least(bot_api, 10), timeout=20)  # the outbox may lag by seconds
        assert await state_of(store, campaign.id) == CampaignState.SENDING, "the first router stops mid-campaign"
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=40)) as second:
        store = second.server.app[STORE]
        await wait_for(lambda: is_done(store, campaign.id), timeout=20)
        await wait_for(lambda: sent_at_least(bot_api, 60))
        await asyncio.sleep(1.5)  # a lease of the first router running out would send again now
        chats = [call["chat_id"] for call in bot_api.sent()]
        assert sorted(chats) == sorted(str(9000 + n) for n in range(60))
        counts = await store.campaigns.recipient_counts(campaign.id)
        assert counts == {"queued": 60}


async def test_a_campaign_stopped_past_a_page_resumes_from_its_position_without_sending_twice(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    count = PAGE * 2 + 50
    # the first router stops as soon as its first page is recorded: the second page's messages
    # start at 60 a second, so it is seconds from being recorded however busy the machine (the
    # pace does not catch up after a stall); what the first router sent is not the measure, its
    # outbox may lag the campaign by seconds
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=60)) as first:
        store = first.server.app[STORE]
        await telegram_contacts(store, count)
        campaign = await create_campaign(
            store, first.server.app[CAMPAIGNS], account_id=ACCOUNT, name="Big", channel="telegram", text="Hello!"
        )
        await wait_for(lambda: has_position(store, campaign.id), timeout=30)
        assert await store.campaigns.recipient_counts(campaign.id) == {"queued": PAGE}, "stops in the second page"
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=150)) as second:
        store = second.server.app[STORE]
        await wait_for(lambda: is_done(store, campaign.id), timeout=30)
        await wait_for(lambda: sent_at_least(bot_api, count))
        await asyncio.sleep(1.5)  # a lease of the first router running out would send again now
        chats = [call["chat_id"] for call in bot_api.sent()]
        assert sorted(chats) == sorted(str(9000 + n) for n in range(count))
        assert await store.campaigns.recipient_counts(campaign.id) == {"queued": count}


async def test_a_stopped_campaign_sends_no_more_within_seconds_and_counts_what_went(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=50)) as router:
        store = router.server.app[STORE]
        await telegram_contacts(store, 150)
        campaign = await create_campaign(
            store, router.server.app[CAMPAIGNS], account_id=ACCOUNT, name="Oops", channel="telegram", text="Oops"
        )
        await wait_for(lambda: sent_at_least(bot_api, 10))
        assert await store.campaigns.cancel_campaign(ACCOUNT, campaign.id)
        await asyncio.sleep(2.5)  # seen within a second; what was started is stored and sent
        went = len(bot_api.sent())
        await asyncio.sleep(1.0)
        assert len(bot_api.sent()) == went < 150
        assert await state_of(store, campaign.id) == CampaignState.CANCELLED
        assert await store.campaigns.recipient_counts(campaign.id) == {"queued": went}


async def test_contacts_without_an_identity_on_the_channel_are_skipped_and_counted(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=100)) as router:
        store = router.server.app[STORE]
        await telegram_contacts(store, 3)
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("webchat", "visitor-1"), None, utcnow())
        campaign = await create_campaign(
            store, router.server.app[CAMPAIGNS], account_id=ACCOUNT, name="News", channel="telegram", text="News!"
        )
        await wait_for(lambda: is_done(store, campaign.id))
        await wait_for(lambda: sent_at_least(bot_api, 3))
        assert await store.campaigns.recipient_counts(campaign.id) == {"queued": 3}


async def test_a_campaign_an_earlier_release_left_midway_sends_only_to_whom_it_had_not_reached(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    """Such a campaign kept its place as a ``cursor`` (a contact id, in id order), which the walk
    by creation time cannot use: it walks again from the start, and the contacts it recorded
    get nothing, not even a thread (theirs may have been closed since)."""
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=100)) as router:
        store = router.server.app[STORE]
        contacts = await telegram_contacts(store, 6)
        reached = sorted(contacts)[:4]
        now = utcnow()
        campaign = Campaign(
            "cmp_old", ACCOUNT, "Old", "telegram", CampaignState.SCHEDULED, now, now + timedelta(days=1)
        )
        campaign = await store.campaigns.create_campaign(dataclasses.replace(campaign, text="Hello again"))
        await store.campaigns.record_recipients(campaign, [Recipient(c, RecipientState.QUEUED) for c in reached])
        await store.client.database.campaigns.update_one(
            {"_id": campaign.id}, {"$set": {"state": "sending", "cursor": reached[-1], "send_at": epoch_ms(now)}}
        )
        await wait_for(lambda: is_done(store, campaign.id), timeout=30)
        await wait_for(lambda: sent_at_least(bot_api, 2))
        await asyncio.sleep(1.5)  # anything more would go out now
        unreached = {str(9000 + n) for n, c in enumerate(contacts) if c not in reached}
        assert sorted(call["chat_id"] for call in bot_api.sent()) == sorted(unreached)
        for contact in reached:
            assert await store.threads.find_open_thread(contact, "telegram") is None
        assert await store.campaigns.recipient_counts(campaign.id) == {"queued": 6}


async def test_a_campaign_to_a_label_writes_to_the_contacts_of_its_labelled_conversations(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=100)) as router:
        store, sender, vip = router.server.app[STORE], router.server.app[CAMPAIGNS], Audience(label="vip")
        for chat, contact in zip(("9000", "9001", "9002", "9003", "9004"), await telegram_contacts(store, 5)):
            if chat in ("9001", "9003"):
                labelled = await store.threads.open_thread(ACCOUNT, contact, Identity("telegram", chat), utcnow())
                await store.threads.set_thread_fields(labelled.id, labels=["vip"])
        made = await create_campaign(
            store, sender, account_id=ACCOUNT, name="V", channel="telegram", text="Hi", audience=vip
        )
        await wait_for(lambda: is_done(store, made.id), timeout=30)
        await wait_for(lambda: sent_at_least(bot_api, 2))
        await asyncio.sleep(1)  # anything more would go out now
        assert sorted(call["chat_id"] for call in bot_api.sent()) == ["9001", "9003"]


async def test_a_campaign_message_lands_in_the_contacts_open_thread(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=100)) as router:
        store = router.server.app[STORE]
        contact = await store.contacts.find_or_create_contact(
            ACCOUNT, Identity("telegram", "5512345678"), None, utcnow()
        )
        campaign = await create_campaign(
            store, router.server.app[CAMPAIGNS], account_id=ACCOUNT, name="One", channel="telegram", text="Hi there"
        )
        await wait_for(lambda: is_done(store, campaign.id))
        thread = await store.threads.find_open_thread(contact, "telegram")
        assert thread is not None
        assert [m.text for m in await store.messages.thread_messages(thread.id)] == ["Hi there"]
        # not one console refresh per send: the live feed reads no campaign message
        assert await store.events.replies_since(0) == []
        assert (await post_telegram(router, fixture("telegram", "text"))).status == 200  # the customer answers
        texts = [m.text for m in await store.messages.thread_messages(thread.id)]
        assert texts[0] == "Hi there" and len(texts) >= 2
        # someone the campaign did not write to writes too: not an answer to it
        stranger = fixture("telegram", "text")
        stranger["update_id"] += 1
        stranger["message"]["from"]["id"] = stranger["message"]["chat"]["id"] = 5598765432
        assert (await post_telegram(router, stranger)).status == 200
        # each message's activity is written by its dispatch: the stranger's first
        await wait_for(lambda: wrote_last(store, "5598765432"))
        await wait_for(lambda: replied(store, campaign, 1))
        assert await store.campaigns.replied_count(campaign.account_id, campaign.id, campaign.send_at) == 1


async def test_sending_keeps_the_configured_pace(embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI) -> None:
    async with operator_client(settings_for(embedded, db_name, bot_api, rate=20)) as router:
        store = router.server.app[STORE]
        await telegram_contacts(store, 21)
        campaign = await create_campaign(
            store, router.server.app[CAMPAIGNS], account_id=ACCOUNT, name="Paced", channel="telegram", text="Slowly"
        )
        await wait_for(lambda: is_done(store, campaign.id), timeout=20)
        await wait_for(lambda: sent_at_least(bot_api, 21))
        started = sorted(m.created_at for m in await store.messages.list_messages(ACCOUNT, direction="out"))
    # 21 messages at 20 a second are started over at least a second (20 intervals). The sends at the
    # fake follow each start at once, but on a loaded machine a late first one can bunch them: the
    # provider's rate over many messages is what the 10,000-contact kill test counts
    assert len(started) == 21 and (started[-1] - started[0]).total_seconds() >= 0.95


async def sent_at_least(bot_api: FakeBotAPI, count: int) -> bool:
    return len(bot_api.sent()) >= count


async def wrote_last(store: Repositories, chat: str) -> bool:
    """Whether the Telegram user ``chat`` has an open thread with a customer message's activity."""
    contact = await store.contacts.contact_by_identity(ACCOUNT, "telegram", chat)
    thread = await store.threads.find_open_thread(contact, "telegram") if contact else None
    return thread is not None and thread.last_inbound_ms is not None


async def replied(store: Repositories, campaign: Campaign, count: int) -> bool:
    return await store.campaigns.replied_count(campaign.account_id, campaign.id, campaign.send_at) == count


async def has_position(store: Repositories, campaign_id: str) -> bool:
    campaign = await store.campaigns.get_campaign(ACCOUNT, campaign_id)
    return campaign is not None and campaign.position is not None


async def is_done(store: Repositories, campaign_id: str) -> bool:
    return await state_of(store, campaign_id) == CampaignState.DONE


async def test_sms_contacts_who_said_stop_are_skipped_and_counted(
    embedded: EmbeddedMongo, db_name: str, twilio: FakeTwilio
) -> None:
    settings = sms_settings(embedded.uri, db_name, twilio.url, campaigns={"rate": 100, "poll_interval": 0.1})
    async with operator_client(settings) as router:
        store = router.server.app[STORE]
        for number in ("+14155550001", "+14155550002", "+14155550003"):
            await store.contacts.find_or_create_contact(ACCOUNT, Identity("sms", number), None, utcnow())
        await store.phone.set_consent(ACCOUNT, "sms", "+14155550002", "stop", epoch_ms(utcnow()), "msg_stop")
        campaign = await create_campaign(
            store, router.server.app[CAMPAIGNS], account_id=ACCOUNT, name="Sale", channel="sms", text="Sale today"
        )
        await wait_for(lambda: is_done(store, campaign.id))
        await wait_for(lambda: twilio_sent(twilio, 2))
        await asyncio.sleep(0.3)
        assert sorted(m["To"] for m in twilio.sent) == ["+14155550001", "+14155550003"]
        assert await store.campaigns.recipient_counts(campaign.id) == {
            "queued": 2,
            "skipped": 1,
            "skipped:opted_out": 1,
        }


async def twilio_sent(twilio: FakeTwilio, count: int) -> bool:
    return len(twilio.sent) >= count


async def test_quiet_hours_in_the_accounts_time_zone_hold_the_sending(
    embedded: EmbeddedMongo, db_name: str, bot_api: FakeBotAPI
) -> None:
    now = utcnow()
    around_now = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"  # UTC: the default zone
    settings = channel_settings(
        embedded.uri,
        db_name,
        telegram_api=bot_api.url,
        campaigns={"rate": 100, "poll_interval": 0.1, "quiet_hours": around_now},
    )
    async with operator_client(settings) as router:
        store = router.server.app[STORE]
        await telegram_contacts(store, 2)
        campaign = await create_campaign(
            store, router.server.app[CAMPAIGNS], account_id=ACCOUNT, name="Night", channel="telegram", text="Hi"
        )
        await asyncio.sleep(1.0)
        assert bot_api.sent() == []
        assert await state_of(store, campaign.id) == CampaignState.SENDING
        assert await store.campaigns.recipient_counts(campaign.id) == {}


async def test_a_whatsapp_campaign_sends_a_configured_template_and_refuses_free_text(
    embedded: EmbeddedMongo, db_name: str, graph_api: FakeGraphAPI
) -> None:
    settings = channel_settings(
        embedded.uri, db_name, graph_api=graph_api.url, campaigns={"rate": 100, "poll_interval": 0.1}
    )
    async with operator_client(settings) as router:
        store, sender = router.server.app[STORE], router.server.app[CAMPAIGNS]
        await store.contacts.find_or_create_contact(ACCOUNT, Identity("whatsapp", "37120000001"), None, utcnow())
        order = {"account_id": ACCOUNT, "name": "Orders", "channel": "whatsapp"}
        with pytest.raises(CampaignRefused, match="template"):
            await create_campaign(store, sender, **order, text="Free text outside the window")
        with pytest.raises(CampaignRefused, match="parameters"):
            await create_campaign(store, sender, **order, text="", template="order_update", parameters=["Ann"])
        campaign = await create_campaign(
            store, sender, **order, text="", template="order_update", parameters=["Ann", "A-17"]
        )
        await wait_for(lambda: is_done(store, campaign.id))
        await wait_for(lambda: graph_sent(graph_api, 1))
        [sent] = graph_api.sent()
        assert sent["type"] == "template" and sent["template"]["name"] == "order_update"
        params = [p["text"] for p in sent["template"]["components"][0]["parameters"]]
        assert params == ["Ann", "A-17"]


async def graph_sent(graph_api: FakeGraphAPI, count: int) -> bool:
    return len(graph_api.sent()) >= count
