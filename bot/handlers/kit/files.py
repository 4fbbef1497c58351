"""Addresses of agents' files (and a web chat visitor's own) signed for one recipient (a web chat visitor, a phone number that
gets an MMS), and the route that serves them from the store's GridFS: only an address signed for
that account, recipient and file opens it (404 otherwise); how it is sent to a browser is
``media.py``'s rule."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.handlers.kit.media import file_headers, served_type
from bot.handlers.kit.signatures import same_secret
from conversations.repositories import Repositories

_KEY = re.compile(r"^(upl|msg)_[0-9a-f]{24}:0$")  # an agent's upload; a web chat visitor's file


class FileLinks:
    """``route`` (with ``{key}``) serves the files; ``sign`` is the channel's HMAC of a text;
    ``base`` the absolute origin addresses start with ("" for the channel's own pages)."""

    def __init__(
        self, route: str, store: Callable[[], Repositories], sign: Callable[[str], str], base: str = ""
    ) -> None:
        self.route = route
        self._store = store
        self._sign = sign
        self._base = base.rstrip("/")

    def _signature(self, account_id: str, recipient: str, key: str) -> str:
        return self._sign(f"file:{account_id}:{recipient}:{key}")

    def url_for(self, account_id: str, recipient: str) -> Callable[[str], str]:
        """How a file's address is written for ``recipient`` of ``account_id``."""

        def url(key: str) -> str:
            query = urlencode(
                {"account": account_id, "to": recipient, "signature": self._signature(account_id, recipient, key)}
            )
            return f"{self._base}{self.route.format(key=quote(key, safe=''))}?{query}"

        return url

    async def serve(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        account_id, recipient = request.query.get("account", ""), request.query.get("to", "")
        given = request.query.get("signature", "")
        if not _KEY.match(key) or not same_secret(given, self._signature(account_id, recipient, key)):
            raise web.HTTPNotFound(text="no such file")
        found = await self._store().files.read_upload(account_id, key)
        if found is None:
            raise web.HTTPNotFound(text="no such file (it may have been erased)")
        stored, data = found
        content_type, inline = served_type(stored.content_type, data)
        return web.Response(body=data, content_type=content_type, headers=file_headers(stored.name, inline))
