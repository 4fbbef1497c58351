"""Comparing what a request presents (a signature, a secret, a token) with what we expect.

Always in constant time (``hmac.compare_digest`` on bytes), and for any text a request can carry:
aiohttp hands undecodable header bytes over as lone surrogates, and ``compare_digest`` refuses
non-ASCII ``str`` with a ``TypeError``, so a plain ``given.encode()`` or a ``str`` comparison
turned a garbled header into a 500.
"""

from __future__ import annotations

import hmac


def as_bytes(value: str | bytes) -> bytes:
    """Any ``str`` as bytes, lone surrogates included (they came from bytes in the first place)."""
    return value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    """``True`` when ``given`` equals ``expected``, compared in constant time."""
    return hmac.compare_digest(as_bytes(given), as_bytes(expected))
