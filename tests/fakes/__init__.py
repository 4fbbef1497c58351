"""Fakes of remote provider APIs: local aiohttp servers on 127.0.0.1 driven by the real clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Protocol

from aiohttp import web


class Fake(Protocol):
    """A local fake of a provider's API."""

    url: str

    async def start(self, port: int = 0) -> str: ...
    async def stop(self) -> None: ...


@asynccontextmanager
async def running(*fakes: Fake) -> AsyncIterator[None]:
    """Every fake started for the block, stopped after it."""
    for fake in fakes:
        await fake.start()
    try:
        yield
    finally:
        for fake in fakes:
            await fake.stop()


def reachable(fakes: Iterable[Fake]) -> dict[str, str]:
    """The ``egress`` section that lets the router reach ``fakes`` (on 127.0.0.1)."""
    return {"allowed_destinations": ", ".join(f.url.removeprefix("http://") for f in fakes)}


class LocalServer:
    """An aiohttp application on a free port of 127.0.0.1; ``url`` is its base URL once started."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self, port: int = 0) -> str:
        """Listen on ``port`` (a free one when 0; the same one again to come back after ``stop``)."""
        app = web.Application(client_max_size=128 * 1_048_576)  # providers take uploads of many MB
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
