"""A server on a free loopback port that hands each connection to ``_serve``: the base of the
small protocol fakes a test writes for one misbehaviour (an IMAP server that lies about sizes,
one that refuses every login)."""

from __future__ import annotations

import asyncio


class StreamServer:
    """Start, stop and the port; a subclass says what a connection is told in ``_serve``."""

    def __init__(self) -> None:
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError
