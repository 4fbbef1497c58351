"""Python's garbage collector set for a long-running server: the router and the embedded store.

Python starts a collection of its youngest generation after every 700 net allocations of
container objects. Under load that was one every few messages in the router, each one walking
the documents, parse results and requests of the messages in flight: 10–15 % of the router's CPU
(timed with ``gc.callbacks`` during ``bench/load.py``), and in the embedded store a full
collection every few seconds. Ten times the threshold leaves the reference cycles a message's
objects form uncollected a little longer (up to 7,000 more container objects, and what they
hold) and takes most of that CPU back; the router's peak RSS under load did not move
(docs/performance.md)."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 7_000


def settle_collector() -> None:
    """Collect the youngest generation after ``YOUNG_THRESHOLD`` net allocations; the older
    generations keep Python's own ratios. Called once a server process has started."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
