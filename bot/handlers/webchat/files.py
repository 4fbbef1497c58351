"""Files an agent sends to a web chat visitor: the page gets an address signed for that visitor
(``/webchat/files/<file>?visitor=…&signature=…``), and only that address opens the file, from the
store's GridFS. An image of the common formats whose bytes are what they claim is shown in the
chat; anything else is a download, never served as HTML, SVG or script."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote, urlencode

from aiohttp import web

from bot.handlers.kit.media import file_headers, served_type
from bot.handlers.webchat.tokens import VisitorTokens
from conversations.repositories import Repositories

FILE_ROUTE = "/webchat/files/{key}"
_KEY = re.compile(r"^upl_[0-9a-f]{24}:0$")


class ChatFiles:
    """Signed addresses of agents' files for visitors, and the route that serves them."""

    def __init__(self, store: Callable[[], Repositories], tokens: Callable[[], VisitorTokens]) -> None:
        self._store = store
        self._tokens = tokens

    def url_for(self, account_id: str, visitor: str) -> Callable[[str], str]:
        """How a file's address is written for ``visitor`` of ``account_id``."""

        def url(key: str) -> str:
            signature = self._tokens().file_signature(account_id, visitor, key)
            query = urlencode({"account": account_id, "visitor": visitor, "signature": signature})
            return f"{FILE_ROUTE.format(key=quote(key, safe=''))}?{query}"

        return url

    async def serve(self, request: web.Request) -> web.StreamResponse:
        key = request.match_info["key"]
        account_id, visitor = request.query.get("account", ""), request.query.get("visitor", "")
        signature = request.query.get("signature", "")
        if not _KEY.match(key) or not self._tokens().file_signed(account_id, visitor, key, signature):
            raise web.HTTPNotFound(text="no such file")
        store = self._store()
        message_id, _, index = key.partition(":")
        stored = await store.files.cached(account_id, message_id, int(index))
        data = await store.files.read(stored) if stored is not None else None
        if stored is None or data is None:
            raise web.HTTPNotFound(text="no such file (it may have been erased)")
        content_type, inline = served_type(stored.content_type, data)
        return web.Response(body=data, content_type=content_type, headers=file_headers(stored.name, inline))
