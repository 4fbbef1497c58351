"""Reports in the REST API: an account's token reads the report of a period, of every inbox or of
one, as the CSV export's rows; an inbox that is not the account's is a 422, a wrong period a 400;
another account's token gets a 404 and nothing of the account."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from bot.keys import STORE
from tests.services.test_reports_inboxes import second_bot, seed_two_inboxes
from tests.web.api.test_api_campaigns import answer, token_of

BASE = "/api/accounts/default/reports?from=2025-03-01&until=2025-03-07"


def figures(report: dict[str, Any]) -> dict[tuple[str, str, str], Any]:
    return {(r["section"], r["item"], r["measure"]): r["value"] for r in report["rows"]}


async def test_a_token_reads_the_report_of_every_inbox_and_of_one(client: TestClient) -> None:
    inbox, _ = await seed_two_inboxes(client.server.app[STORE])
    headers = await token_of(client, "default")
    status, every = await answer(await client.get(BASE, headers=headers))
    assert status == 200, every
    assert (every["account_id"], every["from"], every["until"], every["inbox"]) == (
        "default",
        "2025-03-01",
        "2025-03-07",
        None,
    )
    assert figures(every)[("conversations", "", "total")] == 18
    assert figures(every)[("conversations_by_inbox", "whatsapp: WhatsApp (first inbox)", "count")] == 6
    status, one = await answer(await client.get(f"{BASE}&inbox={inbox.id}", headers=headers))
    assert status == 200 and one["inbox"] == inbox.id
    assert figures(one)[("conversations", "", "total")] == 3
    assert figures(one)[("agents", "ann", "handling_s")] == "950"
    status, first = await answer(await client.get(f"{BASE}&inbox=first:whatsapp", headers=headers))
    assert status == 200 and figures(first)[("conversations", "", "total")] == 6


async def test_another_accounts_inbox_is_a_422_and_its_token_a_404(client: TestClient) -> None:
    store = client.server.app[STORE]
    await seed_two_inboxes(store)
    theirs = await second_bot(store, "rival")
    headers, rival = await token_of(client, "default"), await token_of(client, "rival")
    for key in (theirs.id, "first:fax", "telegram"):
        status, refused = await answer(await client.get(f"{BASE}&inbox={key}", headers=headers))
        assert (status, refused["error"]) == (422, "unknown_inbox"), key
        assert "rival sales bot" not in str(refused)
    for query in ("from=2025-13-01", "from=2025-03-07&until=2025-03-01", "from=yesterday", "inbox="):
        status, refused = await answer(await client.get(f"/api/accounts/default/reports?{query}", headers=headers))
        assert status == 400, query
    # from the other side: rival's token reads its own inbox, and nothing of default's
    status, refused = await answer(await client.get(BASE, headers=rival))
    assert status == 404
    own = f"/api/accounts/rival/reports?from=2025-03-01&until=2025-03-07&inbox={theirs.id}"
    status, report = await answer(await client.get(own, headers=rival))
    assert status == 200 and figures(report)[("conversations", "", "total")] == 0
