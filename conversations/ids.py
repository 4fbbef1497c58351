"""Record ids: a short kind prefix plus a time-ordered ObjectId, readable in logs and URLs."""

from __future__ import annotations

import hashlib

from bson import ObjectId

PREFIXES = frozenset(
    {
        "acc",
        "inb",
        "con",
        "thr",
        "msg",
        "obx",
        "agt",
        "aud",
        "shf",
        "evt",
        "tl",
        "tok",
        "whs",
        "whd",
        "exm",
        "era",
        "upl",
        "mrg",
        "cmp",
    }
)


def new_id(prefix: str) -> str:
    """A fresh id such as ``thr_6b06f2ebf2c47029e4fd7607``."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{ObjectId()}"


def derived_id(prefix: str, key: str) -> str:
    """A deterministic id for a record that must be created at most once per ``key``.

    Replaying the same step (after a crash, or in a second router process) derives the same id,
    so the unique ``_id`` index turns the replay into a no-op instead of a duplicate.
    """
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return f"{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:24]}"
