"""Secrets at rest: channel tokens and webhook secrets are stored sealed with AES-256-GCM.

A sealed value is one string, ``sealed:v1:<key id>:<base64 of nonce + ciphertext + tag>``, so it
fits wherever the plain string was (a field of an account's ``channels``). The key id is the first
8 hex digits of the key's SHA-256: it names the key without revealing it, so a router started with
the wrong key says so instead of failing on the first webhook. Which fields are secret is decided
by their names (``is_secret_field``): the same rule for every channel.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:v1:"
KEY_BYTES = 32
_SECRET_FIELD = re.compile(r"(^|_)(token|secret|password|key)$")


class SealingError(Exception):
    """A key is malformed or does not open what the store holds; the message is one line."""


def is_secret_field(name: str) -> bool:
    """Whether a setting named ``name`` holds a secret (``token``, ``app_secret``, ``smtp_password``…)."""
    return bool(_SECRET_FIELD.search(name))


def is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def generate_key() -> str:
    """A fresh key as 64 hex characters (what the key file holds)."""
    return os.urandom(KEY_BYTES).hex()


def parse_key(text: str) -> bytes:
    """32 bytes from 64 hex characters or from (URL-safe) base64."""
    text = text.strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        raw = base64.urlsafe_b64decode(text.replace("+", "-").replace("/", "_") + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise SealingError("a secret key is 32 bytes written as 64 hex characters or base64 "
                           "(make one with: python3 -c 'import secrets; print(secrets.token_hex(32))')")
    return raw


class Sealer:
    """Seals and opens strings with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SealingError("a secret key is 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def seal(self, plain: str) -> str:
        nonce = os.urandom(12)
        box = self._aead.encrypt(nonce, plain.encode(), self.key_id.encode())
        return f"{PREFIX}{self.key_id}:{base64.b64encode(nonce + box).decode()}"

    def unseal(self, value: str) -> str:
        if not is_sealed(value):
            return value  # stored before sealing existed: sealed at the next start-up
        key_id, _, body = value[len(PREFIX):].partition(":")
        if key_id != self.key_id:
            raise SealingError(f"a secret in the store was sealed with key {key_id}, not with the configured key {self.key_id}")
        try:
            raw = base64.b64decode(body)
            return self._aead.decrypt(raw[:12], raw[12:], key_id.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SealingError(f"a secret sealed with key {key_id} does not open: it was altered") from None

    def seal_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with every secret field's string sealed (already sealed ones kept)."""
        return {k: self.seal(v) if is_secret_field(k) and isinstance(v, str) and v and not is_sealed(v) else v
                for k, v in config.items()}

    def unseal_fields(self, config: Mapping[str, Any]) -> dict[str, Any]:
        return {k: self.unseal(v) if is_sealed(v) else v for k, v in config.items()}

