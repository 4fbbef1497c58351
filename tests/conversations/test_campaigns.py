"""Campaigns in the store: the audience a campaign selects, and recipients recorded at most once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bot.services.contacts import erase_contact, find_contact
from conversations.campaigns import Audience, Campaign, CampaignState, Recipient, RecipientState, audience_position
from conversations.ids import new_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Contact
from conversations.traffic import Identity

ACCOUNT = "acc_one"


async def contact(store: Repositories, channel: str, address: str, account: str = ACCOUNT, **attributes: str) -> str:
    contact_id = await store.contacts.find_or_create_contact(account, Identity(channel, address), None, utcnow())
    if attributes:
        await store.contacts.update_contact(account, contact_id, utcnow(), attributes=attributes)
    return contact_id


def campaign(
    channel: str = "sms", audience: Audience | None = None, account: str = ACCOUNT, send_at: datetime | None = None
) -> Campaign:
    now = utcnow()
    return Campaign(
        id=new_id("cmp"),
        account_id=account,
        name="Spring sale",
        channel=channel,
        state=CampaignState.SCHEDULED,
        created_at=now,
        send_at=send_at or now,
        audience=audience or Audience(),
        text="20% off this week",
    )


async def test_the_audience_is_the_accounts_contacts_on_the_channel(store: Repositories) -> None:
    riga = await contact(store, "sms", "+37120000001", city="Riga")
    await contact(store, "sms", "+37120000002", city="Tartu")
    await contact(store, "telegram", "501")
    await contact(store, "sms", "+37120000003", account="acc_other", city="Riga")

    assert await store.campaigns.audience_size(ACCOUNT, "sms", Audience()) == 2
    assert await store.campaigns.audience_size(ACCOUNT, "telegram", Audience()) == 1
    by_city = Audience(attribute="city", value="Riga")
    assert await store.campaigns.audience_size(ACCOUNT, "sms", by_city) == 1
    page = await store.campaigns.audience_page(campaign(audience=by_city), None, 10)
    assert [c.id for c in page] == [riga]


async def test_the_audience_by_last_contact_date(store: Repositories) -> None:
    await contact(store, "sms", "+37120000001")
    now = utcnow()
    assert await store.campaigns.audience_size(ACCOUNT, "sms", Audience(contacted_after=now - timedelta(hours=1))) == 1
    assert await store.campaigns.audience_size(ACCOUNT, "sms", Audience(contacted_before=now - timedelta(hours=1))) == 0


async def test_audience_pages_walk_contacts_in_creation_order_and_by_id_within_a_millisecond(
    store: Repositories,
) -> None:
    """Pages of 2 over 7 contacts, 4 of them created in one millisecond (an import, or busy
    traffic): each once, in order, whichever page a millisecond's contacts end on."""
    start = utcnow().replace(microsecond=0)
    made = [(start + timedelta(milliseconds=ms), f"con_{name}") for ms, name in ((5, "e"), (1, "z"), (3, "d"))]
    made += [(start + timedelta(milliseconds=3), f"con_{name}") for name in ("c", "a", "f")]
    made.append((start - timedelta(days=1), "con_y"))
    await store.contacts.import_contacts(
        [
            Contact(id, ACCOUNT, at, at, identities=[Identity("sms", f"+3712000{n:04d}")])
            for n, (at, id) in enumerate(made)
        ]
    )
    await contact(store, "telegram", "501")  # not in the audience: another channel
    sms, walked, position = campaign(), [], None
    while page := await store.campaigns.audience_page(sms, position, 2):
        walked += [c.id for c in page]
        position = audience_position(page[-1])
    assert walked == [id for _, id in sorted(made)]
    assert walked[:3] == ["con_y", "con_z", "con_a"]


async def test_the_audience_by_a_conversation_label(store: Repositories) -> None:
    vip = await contact(store, "sms", "+37120000001")
    other = await contact(store, "sms", "+37120000002")
    await contact(store, "sms", "+37120000003", account="acc_other")
    for who, labels in ((vip, ["vip"]), (other, ["new"])):
        thread = await store.threads.open_thread(ACCOUNT, who, Identity("sms", who), utcnow())
        await store.threads.set_thread_fields(thread.id, labels=labels)
    by_label = Audience(label="vip")
    assert await store.campaigns.audience_size(ACCOUNT, "sms", by_label) == 1
    assert [c.id for c in await store.campaigns.audience_page(campaign(audience=by_label), None, 10)] == [vip]
    labelled = await store.campaigns.labelled_contacts(ACCOUNT, "vip")  # as a walk reads it, once
    assert labelled == {vip}
    assert [c.id for c in await store.campaigns.audience_page(campaign(audience=by_label), None, 10, labelled)] == [vip]
    nobody = Audience(label="gone")  # a label no conversation has: nobody, not everybody
    assert await store.campaigns.audience_size(ACCOUNT, "sms", nobody) == 0
    assert await store.campaigns.audience_page(campaign(audience=nobody), None, 10) == []


async def test_a_recipient_is_recorded_once(store: Repositories) -> None:
    sms = await store.campaigns.create_campaign(campaign())
    first = await store.campaigns.record_recipients(
        sms, [Recipient("con_a", RecipientState.QUEUED), Recipient("con_b", RecipientState.SKIPPED, "opted_out")]
    )
    again = await store.campaigns.record_recipients(
        sms, [Recipient("con_b", RecipientState.QUEUED), Recipient("con_c", RecipientState.QUEUED)]
    )
    assert first == {"con_a", "con_b"}
    assert again == {"con_c"}
    counts = await store.campaigns.recipient_counts(sms.id)
    assert counts == {"queued": 2, "skipped": 1, "skipped:opted_out": 1}


async def test_due_campaigns_are_scheduled_ones_whose_time_came_and_unfinished_ones(store: Repositories) -> None:
    now = utcnow()
    await store.campaigns.create_campaign(campaign(send_at=now + timedelta(hours=1)))
    due = await store.campaigns.create_campaign(campaign(send_at=now - timedelta(minutes=1)))
    done = await store.campaigns.create_campaign(campaign(send_at=now - timedelta(minutes=2)))
    await store.campaigns.start_sending(done.id)
    await store.campaigns.finish_campaign(done.id, now)
    sending = await store.campaigns.create_campaign(campaign(send_at=now - timedelta(minutes=3)))
    await store.campaigns.start_sending(sending.id)
    assert [c.id for c in await store.campaigns.due_campaigns(now)] == [sending.id, due.id]
    assert await store.campaigns.get_campaign("acc_other", due.id) is None


async def test_recipients_threads_are_the_open_ones_or_opened_once(store: Repositories) -> None:
    ann, ben = await contact(store, "sms", "+37120000001"), await contact(store, "sms", "+37120000002")
    anns = await store.threads.open_thread(ACCOUNT, ann, Identity("sms", "+37120000001"), utcnow())
    pairs = [(ann, Identity("sms", "+37120000001")), (ben, Identity("sms", "+37120000002"))]
    first = await store.campaigns.open_threads_for(ACCOUNT, pairs, utcnow())
    again = await store.campaigns.open_threads_for(ACCOUNT, pairs, utcnow())
    assert first[ann].id == again[ann].id == anns.id
    assert first[ben].id == again[ben].id
    assert [t.id for t in await store.threads.contact_threads(ACCOUNT, ben)] == [first[ben].id]


async def test_erasing_a_contact_removes_its_campaign_records(store: Repositories, raw_database: Any) -> None:
    ann = await contact(store, "email", "ann@example.org")
    mail = await store.campaigns.create_campaign(campaign(channel="email"))
    await store.campaigns.record_recipients(mail, [Recipient(ann, RecipientState.QUEUED)])
    token = await store.campaigns.unsubscribe_link(mail, "ann@example.org")
    await erase_contact(store, await find_contact(store, ACCOUNT, ann), "cli")
    assert await raw_database.campaign_recipients.count_documents({"contact_id": ann}) == 0
    assert await store.campaigns.unsubscribe_target(token) is None


async def test_a_reply_is_a_customer_message_after_the_send_in_one_of_the_campaigns_threads(
    store: Repositories, monkeypatch: Any
) -> None:
    monkeypatch.setattr("conversations.campaign_counts._THREADS_A_QUERY", 2)  # its threads asked in chunks
    sent = utcnow()
    db = store.client.database

    def message(thread: str, direction: str, at: datetime, account: str = "default", **meta: Any) -> dict[str, Any]:
        return {
            "_id": new_id("msg"),
            "account_id": account,
            "channel": "sms",
            "contact_id": f"con_{thread}",
            "thread_id": thread,
            "direction": direction,
            "created_at": int(at.timestamp() * 1000),
            "meta": meta,
        }

    later, earlier = sent + timedelta(minutes=5), sent - timedelta(minutes=5)
    await db.messages.insert_many(
        [message(f"thr_{n}", "out", sent, campaign="cmp_1") for n in range(5)]
        + [
            message("thr_0", "in", later),  # an answer
            message("thr_0", "in", later + timedelta(minutes=1)),  # another one in the same conversation
            message("thr_1", "in", earlier),  # written before the send
            message("thr_2", "out", later),  # the business wrote again, the customer did not
            message("thr_4", "in", later),  # an answer
            message("thr_9", "in", later),  # a conversation the campaign did not write to
            message("thr_3", "in", later, account="other"),  # another account's message (not one here)
        ]
    )

    assert await store.campaigns.replied_count("default", "cmp_1", sent) == 2
    assert await store.campaigns.replied_count("default", "cmp_2", sent) == 0  # no such campaign
