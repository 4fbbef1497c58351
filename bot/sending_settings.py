"""The settings sections about sending: ``[outbox]`` (retries, leases, concurrency of every
outbound send) and ``[campaigns]`` (how fast campaigns send, how often the sender looks for
campaigns that are due)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.business_hours import QuietHours
from bot.setting_fields import between as _between
from bot.setting_fields import setting as _setting


@dataclass(frozen=True)
class OutboxSettings:
    max_attempts: int = _setting(8, check=_between(1, 100), doc="attempts before an item is dead-lettered")
    base_delay: float = _setting(
        1.0, check=_between(0.001, 3600), doc="first retry delay, seconds (doubles each attempt, jittered)"
    )
    max_delay: float = _setting(300.0, check=_between(0.001, 86400), doc="longest retry delay, seconds")
    lease_seconds: float = _setting(
        30.0, check=_between(1, 3600), doc="how long a worker holds an item before another may take it"
    )
    poll_interval: float = _setting(
        0.5, check=_between(0.01, 60), doc="how often an idle worker looks for due items, seconds"
    )
    concurrency: int = _setting(16, check=_between(1, 1000), doc="sends in flight per process")


def _quiet_hours(value: str) -> str | None:
    try:
        QuietHours.parse(value)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class CampaignSettings:
    rate: float = _setting(10.0, check=_between(0.01, 10000), doc="messages per second each campaign sends at most")
    poll_interval: float = _setting(
        5.0, check=_between(0.01, 3600), doc="how often the campaign sender looks for campaigns due, seconds"
    )
    quiet_hours: str = _setting(
        "",
        check=_quiet_hours,
        doc="local time (the account's time zone) in which campaigns hold their sending, like 21:00-09:00; empty: none",
    )
