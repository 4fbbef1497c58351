"""The signature of a webhook delivery, for us and for receivers.

Each request carries ``X-Omnirouter-Timestamp`` (Unix seconds when it was sent) and
``X-Omnirouter-Signature: sha256=<hex>``, the HMAC-SHA256 of ``<timestamp>.<raw body>`` under the
subscription's secret. Covering the timestamp lets a receiver refuse a captured request replayed
later (older than its tolerance, five minutes here); the event id in the body lets it drop the
retries of an event it already handled.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Omnirouter-Signature"
TIMESTAMP_HEADER = "X-Omnirouter-Timestamp"
EVENT_HEADER = "X-Omnirouter-Event"
EVENT_ID_HEADER = "X-Omnirouter-Event-Id"
DELIVERY_HEADER = "X-Omnirouter-Delivery"
TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The value of ``X-Omnirouter-Signature`` for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str,
    timestamp_header: str,
    signature_header: str,
    body: bytes,
    now: float | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: a fresh timestamp and a matching signature (constant-time)."""
    if not timestamp_header.isdigit():
        return False
    timestamp = int(timestamp_header)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature_header)
