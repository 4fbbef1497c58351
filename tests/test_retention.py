"""Retention: messages past an account's limit go, with what hangs off them; newer ones and other
accounts' stay; one router process does the work per interval."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.keys import STORE
from bot.retention import RetentionJob, retention_days
from bot.settings import RetentionSettings
from conversations.embedded import EmbeddedMongo
from conversations.models import epoch_ms, utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import Account
from conversations.thread_models import Message
from conversations.traffic import Direction
from tests.conftest import make_settings
from tests.router.test_inbound import wait_for

NOW = utcnow()


async def _message(store: Repositories, account: str, n: int, age_days: float) -> str:
    message = Message(id=f"msg_{account}_{n}", account_id=account, thread_id=f"thr_{account}", contact_id="con_x",
                      direction=Direction.IN, channel="sms", text=f"text {n}", created_at=NOW - timedelta(days=age_days))
    await store._db.messages.insert_one(message.to_doc())
    await store._db.outbox.insert_one({"_id": f"obx_{account}_{n}", "message_id": message.id, "account_id": account})
    await store._db.email_sources.insert_one({"_id": message.id, "account_id": account, "raw": b"mail"})
    await store._db.sms_parts.insert_one({"_id": f"{message.id}|0", "message_id": message.id, "index": 0})
    return message.id


async def _left(store: Repositories, collection: str) -> list[str]:
    return sorted(str(d["_id"]) for d in await store._db[collection].find({}).to_list())


async def test_old_messages_and_what_hangs_off_them_are_deleted(store: Repositories) -> None:
    for account, days in (("shop", 30), ("keeper", 0), ("defaulted", None)):
        await store.accounts.ensure_account(account, account, NOW)
        if days is not None:
            await store.accounts.set_account_fields(account, retention_days=days)
    for account in ("shop", "keeper", "defaulted"):
        for n, age in enumerate((400, 31, 29.9, 1)):
            await _message(store, account, n, age)
    job = RetentionJob(store, RetentionSettings(days=100), batch=1)  # batches of one: the loop is exercised
    assert await job.run_once(NOW) == {"shop": 2, "keeper": 0, "defaulted": 1}
    assert await _left(store, "messages") == [
        "msg_defaulted_1", "msg_defaulted_2", "msg_defaulted_3", "msg_keeper_0", "msg_keeper_1", "msg_keeper_2",
        "msg_keeper_3", "msg_shop_2", "msg_shop_3"]
    assert await _left(store, "outbox") == [f"obx_{m[4:]}" for m in await _left(store, "messages")]
    assert await _left(store, "email_sources") == await _left(store, "messages")
    assert await _left(store, "sms_parts") == [f"{m}|0" for m in await _left(store, "messages")]
    purges = await store._db.audit.find({"action": "retention.purge"}).sort("account_id", 1).to_list()
    assert [(p["account_id"], p["details"]) for p in purges] == [
        ("defaulted", {"messages": 1, "days": 100}), ("shop", {"messages": 2, "days": 30})]
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
    assert active == "v-clean" and queued is not None and (await store.nlu.get_nlu_job(queued) or {})["state"] == "queued"
    purge = await store._db.audit.find_one({"action": "retention.purge"})
    assert purge is not None and purge["details"]["retired_models"] == 1 and purge["details"]["retrain_job"] == queued


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
    embedded: EmbeddedMongo, db_name: str, start_client: Any
) -> None:
    settings = make_settings(embedded.uri, db_name, retention={"days": 7, "interval_minutes": 0.005})
    app = (await start_client(settings)).server.app
    store = app[STORE]
    old, new = await _message(store, "default", 0, 8), await _message(store, "default", 1, 6)

    async def purged() -> bool:
        return await _left(store, "messages") == [new]

    await wait_for(purged, timeout=10)
    assert old not in await _left(store, "email_sources")
