"""What the console and the REST API both do, written once: replies, thread actions (transfer,
resolve, take, labels, notes), contacts (merge, export, erase), accounts, reports, retention.

Services sit between the web layer and the pipeline: they take the repositories and pipeline parts
they need in their constructor, and the web reaches them through one AppKey (``SERVICES``). They
import the router, handlers and data layer, never the web."""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.replies import Replies
from bot.services.threads import ThreadActions


@dataclass(frozen=True)
class Services:
    """The services the web layer calls, built once the pipeline runs (``app[SERVICES]``)."""

    replies: Replies
    threads: ThreadActions
