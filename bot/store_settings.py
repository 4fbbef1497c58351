"""The ``[store]`` settings section: which MongoDB (or the embedded store), its database, how long
an operation waits for it, and where the admin reports read on a replica set."""

from __future__ import annotations

from dataclasses import dataclass

from bot.setting_fields import between as _between
from bot.setting_fields import one_of as _one_of
from bot.setting_fields import setting as _setting


def _mongodb_uri(value: str) -> str | None:
    if value and not value.startswith(("mongodb://", "mongodb+srv://")):
        return "must start with mongodb:// or mongodb+srv:// (or be empty for the embedded store)"
    return None


@dataclass(frozen=True)
class StoreSettings:
    mongodb_uri: str = _setting(
        "", check=_mongodb_uri, alias="MONGODB_URI", doc="MongoDB URI; empty: the embedded store"
    )
    database: str = _setting("omnirouter", doc="database name")
    embedded_dir: str = _setting("var/store", doc="data directory of the embedded store (kept 0700, its files 0600)")
    embedded_mode: str = _setting(
        "process", check=_one_of("process", "thread"), doc="run the embedded store as a child process or a thread"
    )
    timeout_ms: int = _setting(
        3000,
        check=_between(100, 120_000),
        doc=(
            "how long an operation waits to find the store (the driver's server selection): a store that "
            "refuses connections fails a request with 503 after this long. Opening a connection, and a store "
            "that has one but does not answer (hung, or its host gone silent), get three times as long (the "
            "driver's connect, socket and heartbeat timeouts), so a store slow for a few seconds is not taken "
            "for one that is down; such a request can take up to about twice that before its 503 (a read is "
            "retried once)"
        ),
    )
    files_quota_mb: int = _setting(1024, check=_between(1, 10**7), doc="MB of attachment files an account may keep")
    reports_read_preference: str = _setting(
        "primary",
        check=_one_of("primary", "primaryPreferred", "secondary", "secondaryPreferred", "nearest"),
        doc="where the admin reports read on a replica set: secondaryPreferred keeps their aggregations off the "
        "primary (they may then lag it by the replication delay); every other read goes to the primary",
    )
