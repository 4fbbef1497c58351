"""The `omnirouter` command as users run it: a real process against a real server."""

from __future__ import annotations

import asyncio
import os
import pty
import signal
import stat
import sys
from pathlib import Path

import aiohttp
import pytest
import uvloop
from aiohttp.test_utils import TestClient

from bot.cli.common import CliError
from bot.cli.serve import event_loop_factory
from conversations.embedded import free_port

OMNIROUTER = str(Path(sys.executable).parent / "omnirouter")


async def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        OMNIROUTER,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def serve_until_ready(port: int, cwd: Path, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    """Start `omnirouter serve` and read its banner; a router that exits first fails with its stderr."""
    errors = open(cwd / f"serve-{port}.stderr", "w+b")
    process = await asyncio.create_subprocess_exec(
        OMNIROUTER, "serve", "--port", str(port), cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=errors
    )
    assert process.stdout is not None
    banner = ""
    with errors:
        while "Stop with Ctrl+C" not in banner:
            line = (await asyncio.wait_for(process.stdout.readline(), 120)).decode()
            if not line:  # end of output: the router stopped before it was ready
                await asyncio.wait_for(process.wait(), 30)
                errors.seek(0)
                raise AssertionError(
                    f"serve exited with {process.returncode} before it was ready:\n"
                    f"{banner}{errors.read().decode(errors='replace')}"
                )
            banner += line
    return process, banner


async def test_say_prints_what_the_router_did(client: TestClient, tmp_path: Path) -> None:
    server = f"http://127.0.0.1:{client.server.port}"
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    code, out, err = await run("say", "where is my order?", "--as", "alice", "--server", server, env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("recorded as msg_") and " in thread thr_" in lines[0]
    thread = lines[0].rsplit(" ", 1)[1]
    assert lines[1] == f"queued for a human agent (reason: no_nlu), thread {thread}"
    assert lines[2].startswith("system: Thanks for your message!")

    # alice again: the same conversation, already waiting, no second notice
    code, out, _ = await run("say", "hello?", "--as", "alice", "--server", server, env=env)
    assert code == 0
    assert out.splitlines()[1] == f"added to thread {thread}, which is already waiting for a human agent"
    # bob is someone else
    code, out, _ = await run("say", "hi", "--as", "bob", "--server", server, env=env)
    assert code == 0 and thread not in out and "queued for a human agent" in out


async def test_say_explains_what_went_wrong(client: TestClient, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    nobody = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run("say", "hi", "--server", nobody, env=env)
    assert code == 1 and out == ""
    assert err.startswith(f"omnirouter: cannot reach the router at {nobody}") and "omnirouter serve" in err
    code, _, err = await run("say", "   ", env=env)
    assert code == 2 and "the message is empty" in err
    code, _, err = await run("say", "hi", "--server", "ftp://x", env=env)
    assert code == 2 and "--server must be an http://" in err
    server = f"http://127.0.0.1:{client.server.port}"
    code, _, err = await run("say", "x" * 5000, "--server", server, env=env)
    assert code == 2 and "rejected the message: text is longer than 4096" in err
    code, _, err = await run("say", "hi", "--account", "nope", "--server", server, env=env)
    assert code == 2 and "unknown account" in err
    assert "Traceback" not in err


async def test_bad_settings_stop_serve_with_one_line(tmp_path: Path) -> None:
    code, out, err = await run("serve", env={"OMNIROUTER_PORT": "abc"}, cwd=tmp_path)
    assert code == 2 and out == ""
    assert err == "omnirouter: bad setting server.port (from OMNIROUTER_PORT): expected an integer, got 'abc'\n"


async def test_serve_runs_on_the_embedded_store_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        OMNIROUTER,
        "serve",
        "--port",
        str(port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")},
    )
    try:
        assert process.stdout is not None
        banner = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
        assert banner.startswith(f"omnirouter is running on http://127.0.0.1:{port} (store: embedded")
        assert banner.rstrip().endswith("; event loop: uvloop)")  # the default
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["store"] == {"kind": "embedded", "ok": True}
            # a second router on the same port is refused with one line
            (tmp_path / "other").mkdir()
            code, _, err = await run("serve", "--port", str(port), cwd=tmp_path / "other")
            assert code == 1 and "Traceback" not in err
            assert err.endswith(
                f"port {port} on 127.0.0.1 is in use (another omnirouter?); "
                "choose another with --port or OMNIROUTER_PORT\n"
            )
            # and a second router on the same data directory, too
            code, _, err = await run("serve", "--port", str(free_port()), cwd=tmp_path)
            assert code == 1 and "Traceback" not in err
            assert "the embedded store in var/store is in use by another omnirouter process" in err
        child_pid = int((tmp_path / "var" / "store" / "nx-27017.pid").read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
    assert process.returncode == 0
    await asyncio.sleep(0.2)
    try:
        os.kill(child_pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the embedded store outlived the router")


async def test_agents_added_from_the_terminal_can_log_in_and_the_first_admin_is_shown_once(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    code, out, err = await run("agent", "add", "laura", "--team", "support", "--capacity", "3", cwd=tmp_path, env=env)
    assert code == 0, err  # a fresh install, no router running: the command starts the store itself
    assert out.splitlines()[0] == "added agent 'laura' (capacity 3, teams support) to account 'default'"
    password = out.splitlines()[1].split()[1]
    code, _, err = await run("agent", "add", "laura", cwd=tmp_path, env=env)
    assert code == 2 and "already exists" in err
    code, _, err = await run("agent", "add", "Not A Name!", cwd=tmp_path, env=env)
    assert code == 2 and "bad agent name" in err
    both = ("--inbox", "first:webchat", "--inbox", "first:telegram")
    code, out, err = await run("agent", "add", "olga", *both, cwd=tmp_path, env=env)
    assert code == 0, err
    assert (
        out.splitlines()[0]
        == "added agent 'olga' (capacity 5, inboxes first:telegram, first:webchat) to account 'default'"
    )
    code, out, err = await run("agent", "add", "oleg", "--inbox", "inb_of_another_account", cwd=tmp_path, env=env)
    assert code == 2 and "no inbox 'inb_of_another_account' in this account" in err and not out

    async def serve_once() -> tuple[str, int]:
        port = free_port()
        process, banner = await serve_until_ready(port, tmp_path, env)
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
                login_page = await (await session.get(f"http://127.0.0.1:{port}/login")).text()
                token = login_page.split('name="csrf_token" value="')[1].split('"')[0]
                response = await session.post(
                    f"http://127.0.0.1:{port}/login",
                    allow_redirects=False,
                    data={"login": "laura", "password": password, "csrf_token": token},
                )
                status = response.status
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
        return banner, status

    # laura exists already, so no first-run admin is made; she logs in with the printed password
    banner, status = await serve_once()
    assert status == 303 and "first run" not in banner


async def serve_and_stop(cwd: Path, env: dict[str, str]) -> str:
    """Start ``omnirouter serve``, read its banner, stop it; returns the banner."""
    process, banner = await serve_until_ready(free_port(), cwd, env)
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 30)
    return banner


async def test_serve_writes_the_first_admins_password_to_a_private_file_when_not_on_a_terminal(tmp_path: Path) -> None:
    """Piped output (a service manager's log) never carries the password: a 0600 file does, once."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    # the second start on the standard library's event loop, which a setting chooses
    banners = [
        await serve_and_stop(tmp_path, env),
        await serve_and_stop(tmp_path, {**env, "OMNIROUTER_SERVER_EVENT_LOOP": "asyncio"}),
    ]
    assert "; event loop: uvloop)" in banners[0] and "; event loop: asyncio)" in banners[1]
    secret = tmp_path / "var" / "first-admin.txt"
    assert "first run: log in as 'admin' with the password in var/first-admin.txt" in banners[0]
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    login, password = [line.split(": ", 1)[1] for line in secret.read_text().splitlines()]
    assert login == "admin" and len(password) >= 16 and password not in banners[0]
    assert "first run" not in banners[1]


async def test_serve_shows_the_first_admins_password_on_a_terminal(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    controller, terminal = pty.openpty()
    errors = open(tmp_path / "serve.stderr", "wb")
    process = await asyncio.create_subprocess_exec(
        OMNIROUTER,
        "serve",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=terminal,
        stderr=errors,
    )
    os.close(terminal)
    os.set_blocking(controller, False)
    screen = b""
    try:
        async with asyncio.timeout(120):
            while b"Stop with Ctrl+C" not in screen:
                try:
                    screen += os.read(controller, 4096)
                except BlockingIOError:
                    await asyncio.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        os.close(controller)
        errors.close()
    assert "first run: log in as 'admin' with password '" in screen.decode()
    assert not (tmp_path / "var" / "first-admin.txt").exists()


def test_uvloop_gets_enough_threads_to_look_host_names_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """libuv looks host names up on half its thread pool (2 of its default 4): the router asks
    for 16 unless the environment names a size, which is kept."""
    monkeypatch.setenv("UV_THREADPOOL_SIZE", "")  # recorded first: the environment is restored after
    monkeypatch.delenv("UV_THREADPOOL_SIZE")
    assert event_loop_factory("asyncio") is asyncio.new_event_loop
    assert "UV_THREADPOOL_SIZE" not in os.environ
    assert event_loop_factory("uvloop") is uvloop.new_event_loop
    assert os.environ["UV_THREADPOOL_SIZE"] == "16"
    monkeypatch.setenv("UV_THREADPOOL_SIZE", "64")
    event_loop_factory("uvloop")
    assert os.environ["UV_THREADPOOL_SIZE"] == "64"


def test_a_missing_uvloop_is_one_line_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an import finds where it is not installed
    with pytest.raises(CliError, match=r'uvloop is not installed here: set server.event_loop = "asyncio"'):
        event_loop_factory("uvloop")
