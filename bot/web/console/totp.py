"""Authenticator-app codes (TOTP, RFC 6238: six digits, 30-second steps, SHA-1 — what every
authenticator app reads from the QR code) and recovery codes, through ``pyotp`` and ``segno``.

A code is accepted for the current step or one step either side (a phone's clock a little off);
which step it matched is returned so the store can take each step once. Recovery codes are ten
groups of 4+4 letters and digits, stored as SHA-256 hashes (they are random, so a plain hash is
enough), each good once.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import time

import pyotp
import segno

STEP_SECONDS = 30
RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i to misread
_TOTP = re.compile(r"^\d{6}$")
_RECOVERY = re.compile(r"^[a-z0-9]{8}$")


def new_secret() -> str:
    """A fresh base32 secret of 160 bits (RFC 4226's recommendation)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, login: str, issuer: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans."""
    return pyotp.TOTP(secret).provisioning_uri(name=login, issuer_name=issuer)


def qr_svg(uri: str) -> bytes:
    """The QR code of ``uri`` as a standalone SVG (no script, no inline style the CSP would refuse)."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(out, kind="svg", scale=5, border=2, xmldecl=True, svgns=True)
    return out.getvalue()


def spaced(secret: str) -> str:
    """The secret in groups of four, for typing it in by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step ``code`` is right for (now, or one step either side), or ``None``."""
    code = re.sub(r"\s", "", code)
    if not _TOTP.match(code):
        return None
    totp, moment = pyotp.TOTP(secret), time.time() if now is None else now
    step = int(moment // STEP_SECONDS)
    for candidate in (step, step - 1, step + 1):
        if secrets.compare_digest(totp.at(candidate * STEP_SECONDS), code):
            return candidate
    return None


def new_recovery_codes() -> list[str]:
    """Ten one-time codes, shown as ``xxxx-xxxx``."""
    codes = ["".join(secrets.choice(_ALPHABET) for _ in range(8)) for _ in range(RECOVERY_CODES)]
    return [f"{code[:4]}-{code[4:]}" for code in codes]


def recovery_hash(code: str) -> str | None:
    """The stored form of a recovery code as typed (any case, with or without its dash), or
    ``None`` when it cannot be one."""
    plain = re.sub(r"[\s-]", "", code).lower()
    return hashlib.sha256(plain.encode()).hexdigest() if _RECOVERY.match(plain) else None
