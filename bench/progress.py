"""A progress bar for the benchmarks' long loads, on stderr (no dependency)."""

from __future__ import annotations

import sys
import time


class Progress:
    """``label [#####-----]  45%  450,000/1,000,000  9,120/s  ETA 60 s``, redrawn at most 5 times a
    second on a terminal and every 10 % otherwise (a log keeps a few lines, not thousands)."""

    def __init__(self, label: str, total: int, width: int = 30) -> None:
        self.label, self.total, self.width = label, max(total, 1), width
        self.done = 0
        self.started = time.perf_counter()
        self._tty = sys.stderr.isatty()
        self._drawn_at = 0.0
        self._drawn_tenth = -1

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        tenth = 10 * self.done // self.total
        if (self._tty and now - self._drawn_at >= 0.2) or (not self._tty and tenth > self._drawn_tenth):
            self._draw(now)
            self._drawn_at, self._drawn_tenth = now, tenth

    def close(self) -> float:
        """Draw the final state; returns the seconds since the start."""
        now = time.perf_counter()
        self._draw(now)
        if self._tty:
            sys.stderr.write("\n")
        return now - self.started

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        filled = min(self.width, self.width * self.done // self.total)
        eta = (self.total - self.done) / rate if rate and self.done < self.total else 0.0
        line = (
            f"{self.label} [{'#' * filled}{'-' * (self.width - filled)}] {100 * self.done // self.total:3d}%  "
            f"{self.done:,}/{self.total:,}  {rate:,.0f}/s  ETA {eta:,.0f} s"
        )
        sys.stderr.write(("\r" + line) if self._tty else line + "\n")
        sys.stderr.flush()
