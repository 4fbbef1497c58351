"""Business hours as people write them: ``mon-fri 09:00-17:00; sat 10:00-14:00`` in a time zone.
An empty spec means always open.

A leaf module (it imports nothing of the project) so that the settings can check a spec when they
load, below everything that reads hours: the queue, the admin pages, the API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _clock(text: str) -> time:
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit()) or int(hours) > 24 or int(minutes) > 59:
        raise ValueError(f"{text!r} is not a time like 09:00")
    return time.max if int(hours) == 24 else time(int(hours), int(minutes))


def _days(text: str) -> list[int]:
    first, _, last = text.partition("-")
    if first not in _DAYS or (last and last not in _DAYS):
        raise ValueError(f"{text!r} is not a day or day range like mon-fri")
    start, end = _DAYS.index(first), _DAYS.index(last or first)
    return list(range(start, end + 1)) if start <= end else [*range(start, 7), *range(end + 1)]


@dataclass(frozen=True)
class BusinessHours:
    """Opening intervals per weekday (0 = Monday) in one time zone."""

    spec: str
    zone: ZoneInfo
    intervals: dict[int, tuple[tuple[time, time], ...]]

    @classmethod
    def parse(cls, spec: str, timezone: str) -> BusinessHours:
        """Raises ``ValueError`` with a one-line reason for a spec it cannot read."""
        intervals: dict[int, list[tuple[time, time]]] = {}
        for part in filter(None, (p.strip().lower() for p in spec.split(";"))):
            words = part.split()
            if len(words) != 2 or "-" not in words[1]:
                raise ValueError(f"{part!r} should look like 'mon-fri 09:00-17:00'")
            opens, _, closes = words[1].partition("-")
            start, end = _clock(opens), _clock(closes)
            if end <= start:
                raise ValueError(f"{part!r} closes before it opens")
            for day in _days(words[0]):
                intervals.setdefault(day, []).append((start, end))
        return cls(spec, ZoneInfo(timezone), {d: tuple(v) for d, v in intervals.items()})

    @property
    def always_open(self) -> bool:
        return not self.intervals

    def is_open(self, moment: datetime) -> bool:
        if self.always_open:
            return True
        local = moment.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        return any(start <= clock < end for start, end in self.intervals.get(local.weekday(), ()))


@dataclass(frozen=True)
class QuietHours:
    """A daily span of local time in which nothing is sent first to customers (``21:00-09:00``
    runs over midnight); an empty spec has none."""

    start: time | None
    end: time | None

    @classmethod
    def parse(cls, spec: str) -> QuietHours:
        """Raises ``ValueError`` with a one-line reason for a spec it cannot read."""
        spec = spec.strip()
        if not spec:
            return cls(None, None)
        opens, sep, closes = spec.partition("-")
        if not sep:
            raise ValueError(f"{spec!r} should look like '21:00-09:00'")
        start, end = _clock(opens.strip()), _clock(closes.strip())
        if start == end:
            raise ValueError(f"{spec!r} starts and ends at the same time")
        return cls(start, end)

    def ends(self, moment: datetime, zone: ZoneInfo) -> datetime | None:
        """When the quiet hours ``moment`` falls in end (``None``: it falls in none)."""
        if self.start is None or self.end is None:
            return None
        local = moment.astimezone(zone)
        clock = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside = self.start <= clock < self.end
        else:
            inside = clock >= self.start or clock < self.end
        if not inside:
            return None
        day = local.date() if clock < self.end else local.date() + timedelta(days=1)
        return datetime.combine(day, self.end, tzinfo=zone)
