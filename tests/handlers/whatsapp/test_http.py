"""The httpx client pywa sends with (``httpx-aiohttp``'s transport over the egress guard's aiohttp
session): requests go out as httpx built them, responses come back as httpx would give them (streamed, decoded once, redirects not followed),
and failures raise httpx's errors, which the WhatsApp adapter turns into retries."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.handlers.kit.egress import Egress, HostRule, refusal
from bot.handlers.whatsapp.graph import graph_session
from conversations.embedded import free_port

BIG = 8 * 1024 * 1024


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "path": request.path_qs,
            "body": (await request.read()).decode(),
            "auth": request.headers.get("Authorization"),
            "type": request.headers.get("Content-Type"),
            "peer": request.transport.get_extra_info("peername")[1] if request.transport else None,
        }
    )


async def zipped(request: web.Request) -> web.Response:
    return web.Response(
        body=gzip.compress(b'{"ok": true}'), headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )


async def moved(request: web.Request) -> web.Response:
    raise web.HTTPFound("/elsewhere")


async def big(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    chunk = b"x" * 65536
    try:
        for _ in range(BIG // len(chunk)):
            await response.write(chunk)
    except ConnectionError:
        pass
    return response


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.json_response({})


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/zipped", zipped)
    app.router.add_get("/moved", moved)
    app.router.add_get("/big", big)
    app.router.add_get("/slow", slow)
    async with TestServer(app, host="127.0.0.1") as test_server:
        yield test_server


@pytest.fixture
async def client(server: TestServer) -> AsyncIterator[httpx.AsyncClient]:
    async with graph_session(Egress([HostRule("127.0.0.1", server.port)]), timeout=5.0) as http:
        http.base_url = str(server.make_url(""))
        yield http


async def test_requests_go_out_as_httpx_built_them(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo?x=1", json={"to": "16505550000"}, headers={"Authorization": "Bearer t"})
    assert response.status_code == 200
    got = response.json()
    assert (got["method"], got["path"], got["auth"], got["type"]) == (
        "POST",
        "/echo?x=1",
        "Bearer t",
        "application/json",
    )
    assert json.loads(got["body"]) == {"to": "16505550000"}
    again = await client.get("/echo")
    assert again.json()["peer"] == got["peer"]  # the connection was kept and reused
    form = await client.post("/echo", files={"file": ("a.txt", b"hello", "text/plain")})
    assert "hello" in form.json()["body"] and form.json()["type"].startswith("multipart/form-data")


async def test_encoded_bodies_are_decoded_once_and_redirects_are_left_to_httpx(client: httpx.AsyncClient) -> None:
    assert (await client.get("/zipped")).json() == {"ok": True}
    response = await client.get("/moved")
    assert response.status_code == 302 and response.headers["Location"] == "/elsewhere"


async def test_a_body_streams_and_an_abandoned_one_is_released(client: httpx.AsyncClient) -> None:
    read = 0
    async with client.stream("GET", "/big") as response:
        async for chunk in response.aiter_bytes():
            read += len(chunk)
            if read > 100_000:
                break
    assert 100_000 < read < BIG
    assert (await client.get("/echo")).status_code == 200  # the abandoned response did not block the pool


async def test_failures_raise_httpx_errors(client: httpx.AsyncClient) -> None:
    with pytest.raises(httpx.TimeoutException):
        await client.get("/slow", timeout=httpx.Timeout(0.3))
    # httpx-aiohttp 0.2 reports every aiohttp connection error as httpx.ConnectTimeout (its exception
    # map); the adapter treats every httpx.TransportError alike: a retry, unless the guard refused
    with pytest.raises(httpx.TransportError) as refused:
        await client.get(f"http://127.0.0.1:{free_port()}/nothing")  # a port the guard does not allow
    assert "loopback" in str(refusal(refused.value))
    closed = free_port()
    async with graph_session(Egress([HostRule("127.0.0.1", closed)]), timeout=5.0) as allowed:
        with pytest.raises(httpx.TransportError) as failed:
            await allowed.get(f"http://127.0.0.1:{closed}/nothing")  # allowed, but nothing listens
    assert refusal(failed.value) is None
    assert (await client.get("/echo")).status_code == 200
