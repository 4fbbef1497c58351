"""The install token as an operator meets it: `omnirouter serve` writes it on a fresh install and
says where, the CLI reads it from there, `omnirouter api-token` shows where it is and rotates it,
and a deleted file is written again by the next start. Real processes, a real embedded store."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
from pathlib import Path

import aiohttp

from conversations.embedded import free_port
from tests.cli.test_serve import run, serve_until_ready
from tests.nlu.test_versions import DATA


async def _status(url: str, token: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            return response.status


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(signal.SIGTERM)
    await asyncio.wait_for(process.wait(), 30)


async def test_the_cli_uses_the_token_the_router_wrote_and_rotates_it(tmp_path: Path) -> None:
    (tmp_path / "en.yml").write_text(DATA)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")},
        "OMNIROUTER_NLU_DATA": str(tmp_path / "en.yml"),
        "OMNIROUTER_NLU_SEMANTIC": "false",
        "OMNIROUTER_NLU_AUTO_TRAIN": "false",
    }
    path, port = tmp_path / "var" / "api.token", free_port()
    server = f"http://127.0.0.1:{port}"
    process, banner = await serve_until_ready(port, tmp_path, env)
    try:
        token = path.read_text().strip()
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert "install token (superadmin): var/api.token" in banner and token not in banner
        code, out, _ = await run("api-token", env=env, cwd=tmp_path)
        assert code == 0 and out.startswith("the install token is in var/api.token (mode 0600)") and token not in out

        code, out, err = await run("nlu", "train", "--server", server, env=env, cwd=tmp_path)  # through /api
        assert code == 0 and f"trained by the router at {server}" in out, err

        code, out, err = await run("api-token", "--rotate", env=env, cwd=tmp_path)
        assert code == 0 and "a new install token is in var/api.token" in out, err
        rotated = path.read_text().strip()
        assert rotated != token and stat.S_IMODE(path.stat().st_mode) == 0o600
        async with asyncio.timeout(5):
            while await _status(f"{server}/api/outbox", token) != 401:
                await asyncio.sleep(0.1)
        code, out, err = await run("nlu", "parse", "good morning", "--server", server, env=env, cwd=tmp_path)
        assert code == 0 and json.loads(out)["intent"] == "greet", err

        path.unlink()
        code, _, err = await run("nlu", "parse", "good morning", "--server", server, env=env, cwd=tmp_path)
        assert code == 2 and err.startswith("omnirouter: no install token: var/api.token does not exist")
        code, _, err = await run("api-token", env=env, cwd=tmp_path)
        assert code == 2 and "no install token file at var/api.token" in err
    finally:
        await _stop(process)

    process, _ = await serve_until_ready(port, tmp_path, env)  # the next start writes the file again
    try:
        assert path.read_text().strip() == rotated and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert await _status(f"{server}/api/outbox", rotated) == 200
    finally:
        await _stop(process)
    log = (tmp_path / f"serve-{port}.stderr").read_text()
    assert "api.token_file_written_again path=var/api.token" in log and rotated not in log and token not in log

    code, _, err = await run("api-token", "--rotate", env={**env, "OMNIROUTER_API_TOKEN": "mine"}, cwd=tmp_path)
    assert code == 2 and "api.token is set in the settings" in err
