"""The router behind a real reverse proxy on the same host: Debian's nginx and Caddy, started by the
test with a throwaway configuration. A proxy that adds no ``X-Forwarded-For`` must not open the API (its
requests come from 127.0.0.1, which once counted as the superadmin without a token); the nginx example
and Caddy examples of docs/security.md pass the public host, the sockets and nothing else."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from bot.keys import STORE
from conversations.embedded import free_port
from tests.conftest import make_settings
from tests.router.test_queue import customer_writes

SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"
StartNginx = Callable[[str], Awaitable[str]]


def _configuration(prefix: Path, http_block: str) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers that may enter the test's private temporary directory
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'} warn;\n"
        f"events {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n{temp}\n{http_block}\n}}\n"
    )


async def _listening(process: asyncio.subprocess.Process, port: int, name: str) -> str:
    """The proxy's URL once it accepts connections on ``port``; its error output if it stops first."""
    async with asyncio.timeout(15):
        while True:
            if process.returncode is not None:
                assert process.stderr is not None
                raise AssertionError(f"{name} stopped: {(await process.stderr.read()).decode()[-2000:]}")
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return f"http://127.0.0.1:{port}"
            except OSError:
                await asyncio.sleep(0.05)


@pytest.fixture
async def nginx(tmp_path: Path) -> AsyncIterator[StartNginx]:
    """Start nginx with an ``http {}`` body (``LISTEN`` stands for its address); returns its URL."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if binary is None:
        pytest.fail("nginx is not installed: `apt-get install nginx` (it is in scripts/system-packages.txt)")
    processes: list[asyncio.subprocess.Process] = []

    async def start(http_block: str) -> str:
        port, prefix = free_port(), tmp_path / f"nginx{len(processes)}"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(_configuration(prefix, http_block.replace("LISTEN", f"127.0.0.1:{port}")))
        process = await asyncio.create_subprocess_exec(
            binary,
            "-e",
            str(prefix / "error.log"),
            "-p",
            str(prefix),
            "-c",
            str(prefix / "nginx.conf"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        processes.append(process)
        return await _listening(process, port, "nginx")

    yield start
    for process in processes:
        if process.returncode is None:
            process.send_signal(signal.SIGQUIT)  # graceful: the workers go with the master
            await asyncio.wait_for(process.wait(), 15)


async def test_a_proxy_on_this_host_that_adds_no_forwarded_for_does_not_open_the_api(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path, nginx: StartNginx
) -> None:
    settings = make_settings(embedded.uri, db_name, api={"token": "", "token_file": str(tmp_path / "api.token")})
    client: TestClient = await start_client(settings)
    thread_id = await customer_writes(client.server.app, "petra")
    proxy = await nginx(
        f"server {{\n    listen LISTEN;\n    location / {{ proxy_pass http://127.0.0.1:{client.server.port}; }}\n}}"
    )
    token = (tmp_path / "api.token").read_text().strip()
    async with aiohttp.ClientSession() as session:
        assert (await session.get(f"{proxy}/healthz")).status == 200  # the proxy works
        assert (await session.get(f"{proxy}/api/outbox")).status == 401
        refused = await session.post(f"{proxy}/api/threads/{thread_id}/resolve")
        assert refused.status == 401 and (await refused.json())["error"] == "unauthorized"
        assert (await session.get(f"{proxy}/api/outbox", headers={"Authorization": f"Bearer {token}"})).status == 200
    assert (await client.server.app[STORE].threads.get_thread(thread_id)).status == "queued"  # type: ignore[union-attr]


def readme_nginx_example(router_port: int) -> str:
    """The nginx example of docs/security.md, listening on ``LISTEN`` without TLS, proxying to ``router_port``."""
    example = re.search(r"```nginx\n(.*?)```", SECURITY.read_text(), re.S)
    assert example is not None, "docs/security.md has no nginx example"
    lines = [line for line in example.group(1).splitlines() if "ssl_certificate" not in line]
    text = "\n".join(lines).replace("listen 443 ssl;", "listen LISTEN;")
    assert "proxy_pass http://127.0.0.1:8080;" in text
    return text.replace("127.0.0.1:8080", f"127.0.0.1:{router_port}")


async def test_the_readme_s_nginx_example_serves_the_public_host_and_its_sockets_only(
    embedded: Any, db_name: str, start_client: Any, nginx: StartNginx
) -> None:
    settings = make_settings(embedded.uri, db_name, server={"public_url": "https://chat.example.com"})
    client: TestClient = await start_client(settings)
    proxy = await nginx(readme_nginx_example(client.server.port))
    public = {"Host": "chat.example.com"}
    async with aiohttp.ClientSession() as session:
        assert (await session.get(f"{proxy}/healthz", headers=public)).status == 200
        assert (await session.get(f"{proxy}/metrics", headers=public)).status == 404  # kept off the proxy
        assert (await session.get(f"{proxy}/api/outbox", headers=public)).status == 401
        assert (await session.get(f"{proxy}/healthz", headers={"Host": "rebind.attacker.example"})).status == 421
        async with session.ws_connect(f"{proxy}/webchat/ws", headers=public) as socket:  # upgraded through nginx
            welcome = await socket.receive_json(timeout=10)
            assert welcome["type"] == "welcome" and welcome["visitor_token"]


@pytest.fixture
async def caddy(tmp_path: Path) -> AsyncIterator[StartNginx]:
    """Start Caddy with a Caddyfile's sites (no admin endpoint, no automatic HTTPS: nothing leaves
    127.0.0.1), ``PORT`` in their addresses standing for its port; returns its URL."""
    binary = shutil.which("caddy")
    if binary is None:
        pytest.fail("caddy is not installed: `apt-get install caddy` (it is in scripts/system-packages.txt)")
    home = tmp_path / "caddy"
    home.mkdir()
    processes: list[asyncio.subprocess.Process] = []

    async def start(sites: str) -> str:
        port = free_port()
        config = home / "Caddyfile"
        config.write_text("{\n    admin off\n    auto_https off\n}\n\n" + sites.replace("PORT", str(port)))
        env = {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home)}
        process = await asyncio.create_subprocess_exec(
            binary, "run", "--config", str(config), "--adapter", "caddyfile",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        processes.append(process)
        return await _listening(process, port, "caddy")

    yield start
    for process in processes:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)


def docs_caddy_example(router_port: int) -> str:
    """The Caddy example of docs/security.md, on plain HTTP at ``PORT``, proxying to ``router_port``."""
    example = re.search(r"```caddy\n(.*?)```", SECURITY.read_text(), re.S)
    assert example is not None, "docs/security.md has no Caddy example"
    text = example.group(1)
    assert text.startswith("chat.example.com {") and "reverse_proxy 127.0.0.1:8080" in text
    return text.replace("chat.example.com {", "http://chat.example.com:PORT {", 1).replace(
        "127.0.0.1:8080", f"127.0.0.1:{router_port}"
    )


async def test_the_docs_caddy_example_serves_the_public_host_and_its_sockets_only(
    embedded: Any, db_name: str, start_client: Any, tmp_path: Path, caddy: StartNginx
) -> None:
    settings = make_settings(
        embedded.uri,
        db_name,
        server={"public_url": "https://chat.example.com", "trusted_proxies": "127.0.0.1"},
        api={"token": "", "token_file": str(tmp_path / "api.token")},
    )
    client: TestClient = await start_client(settings)
    thread_id = await customer_writes(client.server.app, "petra")
    proxy = await caddy(docs_caddy_example(client.server.port))
    public = {"Host": "chat.example.com"}
    async with aiohttp.ClientSession() as session:
        assert (await session.get(f"{proxy}/healthz", headers=public)).status == 200
        assert (await session.get(f"{proxy}/metrics", headers=public)).status == 404  # kept off the proxy
        assert (await session.get(f"{proxy}/api/outbox", headers=public)).status == 401
        refused = await session.post(f"{proxy}/api/threads/{thread_id}/resolve", headers=public)
        assert refused.status == 401
        async with session.ws_connect(f"{proxy}/webchat/ws", headers=public) as socket:  # upgraded through Caddy
            welcome = await socket.receive_json(timeout=10)
            assert welcome["type"] == "welcome" and welcome["visitor_token"]
    assert (await client.server.app[STORE].threads.get_thread(thread_id)).status == "queued"  # type: ignore[union-attr]
