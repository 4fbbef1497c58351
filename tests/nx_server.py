"""The embedded store's wire-protocol server in the test's own event loop, for tests that look at
its handler while a real driver talks to it."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from nx_27017.handler import NeoSQLiteHandler
from pymongo import AsyncMongoClient

from conversations._nx_child import serve
from conversations.embedded import socket_uri


@contextlib.asynccontextmanager
async def driver_of(handler: NeoSQLiteHandler) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    """A PyMongo client of ``handler`` served on a Unix socket; the server stopped and the
    handler's databases closed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nx") as sockets:  # a socket path short enough
        socket = f"{sockets}/nx-27017.sock"
        started = asyncio.Event()
        server = asyncio.create_task(serve(handler, socket, lambda _: started.set()))
        await started.wait()
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            socket_uri(Path(socket)), serverSelectionTimeoutMS=5000
        )
        try:
            yield client
        finally:
            await client.close()
            server.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await server
            handler.close_all()
