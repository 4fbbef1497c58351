"""``store.reports_read_preference``: the admin reports' reads can go to a replica set's secondaries
while everything else reads from the primary. (No replica set here: these check the setting, that
it reaches the reports' reads and only theirs, and that the reports still give the worked-out
figures under it. On a standalone server, as here, the driver sends no read preference; where a
replica set runs the reads is the driver's and the server's part, not measured here.)"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from bot.services.reports import build_report
from bot.setting_fields import SettingsError
from bot.settings import Settings, load_settings
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.report_data import EXPECTED, NOW, SINCE, SLA_MINUTES, UNTIL, seed


def test_the_setting_is_read_from_the_environment_and_checked() -> None:
    assert load_settings(env={}).store.reports_read_preference == "primary"
    env = {"OMNIROUTER_STORE_REPORTS_READ_PREFERENCE": "secondaryPreferred"}
    assert load_settings(env=env).store.reports_read_preference == "secondaryPreferred"
    with pytest.raises(SettingsError, match=r"store\.reports_read_preference"):
        load_settings(env={"OMNIROUTER_STORE_REPORTS_READ_PREFERENCE": "secondaries"})


async def test_the_reports_read_with_their_preference_and_give_the_same_figures(
    embedded: EmbeddedMongo, db_name: str
) -> None:
    store = Repositories.connect(embedded.uri, db_name, reports_read_preference="secondaryPreferred")
    try:
        assert store.reports.read_preference == "secondaryPreferred"
        # the message path, the queue and the console keep reading from the primary
        assert store.client.database.read_preference.mongos_mode == "primary"
        await seed(store)
        report = await build_report(store, "default", SINCE, UNTIL, first_response_minutes=SLA_MINUTES, now=NOW)
        assert (report.total, report.resolved, report.by_channel) == (
            EXPECTED["total"],
            EXPECTED["resolved"],
            EXPECTED["by_channel"],
        )
    finally:
        await store.client.database.client.drop_database(db_name)
        await store.close()


async def test_the_router_builds_its_reports_with_the_configured_preference(
    settings: Settings, start_client: Callable[[Settings], Awaitable[TestClient]]
) -> None:
    client = await start_client(settings.replace("store", reports_read_preference="nearest"))
    assert client.app is not None
    assert client.app[STORE].reports.read_preference == "nearest"
    default = await start_client(settings)
    assert default.app is not None
    assert default.app[STORE].reports.read_preference == "primary"
