"""Quiet hours: a daily span of local time, over midnight or not, in the account's time zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.business_hours import QuietHours

RIGA = ZoneInfo("Europe/Riga")  # UTC+2 in winter


def test_quiet_hours_over_midnight_end_the_next_morning_local_time() -> None:
    quiet = QuietHours.parse("21:00-09:00")
    late = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)  # 22:30 in Riga
    assert quiet.ends(late, RIGA) == datetime(2026, 1, 16, 9, 0, tzinfo=RIGA)
    early = datetime(2026, 1, 16, 5, 0, tzinfo=UTC)  # 07:00 in Riga
    assert quiet.ends(early, RIGA) == datetime(2026, 1, 16, 9, 0, tzinfo=RIGA)
    assert quiet.ends(datetime(2026, 1, 16, 8, 0, tzinfo=UTC), RIGA) is None  # 10:00 in Riga
    assert quiet.ends(datetime(2026, 1, 15, 20, 30, tzinfo=UTC), ZoneInfo("UTC")) is None  # 20:30 in UTC


def test_quiet_hours_within_a_day_and_none() -> None:
    lunch = QuietHours.parse("12:00-13:00")
    assert lunch.ends(datetime(2026, 1, 15, 12, 30, tzinfo=UTC), ZoneInfo("UTC")) == datetime(
        2026, 1, 15, 13, 0, tzinfo=ZoneInfo("UTC")
    )
    assert QuietHours.parse("").ends(datetime(2026, 1, 15, 12, 30, tzinfo=UTC), RIGA) is None


@pytest.mark.parametrize("spec", ["21:00", "9-17", "21:00-21:00", "25:00-09:00"])
def test_a_spec_it_cannot_read_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        QuietHours.parse(spec)
