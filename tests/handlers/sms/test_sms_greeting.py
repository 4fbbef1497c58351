"""An SMS inbox's greeting, end to end through the real twilio client against the Twilio fake: the
first text of a new conversation to that number is greeted from that number before the answer;
the second is not; the install's own number, which has none, greets no one."""

from __future__ import annotations

from typing import Any

from bot.keys import STORE
from conversations.embedded import EmbeddedMongo
from tests.conftest import raw_database_of
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio
from tests.handlers.sms.test_sms import CUSTOMER, OUR_NUMBER
from tests.handlers.sms.test_sms_inboxes import LINES, _settings, _started, _text, fakes  # noqa: F401
from tests.router.test_inbound import wait_for

HELLO = "Shop two's line here: hello!"


async def test_a_number_greets_a_new_conversation_once_before_its_answer(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, fakes: dict[str, FakeTwilio]
) -> None:
    client, headers = await _started(embedded, db_name, start_client, fakes)
    store = client.server.app[STORE]
    _sid, token, number = LINES["shop2"]
    body = {
        "channel": "sms",
        "name": "greeted line",
        "settings": {**_settings("shop2", fakes["shop2"]), "greeting": HELLO},
    }
    answer = await client.post("/api/accounts/shop2/inboxes", json=body, headers=headers["shop2"])
    assert answer.status == 201, await answer.text()
    assert (await answer.json())["settings"]["greeting"] == HELLO

    assert (await _text(client, number, f"SM{1:032x}", token)).status == 200
    assert (await _text(client, OUR_NUMBER, f"SM{2:032x}", AUTH_TOKEN)).status == 200

    async def both_answered() -> bool:
        return len(fakes["shop2"].sent) >= 2 and len(fakes["install"].sent) >= 1

    await wait_for(both_answered, timeout=30)
    greeting, first_answer = fakes["shop2"].sent[:2]
    assert greeting["Body"] == HELLO and greeting["From"] == number and greeting["To"] == CUSTOMER
    assert first_answer["Body"] != HELLO
    assert all(sent["Body"] != HELLO for sent in fakes["install"].sent)

    assert (await _text(client, number, f"SM{3:032x}", token)).status == 200  # the same conversation

    async def decided_again() -> bool:
        decided = {"account_id": "shop2", "direction": "in", "decision": {"$exists": True}}
        return await raw_database_of(store).messages.count_documents(decided) == 2

    await wait_for(decided_again, timeout=30)
    assert [sent["Body"] for sent in fakes["shop2"].sent].count(HELLO) == 1
