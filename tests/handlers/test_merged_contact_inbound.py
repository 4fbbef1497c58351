"""After a manual merge, a customer writing from the absorbed contact's address reaches the kept
contact: through the real Telegram webhook, the contact lookup by identity finds the kept one."""

from __future__ import annotations

import copy

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.contact_merge import merge, unmerge
from tests import factories
from tests.handlers.channels import fixture, post_telegram
from tests.router.test_inbound import wait_for


async def test_a_message_on_a_merged_away_identity_lands_on_the_kept_contact(router: TestClient) -> None:
    store = router.server.app[STORE]
    assert (await post_telegram(router, fixture("telegram", "text"))).status == 200
    await wait_for(lambda: _inbound_count(router, 1))
    [first] = await factories.messages(store, direction="in")
    _, web_thread, _ = await factories.record(store, factories.inbound("w1", "anna-web", "hi", account="default"))
    keep, gone = web_thread.contact_id, first.contact_id
    record = await merge(store, "default", keep, gone, "cli")
    moved = await store.threads.get_thread(first.thread_id)
    assert moved is not None and moved.contact_id == keep

    later = copy.deepcopy(fixture("telegram", "text"))
    later["update_id"] += 1
    later["message"]["message_id"] += 1
    later["message"]["text"] = "Any news on 4471?"
    assert (await post_telegram(router, later)).status == 200
    await wait_for(lambda: _inbound_count(router, 2))
    second = next(m for m in await factories.messages(store, direction="in") if m.text == "Any news on 4471?")
    assert second.contact_id == keep and second.thread_id == first.thread_id  # the joined conversation
    assert await factories.contact_count(store) == 2  # no new contact was made for the address

    await unmerge(store, "default", record.id, "cli")
    assert {m.contact_id for m in await factories.messages(store, channel="telegram")} == {gone}


async def _inbound_count(router: TestClient, n: int) -> bool:
    return len(await factories.messages(router.server.app[STORE], direction="in", channel="telegram")) >= n
