"""Web chat visitor tokens: ``<visitor id>.<issued>.<HMAC-SHA256 of account, id and issue time>``,
signed with the install's sealed web chat key; the adapter decides how long one is honoured."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from bot.handlers.kit.signatures import as_bytes, same_secret

_STAMP = re.compile(r"^[0-9a-f]{1,12}$")


@dataclass(frozen=True)
class VisitorToken:
    visitor: str
    issued: int | None  # Unix seconds; None: a token of the previous format, which has no issue time


class VisitorTokens:
    """Issues and checks visitor tokens: ``<visitor id>.<issued>.<HMAC-SHA256 of account, id and
    issue time>`` (issued: Unix seconds in hexadecimal). Still reads the previous format,
    ``<visitor id>.<HMAC of account and id>``; how long a token is honoured is the adapter's call."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def issue(self, account_id: str) -> tuple[str, str]:
        visitor = "v" + secrets.token_hex(12)
        return visitor, self.token_for(account_id, visitor)

    def token_for(self, account_id: str, visitor: str, now: float | None = None) -> str:
        stamp = format(int(time.time() if now is None else now), "x")
        return f"{visitor}.{stamp}.{self._sign(f'{account_id}:{visitor}:{stamp}')}"

    def read(self, account_id: str, token: str) -> VisitorToken | None:
        """The visitor and issue time of a token signed for ``account_id``; ``None`` if it is not."""
        parts = token.split(".")
        if len(parts) == 3 and _STAMP.match(parts[1]):
            visitor, stamp, signature = parts
            signed, issued = f"{account_id}:{visitor}:{stamp}", int(stamp, 16)
        elif len(parts) == 2:
            (visitor, signature), signed, issued = parts, f"{account_id}:{parts[0]}", None
        else:
            return None
        if not visitor or not signature or not same_secret(signature, self._sign(signed)):
            return None
        return VisitorToken(visitor, issued)

    def sign(self, text: str) -> str:
        """The HMAC of ``text`` under this key (visitor tokens, and the addresses of agents' files)."""
        return self._sign(text)

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, as_bytes(text), hashlib.sha256).hexdigest()[:32]
