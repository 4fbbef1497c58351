"""A report of one inbox reads that inbox's threads of the period through an index (account, inbox,
opening time), an extra inbox's and a first inbox's alike; the report of every inbox keeps reading
the account's threads of the period by time. Checked on the queries the embedded server runs as one
SQL statement (counts, sums, counts by a key). The others (percentiles, per agent, the bot's steps)
begin with the same ``$match`` but run through temporary tables on the embedded server, which a
replay after the server has stopped cannot explain; ``bench/reports.py`` times them.
"""

from __future__ import annotations

from pathlib import Path

from conversations.membership import inbox_match
from conversations.reports import Cohort, day_bucket
from tests.query_plans import captured_store, labelled, sqlite_plans
from tests.report_data import seed

BY_INBOX = "SEARCH threads USING INDEX idx_threads_account_id_inbox_id_opened_at (<expr>=? AND <expr>=? AND <expr>>?"
BY_TIME = "SEARCH threads USING INDEX idx_threads_account_id_opened_at (<expr>=? AND <expr>>?"


async def test_every_query_of_an_inbox_report_reads_through_the_inbox_index(tmp_path: Path) -> None:
    async with captured_store(tmp_path) as (store, capture):
        await seed(store)
        for label, inbox in (("every", {}), ("extra", inbox_match("inb_x")), ("first", inbox_match("first:sms"))):
            cohort = Cohort("default", 0, 10**14, inbox)
            with labelled(f"{label} summary"):
                await store.reports.report_summary(cohort, 10**14, 900_000)
            with labelled(f"{label} days"):
                await store.reports.report_counts_by(cohort, day_bucket())
            with labelled(f"{label} reasons"):
                await store.reports.report_counts_by(cohort, "$handoff_reason", only={"queued_at": {"$gt": 0}})
    plans = sqlite_plans(tmp_path, capture.captured)
    assert len(plans) == 9
    for label, (sql, plan) in plans.items():
        wanted = BY_TIME if label.startswith("every") else BY_INBOX
        assert any(line.startswith(wanted) for line in plan), (label, plan, sql)
        assert not any(line.startswith("SCAN threads") for line in plan), (label, plan)
