"""Ingest benchmark: web chat messages into a running router, against a bare aiohttp baseline.

    .venv/bin/python bench/ingest.py [-n 3000] [-c 32] [--modes process,thread] [--server URL]

For each embedded-store mode it starts `omnirouter serve` on a fresh data directory, drives N web
chat messages (`POST /webchat/messages`, many visitors, C in flight) and prints:

* messages/s and p50/p99 acknowledgement latency (the router answers 202 once the message is stored);
* store round trips per message, counted by the router's PyMongo command listener (read from
  /metrics after every message has been dispatched and its reply sent, so the whole pipeline is
  counted, not only the acknowledgement);
* peak RSS of the router and of the embedded store process.

In the same run, with the same load generator, it measures a bare aiohttp handler that reads the
body and answers 200, in its own process, and prints each router figure as a ratio of it.
With --server it drives an already running router instead (one mode, whatever it runs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import signal
import socket
import statistics
import sys
import tempfile
import textwrap
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
OMNIROUTER = str(Path(sys.executable).parent / "omnirouter")
BARE_SERVER = textwrap.dedent(
    """
    import sys
    from aiohttp import web

    async def message(request):
        await request.read()
        return web.json_response({"ok": True})

    async def healthz(request):
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/webchat/messages", message)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    """
)


@dataclass
class Run:
    label: str
    messages: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_healthy(base: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise SystemExit(f"bench: {base} did not become healthy within {timeout:.0f} s")


async def drive(base: str, total: int, concurrency: int, label: str) -> Run:
    """POST ``total`` web chat messages, ``concurrency`` in flight, from 4 x concurrency visitors."""
    visitors = [{"name": f"bench-{i}", "token": None} for i in range(concurrency * 4)]
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(worker_id: int) -> None:
            nonlocal errors
            for n in counter:
                visitor = visitors[(worker_id + n * concurrency) % len(visitors)]
                body = {"id": uuid.uuid4().hex, "text": f"message {n}: where is my order?", "name": visitor["name"]}
                if visitor["token"]:
                    body["visitor_token"] = visitor["token"]
                started = time.perf_counter()
                async with session.post(f"{base}/webchat/messages", json=body) as response:
                    payload = await response.json(content_type=None)
                    latencies.append(time.perf_counter() - started)
                    if response.status >= 300:
                        errors += 1
                    elif isinstance(payload, dict) and payload.get("visitor_token"):
                        visitor["token"] = payload["visitor_token"]

        started = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        seconds = time.perf_counter() - started
    return Run(label, total, seconds, latencies, errors)


async def scrape(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(f"{base}/metrics") as response:
        text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            values[name] = float(value)
    return values


def total(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k.startswith(prefix))


def commands(values: dict[str, float]) -> dict[str, float]:
    found = {}
    for key, value in values.items():
        match = re.match(r'omnirouter_store_commands_total\{command="(\w+)"\}', key)
        if match:
            found[match.group(1)] = value
    return found


async def settle(base: str, expected: int, before: dict[str, float]) -> tuple[dict[str, float], int]:
    """Wait until every message is dispatched and every reply sent (nothing left in the outbox on
    two scrapes in a row: a conversation queued by two racing messages gets one notice, so queued
    decisions cannot be counted against sends); returns metrics and scrapes."""
    scrapes, settled = 0, 0
    async with aiohttp.ClientSession() as session:
        for _ in range(1200):
            values = await scrape(session, base)
            scrapes += 1
            decided = total(values, "omnirouter_dispatch_decisions_total") - total(
                before, "omnirouter_dispatch_decisions_total"
            )
            settled = settled + 1 if decided >= expected and values.get("omnirouter_outbox_pending", 1) == 0 else 0
            if settled == 2:
                return values, scrapes
            await asyncio.sleep(0.25)
    raise SystemExit("bench: the router did not finish dispatching within 5 minutes")


def peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


async def bench_router(base: str, args: argparse.Namespace, label: str) -> tuple[Run, dict[str, float]]:
    await drive(base, min(200, args.messages), args.concurrency, "warm-up")
    async with aiohttp.ClientSession() as session:
        before = await scrape(session, base)
    run = await drive(base, args.messages, args.concurrency, label)
    after, scrapes = await settle(base, args.messages, before)
    # every /metrics scrape itself costs two counts (queue depth, outbox pending)
    per_command = {k: v - commands(before).get(k, 0) for k, v in commands(after).items()}
    per_command["aggregate"] = per_command.get("aggregate", 0) - 2 * scrapes
    return run, {k: v / args.messages for k, v in per_command.items() if v > 0}


async def start_router(mode: str, workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
    env.update({"OMNIROUTER_STORE_EMBEDDED_MODE": mode, "OMNIROUTER_LOG_LEVEL": "warning"})
    process = await asyncio.create_subprocess_exec(
        OMNIROUTER,
        "serve",
        "--port",
        str(port),
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    await wait_healthy(base)
    return process, base


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)


def store_pid(workdir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((workdir / "var" / "store" / "nx-27017.pid").read_text())
    return None


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--messages", type=int, default=3000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--modes", default="process,thread", help="embedded store modes to compare")
    parser.add_argument("--server", help="drive this running router instead of starting one")
    args = parser.parse_args()

    results: list[tuple[Run, dict[str, float], str]] = []
    if args.server:
        run, trips = await bench_router(args.server.rstrip("/"), args, "router (given server)")
        results.append((run, trips, ""))
    else:
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            with tempfile.TemporaryDirectory(prefix="omnirouter-bench-") as tmp:
                process, base = await start_router(mode, Path(tmp))
                try:
                    run, trips = await bench_router(base, args, f"router, embedded store as {mode}")
                    rss = [peak_rss_mb(process.pid)]
                    child = store_pid(Path(tmp)) if mode == "process" else None
                    rss.append(peak_rss_mb(child) if child else None)
                finally:
                    await stop(process)
                memory = f"peak RSS router {rss[0]:.0f} MB" + (f", store process {rss[1]:.0f} MB" if rss[1] else "")
                results.append((run, trips, memory))

    port = free_port()
    bare = await asyncio.create_subprocess_exec(sys.executable, "-c", BARE_SERVER, str(port))
    try:
        await wait_healthy(f"http://127.0.0.1:{port}")
        await drive(f"http://127.0.0.1:{port}", min(200, args.messages), args.concurrency, "warm-up")
        baseline = await drive(f"http://127.0.0.1:{port}", args.messages, args.concurrency, "bare aiohttp 200")
    finally:
        await stop(bare)

    print(f"{args.messages} messages, {args.concurrency} in flight, {os.cpu_count()} CPUs\n")
    print(f"{'':40} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'x bare':>7}")
    for run in [baseline] + [r for r, _, _ in results]:
        print(
            f"{run.label:40} {run.rate:8.0f} {run.pct(0.5):8.1f} {run.pct(0.99):8.1f} {run.errors:7d} "
            f"{run.rate / baseline.rate:7.2f}"
        )
    for run, trips, memory in results:
        breakdown = ", ".join(f"{k} {v:.2f}" for k, v in sorted(trips.items(), key=lambda kv: -kv[1]))
        print(f"\n{run.label}: {sum(trips.values()):.2f} store round trips per message ({breakdown})")
        if memory:
            print(f"  {memory}")
        print(f"  ack latency mean {statistics.fmean(run.latencies) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
