"""Training in a child process: progress reaches the caller and the job, the child dies with a
killed router and with a cancelled training, a failing child fails the job with its error, and a
router process that trains (through its child) and parses never imports scikit-learn or SciPy."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

from bot.nlu.train_worker import follow, train_in_child
from bot.nlu.trainer import TrainRequest
from bot.nlu.training import TrainOptions
from conversations.embedded import EmbeddedMongo
from conversations.repositories import Repositories
from tests.conftest import make_settings
from tests.nlu.test_versions import DATA, train_via_api

ROOT = Path(__file__).resolve().parents[2]


def trainers_of(parent: int) -> list[int]:
    """Live (not zombie) ``bot.nlu.train_worker`` processes whose parent is ``parent``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if b"bot.nlu.train_worker" in cmdline and fields[0] != "Z" and int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def test_the_child_reports_progress_and_stores_the_version(store: Repositories, tmp_path: Path) -> None:
    (tmp_path / "en.yml").write_text(DATA)
    seen: list[tuple[str, int, int]] = []
    request = TrainRequest("default", [str(tmp_path)], TrainOptions(semantic=True), activate=True, by="test")
    assert store.client.uri is not None
    version = await train_in_child(store.client.uri, store.client.database_name, request, lambda *p: seen.append(p))
    stages = [stage for stage, _, _ in seen]
    assert ("embedding", 0, 12) in seen and ("embedding", 12, 12) in seen and seen[-1] == ("done", 1, 1)
    assert "cross-validating" in stages  # the version's figures are computed in the child too
    assert await store.nlu.active_nlu_version("default") == version
    assert await store.nlu.nlu_model_blob(version) is not None
    assert trainers_of(os.getpid()) == []  # it exited


async def test_a_failing_child_fails_the_job_with_its_error(
    embedded: EmbeddedMongo, db_name: str, start_client: Any, tmp_path: Path
) -> None:
    (tmp_path / "en.yml").write_text("nlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n")
    client = await start_client(make_settings(embedded.uri, db_name, nlu={"data": str(tmp_path), "semantic": False}))
    job = await train_via_api(client)
    assert job["state"] == "failed"
    assert job["error"] == "need examples of at least two intents, got 1"


HANGING_CHILD = """
import json, time
print(json.dumps({"stage": "done", "done": 1, "total": 1}), flush=True)
print(json.dumps({"outcome": "done", "version": "v-hung"}), flush=True)
time.sleep(600)  # a shutdown that never ends
"""


async def test_a_child_that_reported_its_outcome_but_does_not_exit_is_killed() -> None:
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", HANGING_CHILD, stdout=asyncio.subprocess.PIPE)
    seen: list[tuple[str, int, int]] = []
    async with asyncio.timeout(20):
        outcome, code = await follow(child, lambda *p: seen.append(p), grace=0.5)
    assert outcome == {"outcome": "done", "version": "v-hung"} and seen == [("done", 1, 1)]
    assert code == -signal.SIGKILL and child.returncode == -signal.SIGKILL


async def test_cancelling_the_training_kills_the_child(store: Repositories) -> None:
    request = TrainRequest("default", [str(ROOT / "config" / "nlu")], TrainOptions(semantic=True))
    started = asyncio.Event()
    assert store.client.uri is not None
    training = asyncio.create_task(
        train_in_child(store.client.uri, store.client.database_name, request, lambda *_: started.set())
    )
    async with asyncio.timeout(60):
        await started.wait()
    [child] = trainers_of(os.getpid())
    training.cancel()
    try:
        await training
    except asyncio.CancelledError:
        pass
    assert not alive(child)
    assert await store.nlu.active_nlu_version("default") is None


ROUTER = """
import asyncio, sys
from bot.nlu.train_worker import train_in_child
from bot.nlu.trainer import TrainRequest
from bot.nlu.training import TrainOptions

async def main():
    request = TrainRequest("default", [sys.argv[3]], TrainOptions(semantic=True))
    await train_in_child(sys.argv[1], sys.argv[2], request, lambda *_: print("progress", flush=True))

asyncio.run(main())
"""


async def test_a_killed_router_leaves_no_trainer_behind(embedded: EmbeddedMongo, db_name: str) -> None:
    router = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ROUTER,
        embedded.uri,
        db_name,
        str(ROOT / "config" / "nlu"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert router.stdout is not None
    async with asyncio.timeout(60):
        assert await router.stdout.readline() == b"progress\n"  # the child is embedding
    [child] = trainers_of(router.pid)
    os.kill(router.pid, signal.SIGKILL)
    await router.wait()
    async with asyncio.timeout(10):
        while alive(child):
            await asyncio.sleep(0.05)


SERVE = """
import asyncio, json, sys
from aiohttp import ClientSession, web
from bot.app import create_app
from tests.conftest import make_settings

async def main():
    settings = make_settings(sys.argv[1], sys.argv[2], nlu={"data": sys.argv[3], "semantic": False})
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    bearer = {"Authorization": f"Bearer {settings.api.token}"}
    async with ClientSession(f"http://127.0.0.1:{port}", headers=bearer) as http:
        job = await (await http.post("/api/nlu/train", json={})).json()
        url = job["url"]
        while job.get("state") in (None, "running"):
            await asyncio.sleep(0.1)
            job = await (await http.get(url)).json()
        parsed = await (await http.post("/api/nlu/parse", json={"text": "hello"})).json()
    await runner.cleanup()
    heavy = sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"})
    print(json.dumps({"job": job["state"], "intent": parsed.get("intent"), "heavy": heavy}))

asyncio.run(main())
"""


async def test_a_router_that_trains_and_parses_never_imports_sklearn_or_scipy(
    embedded: EmbeddedMongo, db_name: str, tmp_path: Path
) -> None:
    (tmp_path / "en.yml").write_text(DATA)
    router = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(SERVE),
        embedded.uri,
        db_name,
        str(tmp_path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(120):
        out, _ = await router.communicate()
    assert router.returncode == 0
    assert json.loads(out.decode().splitlines()[-1]) == {"job": "done", "intent": "greet", "heavy": []}
