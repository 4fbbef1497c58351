"""Retention: messages past an account's limit go, with what hangs off them; newer ones and other
accounts' stay; one router process does the work per interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.keys import STORE
from bot.services.retention import RetentionJob, retention_days
from bot.settings import RetentionSettings
from conversations.embedded import EmbeddedMongo
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import Account
from conversations.thread_models import Thread, ThreadStatus
from conversations.traffic import Identity
from tests import factories
from tests.conftest import make_settings
from tests.router.test_inbound import wait_for
from tests.test_erasure_copies import files_holding

NOW = utcnow()


async def _message(store: Repositories, account: str, n: int, age_days: float) -> str:
    """A reply sent ``age_days`` ago, with what hangs off it: its outbox item, a kept mail source
    and a sent SMS part."""
    when = NOW - timedelta(days=age_days)
    thread = Thread(
        id=f"thr_{account}",
        account_id=account,
        contact_id="con_x",
        channel="sms",
        status=ThreadStatus.BOT,
        opened_at=when,
        last_message_at=when,
        address="+15550000",
    )
    message, _ = await store.outbox.store_outbound(
        dedup_key=f"{account}|{n}",
        thread=thread,
        to=Identity("sms", "+15550000"),
        text=f"text {n}",
        sender={"kind": "bot"},
        now=when,
    )
    await store.mail.keep_email_source(account, message.id, b"mail")
    await store.phone.note_sms_part(message.id, 0, f"SM{account}{n}")
    return message.id


async def _left(store: Repositories, made: list[str], accounts: tuple[str, ...] = ("default",)) -> list[str]:
    """The messages left of those ``made``: what hangs off each is still there, and of those gone
    nothing is left."""
    left: list[str] = []
    for account in accounts:
        left += [message.id for message in await factories.messages(store, account)]
    assert sorted(item.message_id for item in await factories.outbox(store)) == sorted(left)
    for message_id in made:
        kept = message_id in left
        assert (await store.mail.email_source(message_id) is not None) is kept, message_id
        assert bool(await store.phone.sent_sms_parts(message_id, 1)) is kept, message_id
    return sorted(left)


async def test_old_messages_and_what_hangs_off_them_are_deleted(store: Repositories) -> None:
    for account, days in (("shop", 30), ("keeper", 0), ("defaulted", None)):
        await store.accounts.ensure_account(account, account, NOW)
        if days is not None:
            await store.accounts.set_account_fields(account, retention_days=days)
    made = {
        (account, n): await _message(store, account, n, age)
        for account in ("shop", "keeper", "defaulted")
        for n, age in enumerate((400, 31, 29.9, 1))
    }
    job = RetentionJob(store, RetentionSettings(days=100), batch=1)  # batches of one: the loop is exercised
    assert await job.run_once(NOW) == {"shop": 2, "keeper": 0, "defaulted": 1}
    assert await _left(store, list(made.values()), ("shop", "keeper", "defaulted")) == sorted(
        made[key]
        for key in (
            ("defaulted", 1),
            ("defaulted", 2),
            ("defaulted", 3),
            ("keeper", 0),
            ("keeper", 1),
            ("keeper", 2),
            ("keeper", 3),
            ("shop", 2),
            ("shop", 3),
        )
    )
    purges = []
    for account in ("defaulted", "keeper", "shop"):
        purges += await factories.audit(store, account, action="retention.purge")
    assert [(p.account_id, p.details) for p in purges] == [
        ("defaulted", {"messages": 1, "days": 100}),
        ("shop", {"messages": 2, "days": 30}),
    ]
    assert await job.run_once(NOW) == {"shop": 0, "keeper": 0, "defaulted": 0}


async def test_model_versions_trained_on_expired_messages_are_retired(store: Repositories) -> None:
    """An example learned from a message goes with it, and so does every model version trained on
    it: the active one gives way to the newest version left, and a retraining is queued."""
    await store.accounts.ensure_account("shop", "shop", NOW)
    await store.accounts.set_account_fields("shop", retention_days=30)
    old, new = await _message(store, "shop", 0, 40), await _message(store, "shop", 1, 1)
    await store.nlu.save_nlu_model("shop", "v-clean", b"c", {"learned_from": [new]}, NOW - timedelta(days=2))
    await store.nlu.save_nlu_model("shop", "v-taught", b"t", {"learned_from": [old, new]}, NOW - timedelta(days=1))
    assert await store.nlu.activate_nlu_model("shop", "v-taught", "test", NOW)
    assert await RetentionJob(store, RetentionSettings(), retrain=True).run_once(NOW) == {"shop": 1}
    assert (await store.nlu.get_nlu_model("v-taught") or {}).get("retired_by") == "retention"
    assert await store.nlu.nlu_model_blob("v-taught") is None and await store.nlu.nlu_model_blob("v-clean") == b"c"
    active, queued = await store.nlu.nlu_active_state("shop")
    assert (
        active == "v-clean" and queued is not None and (await store.nlu.get_nlu_job(queued) or {})["state"] == "queued"
    )
    [purge] = await factories.audit(store, "shop", action="retention.purge")
    assert purge.details["retired_models"] == 1 and purge.details["retrain_job"] == queued


async def test_zero_keeps_messages_for_ever() -> None:
    forever = RetentionSettings(days=0)
    assert retention_days(None, forever) == 0
    account = Account(id="a", name="a", created_at=NOW, retention_days=0)
    assert retention_days(account, RetentionSettings(days=30)) == 0
    assert retention_days(Account(id="a", name="a", created_at=NOW), RetentionSettings(days=30)) == 30


async def test_one_process_runs_the_job_per_interval(store: Repositories) -> None:
    now_ms = epoch_ms(NOW)
    claims = [await store.privacy.claim_job("retention", now_ms, 60_000) for _ in range(3)]
    assert claims == [True, False, False]
    assert await store.privacy.claim_job("retention", now_ms + 59_999, 60_000) is False
    assert await store.privacy.claim_job("retention", now_ms + 60_000, 60_000) is True


async def test_the_router_runs_retention_in_the_background(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, store: Repositories
) -> None:
    # the messages exist before the router starts: a pass running between a message and its mail
    # source being written would leave that source behind for good
    old, new = await _message(store, "default", 0, 8), await _message(store, "default", 1, 6)
    settings = make_settings(embedded.uri, db_name, retention={"days": 7, "interval_minutes": 0.005})
    store = (await start_client(settings)).server.app[STORE]

    async def purged() -> bool:
        return [m.id for m in await factories.messages(store)] == [new]

    await wait_for(purged, timeout=10)
    assert await _left(store, [old, new]) == [new]  # and the old one's mail source, SMS part and outbox item went


async def test_expired_messages_leave_no_copy_in_the_embedded_stores_files(own_store: EmbeddedMongo) -> None:
    """The search's text index keeps a deleted message's terms until it is merged: a purge that
    deleted something merges it and truncates the write-ahead log, as an erasure does."""
    store = Repositories.connect(own_store.uri, "retained")
    await store.ensure_indexes()
    try:
        await store.accounts.ensure_account("default", "default", NOW)
        made = [await _message(store, "default", n, 400) for n in range(3)]
        await store.outbox.store_outbound(
            dedup_key="default|needle",
            thread=Thread(
                id="thr_needle",
                account_id="default",
                contact_id="con_x",
                channel="sms",
                status=ThreadStatus.BOT,
                opened_at=NOW - timedelta(days=400),
                last_message_at=NOW - timedelta(days=400),
                address="+15550000",
            ),
            to=Identity("sms", "+15550000"),
            text="Deliver it to Zvejniekciems please",
            sender={"kind": "bot"},
            now=NOW - timedelta(days=400),
        )
        assert [m.id for m in await store.messages.search_messages("default", "zvejniekciems")]
        assert files_holding(own_store.data_dir, ["zvejniekciems"])

        assert await RetentionJob(store, RetentionSettings(days=100)).run_once(NOW) == {"default": 4}

        assert await _left(store, made) == []
        assert files_holding(own_store.data_dir, ["zvejniekciems"]) == {}
    finally:
        await store.close()
