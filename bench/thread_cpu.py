"""CPU seconds by thread of this process and by child process, from /proc (Linux).

Wall-clock latencies on a shared machine move with everybody else's load; the CPU a piece of
work costs does not. ``CpuMeter`` snapshots, for each live thread of this process, its run time
(``/proc/self/task/<tid>/schedstat``, nanoseconds) and groups threads by their name without the
pool index (``asyncio_3`` -> ``asyncio``, the main thread -> ``event loop``); threads that ended
between two snapshots are counted in ``ended threads`` (the process's total less its live threads).
Other processes (the embedded store, an engine child) are read by pid from ``/proc/<pid>/stat``.
"""

from __future__ import annotations

import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

_INDEX = re.compile(r"_\d+$")


def _thread_seconds(tid: int) -> float | None:
    try:
        return int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def process_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` (all its threads), 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _group(thread: threading.Thread) -> str:
    if thread is threading.main_thread():
        return "event loop"
    return _INDEX.sub("", thread.name)


class CpuMeter:
    """CPU seconds spent between ``start()`` and ``stop()`` by thread group and by process."""

    def __init__(self, processes: Callable[[], Iterable[tuple[str, int]]] = tuple) -> None:
        self._processes = processes  # (name, pid) of the other processes to count
        self._threads: dict[int, tuple[str, float]] = {}
        self._others: dict[str, float] = {}
        self._total = 0.0

    def _snapshot(self) -> tuple[dict[int, tuple[str, float]], dict[str, float], float]:
        threads = {}
        for thread in threading.enumerate():
            seconds = _thread_seconds(thread.native_id) if thread.native_id else None
            if seconds is not None and thread.native_id is not None:
                threads[thread.native_id] = (_group(thread), seconds)
        others: dict[str, float] = defaultdict(float)
        for name, pid in self._processes():
            others[name] += process_seconds(pid)
        return threads, dict(others), process_seconds(os.getpid())

    def start(self) -> None:
        self._threads, self._others, self._total = self._snapshot()

    def stop(self) -> dict[str, float]:
        threads, others, total = self._snapshot()
        spent: dict[str, float] = defaultdict(float)
        for tid, (group, seconds) in threads.items():
            spent[group] += seconds - self._threads.get(tid, (group, 0.0))[1]
        live = sum(spent.values())
        spent["ended threads"] = max(0.0, total - self._total - live)
        for name, seconds in others.items():
            spent[f"process {name}"] = seconds - self._others.get(name, 0.0)
        return {name: round(seconds, 3) for name, seconds in sorted(spent.items())}
