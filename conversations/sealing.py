"""Secrets at rest: channel tokens, webhook secrets and the install's own keys are stored sealed
with AES-256-GCM, each bound to the account and the field it belongs to.

A sealed value is one string, ``sealed:v2:<key id>:<base64 of nonce + ciphertext + tag>``, so it
fits wherever the plain string was (a field of an account's ``channels``). The key id is the first
8 hex digits of the key's SHA-256: it names the key without revealing it, so a router started with
the wrong key says so instead of failing on the first webhook. The associated data is the key id,
the account id and the field's path (``channels.telegram.token``, ``webhooks.<id>.secret``;
``INSTALL`` for the install's own secrets), so a value copied to another account or another field
does not open. Which fields are secret is decided by their names (``is_secret_field``): the same
rule for every channel.

Where a sealed value belongs, a plain one is refused. The only way a plain secret becomes sealed
is the upgrade of a store an earlier release wrote (``Sealer.upgrade``, which also reseals values
of the first format, ``sealed:v1:``, bound to the key only); it runs once per store, at the first
start of this release, and the store then records that its secrets are in ``FORMAT``: after that a
plain value written into the store is refused at every start, never sealed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:v2:"
FORMAT = 2  # a store whose sealing check says so holds only ``PREFIX`` values: nothing to upgrade
V1_PREFIX = "sealed:v1:"  # the first format (key id only as associated data): upgraded at start-up
INSTALL = ""  # the "account" of the install's own secrets (the sealing check, shared secrets)
KEY_BYTES = 32
_SECRET_FIELD = re.compile(r"(^|_)(token|secret|password|key)$")


class SealingError(Exception):
    """A key is malformed or does not open what the store holds; the message is one line."""


def is_secret_field(name: str) -> bool:
    """Whether a setting named ``name`` holds a secret (``token``, ``app_secret``, ``smtp_password``…)."""
    return bool(_SECRET_FIELD.search(name))


def is_sealed(value: Any) -> bool:
    """Whether ``value`` is sealed, in either format (a v1 value still needs ``Sealer.upgrade``)."""
    return isinstance(value, str) and value.startswith((PREFIX, V1_PREFIX))


def channel_field(channel: str, name: str) -> str:
    """The field path of a secret in an account's channel settings (``channels.telegram.token``)."""
    return f"channels.{channel}.{name}"


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
        raise SealingError(
            "a secret key is 32 bytes written as 64 hex characters or base64 "
            "(make one with: python3 -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return raw


def _where(account: str, field: str) -> str:
    return f"the install's secret {field}" if account == INSTALL else f"the secret {field} of account {account}"


class Sealer:
    """Seals and opens strings with one key, each for one account and field."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SealingError("a secret key is 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def _associated(self, account: str, field: str) -> bytes:
        return json.dumps([self.key_id, account, field]).encode()  # unambiguous whatever the ids hold

    def seal(self, plain: str, account: str, field: str) -> str:
        """``plain`` sealed for ``field`` of ``account`` (``INSTALL`` for the install's own)."""
        nonce = os.urandom(12)
        box = self._aead.encrypt(nonce, plain.encode(), self._associated(account, field))
        return f"{PREFIX}{self.key_id}:{base64.b64encode(nonce + box).decode()}"

    def unseal(self, value: Any, account: str, field: str) -> str:
        """The plain text of a value sealed for ``field`` of ``account``; ``SealingError`` for a
        plain value, a v1 value, another key's, or one sealed for another account or field."""
        where = _where(account, field)
        if not isinstance(value, str) or not value.startswith(PREFIX):
            if is_sealed(value):
                raise SealingError(
                    f"{where} is in the first sealed format, which this store no longer takes: refused (enter it again)"
                )
            raise SealingError(f"{where} is stored in clear where a sealed value belongs: refused (enter it again)")
        _key_id, body = self._split(value[len(PREFIX) :])
        try:
            raw = base64.b64decode(body)
            return self._aead.decrypt(raw[:12], raw[12:], self._associated(account, field)).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SealingError(
                f"{where} does not open: it was altered, or sealed for another account or field (enter it again)"
            ) from None

    def upgrade(self, value: Any, account: str, field: str) -> str | None:
        """What a stored value becomes in the once-per-store upgrade: a plain or v1 value sealed
        for ``field`` of ``account``; ``None`` when there is nothing to do (sealed already, or empty)."""
        if not isinstance(value, str) or not value or value.startswith(PREFIX):
            return None
        if not value.startswith(V1_PREFIX):
            return self.seal(value, account, field)
        key_id, body = self._split(value[len(V1_PREFIX) :])
        try:
            raw = base64.b64decode(body)
            plain = self._aead.decrypt(raw[:12], raw[12:], key_id.encode()).decode()
        except (InvalidTag, binascii.Error, ValueError):
            raise SealingError(
                f"{_where(account, field)}, sealed with key {key_id}, does not open: it was altered"
            ) from None
        return self.seal(plain, account, field)

    def _split(self, rest: str) -> tuple[str, str]:
        key_id, _, body = rest.partition(":")
        if key_id != self.key_id:
            raise SealingError(
                f"a secret in the store was sealed with key {key_id}, not with the configured key {self.key_id}"
            )
        return key_id, body

    def seal_fields(self, config: Mapping[str, Any], account: str, channel: str) -> dict[str, Any]:
        """A channel's settings with every secret field's string sealed for ``account``."""
        return {
            k: self.seal(v, account, channel_field(channel, k))
            if is_secret_field(k) and isinstance(v, str) and v
            else v
            for k, v in config.items()
        }

    def unseal_fields(
        self, config: Mapping[str, Any], account: str, channel: str
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """A channel's settings opened, and the secret fields that did not open (name → why):
        those are left out, never used as they are stored."""
        opened: dict[str, Any] = {}
        problems: dict[str, str] = {}
        for k, v in config.items():
            if not is_secret_field(k) or v in ("", None):
                opened[k] = v
                continue
            try:
                opened[k] = self.unseal(v, account, channel_field(channel, k))
            except SealingError as exc:
                problems[k] = str(exc)
        return opened, problems
