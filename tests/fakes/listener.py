"""A listener on a loopback address that records every request it gets, or answers each with a
redirect: the internal service an egress test watches (it must receive nothing), or the allowed
host that sends the router on to it."""

from __future__ import annotations

from aiohttp import web


class Listener:
    """``hits`` lists the path and query of every request; with ``redirect_to`` set, each request is
    answered with a 307 to that URL (a 307 keeps the method and the body, as a POST's next hop)."""

    def __init__(self, redirect_to: str = "") -> None:
        self.hits: list[str] = []
        self.redirect_to = redirect_to
        self.url = ""
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._hit)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://{host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _hit(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        if self.redirect_to:
            raise web.HTTPTemporaryRedirect(self.redirect_to + request.path_qs)
        return web.json_response({"ok": True, "result": {}, "secret": "internal"})
