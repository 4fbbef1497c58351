"""What the console and the REST API both do, written once: replies, thread actions (transfer,
resolve, take, labels, notes), contacts (export, erase), agents, accounts, reports, retention.

Services sit between the web layer and the pipeline, and import the router, handlers and data
layer, never the web. Those that need pipeline parts (``Replies``, ``ThreadActions``) take them in
their constructor and are built once by the application factory into :class:`Services`, which the
web reaches through one AppKey (``bot.web.keys.SERVICES``); those that need only the repositories
(agents, contacts, accounts, reports) are functions taking them as their first argument."""

from __future__ import annotations

from dataclasses import dataclass

from bot.services.replies import Replies
from bot.services.threads import ThreadActions


@dataclass(frozen=True)
class Services:
    """The services the web layer calls, built once the pipeline runs (``app[SERVICES]``)."""

    replies: Replies
    threads: ThreadActions
