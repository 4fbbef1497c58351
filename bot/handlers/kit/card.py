"""A channel's card: what the registry needs to know of a channel without importing its adapter.

Each channel package's ``__init__`` defines ``CHANNEL``, a :class:`Channel`: its name, where its
adapter class is (imported only when an install turns the channel on, so a channel's client library
is needed only where it is used), its settings sections, its ``enabled(settings)`` check and the
provider's sending limits (``send_limits(settings)``, read by the campaign sender). Cards import only
settings sections, so ``bot/settings.py`` can assemble its sections from them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class SettingsSections(Protocol):
    """What a channel reads of the install's settings: its own sections, by type
    (``bot.settings.Settings`` is one)."""

    def section(self, kind: type[T]) -> T: ...


@dataclass(frozen=True)
class SendLimits:
    """What the provider lets an install start on a channel: ``per_second`` messages (0: no limit
    of its own), and ``daily_unique`` distinct recipients written to first in a rolling 24 hours
    (WhatsApp's messaging tier; 0: none)."""

    per_second: float = 0.0
    daily_unique: int = 0


def no_limits(settings: SettingsSections) -> SendLimits:
    """A channel whose provider sets no limit that campaigns must keep."""
    return SendLimits()


@dataclass(frozen=True)
class Channel:
    name: str
    adapter: str  # "module:Class"
    sections: Mapping[str, type[Any]]  # settings section name -> its dataclass
    enabled: Callable[[SettingsSections], bool]  # the install's settings -> whether the channel is on
    send_limits: Callable[[SettingsSections], SendLimits] = no_limits  # the install's settings -> its limits
