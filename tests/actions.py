"""A real Rasa action server (``rasa-sdk``) running the starter's actions (config/actions/) on
127.0.0.1, as a business would run its own."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

import aiohttp

from conversations.embedded import free_port

ACTIONS = Path(__file__).resolve().parents[1] / "config" / "actions"


class ActionServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        self._process: asyncio.subprocess.Process | None = None
        self._log = tempfile.TemporaryFile()  # its log (a pipe nobody reads would fill and stall it)

    async def start(self) -> None:
        env = {**os.environ, "SANIC_HOST": "127.0.0.1", "PYTHONWARNINGS": "ignore"}
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(self.port),
            cwd=ACTIONS, env=env, stdout=self._log, stderr=self._log,
        )  # fmt: skip
        async with aiohttp.ClientSession() as session, asyncio.timeout(60):
            while True:
                if self._process.returncode is not None:
                    self._log.seek(0)
                    raise RuntimeError(f"the action server exited: {self._log.read()[-2000:]!r}")
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/health") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                async with asyncio.timeout(10):
                    await self._process.wait()
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._log.close()
