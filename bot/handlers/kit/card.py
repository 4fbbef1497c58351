"""A channel's card: what the registry needs to know of a channel without importing its adapter.

Each channel package's ``__init__`` defines ``CHANNEL``, a :class:`Channel`: its name, where its
adapter class is (imported only when an install turns the channel on, so a channel's client library
is needed only where it is used), its settings sections and its ``enabled(settings)`` check. Cards
import only settings sections, so ``bot/settings.py`` can assemble its sections from them.
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
class Channel:
    name: str
    adapter: str  # "module:Class"
    sections: Mapping[str, type[Any]]  # settings section name -> its dataclass
    enabled: Callable[[SettingsSections], bool]  # the install's settings -> whether the channel is on
