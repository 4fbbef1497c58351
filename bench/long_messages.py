"""Long messages against ordinary customers: does one long text stall the others' answers?

    PYTHONPATH=. .venv/bin/python bench/long_messages.py [--ordinary 200] [--long-each 20] [--pairs 3] [--max-tokens N] [--json]

In one process: an embedded store, the router application (the real pipeline, dispatcher and
NLU engine) with the starter model active. It measures, in one run:

* the engine on one 50,000-character text and on 2,000 characters of punctuation: the whole
  text (what the router embedded before it read a bounded prefix) and the prefix it reads now
  (``nlu.max_tokens``);
* ordinary customers alone: ``--ordinary`` short messages from 20 customers, one every 50 ms;
  reply latency = the message handed to the pipeline -> its decision recorded and its reply in
  the outbox (the sending itself is not measured);
* the same customers while ``--long-each`` messages of the longest size each channel accepts
  arrive spread over their run (web chat 4,096 characters, e-mail 100,000, SMS 50,000), half
  words, half punctuation; and the ratio of the two runs' p99 (the issue asks for at most 2).
  After an unmeasured run (with long messages), ``--pairs`` pairs of runs without and with the
  long messages, every other pair in the other order, each run with customers and texts of its
  own: a customer of an earlier run may be waiting for an agent by then (the bot reads no more of
  theirs, a far cheaper message), and a text of an earlier run would find its vector in the
  engine's cache. Each pair's ratio is printed, and their median and maximum;
* how late the event loop wakes a 5 ms sleep (``loop_lag``) in each run;
* the long messages alone, spread over the same time, and the CPU seconds they cost each thread
  of this process and the store's process (``bench.thread_cpu``): unlike the latencies, these do
  not move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aiohttp.test_utils import TestServer

from bench.thread_cpu import CpuMeter
from bot.app import create_app
from bot.handlers.email.parse import FULL_TEXT_KEPT
from bot.keys import PIPELINE
from bot.nlu.embedder import default_embedder
from bot.nlu.formats import load_paths
from bot.nlu.prefix import nlu_prefix
from bot.nlu.training import train
from bot.settings import Settings
from conversations.embedded import EmbeddedMongo
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.search_words import terms_process_ids
from conversations.traffic import Identity, Inbound
from tests.traffic import long_words, punctuation

ROOT = Path(__file__).resolve().parents[1]
LONGEST = {"webchat": 4096, "email": FULL_TEXT_KEPT, "sms": 50_000}
ADDRESS = {"webchat": "v-{}", "email": "c{}@example.com", "sms": "+3712000{:04d}"}
WARM_UP_RUNS = 1
QUESTIONS = ["where is my order {}?", "what are your opening hours on day {}?", "do you deliver to zone {}?"]


def inbound(channel: str, key: str, who: int, text: str) -> Inbound:
    sender = Identity(channel, ADDRESS[channel].format(who))
    return Inbound(account_id="default", channel=channel, external_id=key, sender=sender, text=text)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def engine_costs(max_tokens: int) -> dict[str, float]:
    """Seconds of the engine (one thread) on the whole text and on the prefix the NLU reads."""
    embedder = default_embedder()
    embedder.embed(["warm up"])
    costs = {}
    for name, text in (("50000_chars", long_words(50_000)), ("2000_punctuation", punctuation(2_000))):
        for part, piece in (("whole", text), ("prefix", nlu_prefix(text, max_tokens, embedder.token_count))):
            started = time.perf_counter()
            embedder.embed([piece])
            costs[f"{name}_{part}_s"] = round(time.perf_counter() - started, 3)
    return costs


async def loop_lag(lags: list[float]) -> None:
    """How late the event loop wakes a 5 ms sleep: the time it was busy (or starved of the cores
    or the GIL) when an ordinary customer's step was due."""
    while True:
        started = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append(time.perf_counter() - started - 0.005)


async def run(
    settings: Settings, ordinary: int, long_each: int, tag: str, meter: CpuMeter | None = None, first: int = 0
) -> dict[str, Any]:
    app = create_app(settings)
    server = TestServer(app)
    await server.start_server()
    try:
        pipeline = app[PIPELINE]
        _, warm = await pipeline.receive(inbound("webchat", f"{tag}-warm", 9999, "hello"))
        assert warm is not None
        await warm
        long_tasks: list[asyncio.Task[Any]] = []
        # the texts made first: making them is no work of the router's
        longs = [
            inbound(
                channel,
                f"{tag}-long-{channel}-{n}",
                first + 5000 + n,
                f"{tag} {n} {punctuation(size) if n % 2 else long_words(size)}"[:size],  # new to the engine's cache
            )
            for channel, size in LONGEST.items()
            for n in range(long_each)
        ]
        gap = max(ordinary, 200) * 0.05 / max(1, len(longs))  # spread over the customers' run
        if meter is not None:
            meter.start()

        async def long_sender() -> None:
            for i, message in enumerate(longs):
                await asyncio.sleep(gap if i else 0)
                _, task = await pipeline.receive(message)
                if task is not None:
                    long_tasks.append(task)

        sender = asyncio.create_task(long_sender())
        lags: list[float] = []
        watcher = asyncio.create_task(loop_lag(lags))
        stored: list[float] = []

        async def customer(n: int) -> float:
            await asyncio.sleep(n * 0.05)
            # customers and a number of their own per run: a customer of an earlier run may be
            # waiting for an agent (the bot reads no more of theirs), and a text asked in an earlier
            # run would find its vector in the engine's cache
            text = QUESTIONS[n % len(QUESTIONS)].format(first + n)
            started = time.perf_counter()
            _, task = await pipeline.receive(inbound("webchat", f"{tag}-{n}", first + n % 20, text))
            stored.append(time.perf_counter() - started)
            assert task is not None
            await task
            return time.perf_counter() - started

        started = time.perf_counter()
        latencies = await asyncio.gather(*(customer(n) for n in range(ordinary))) or [0.0]
        ordinary_done = time.perf_counter() - started
        await sender
        await asyncio.gather(*long_tasks)
        watcher.cancel()
        cpu = meter.stop() if meter is not None else {}
        return {
            **{f"cpu_s {name}": seconds for name, seconds in cpu.items()},
            "ordinary_p50_s": round(pct(list(latencies), 50), 3),
            "ordinary_p99_s": round(pct(list(latencies), 99), 3),
            "ordinary_max_s": round(max(latencies), 3),
            "ordinary_stored_p99_s": round(pct(stored or [0.0], 99), 3),
            "loop_lag_p99_s": round(pct(lags or [0.0], 99), 3),
            "loop_lag_max_s": round(max(lags or [0.0]), 3),
            "ordinary_all_answered_after_s": round(ordinary_done, 1),
            "long_messages": len(long_tasks),
            "long_all_decided_after_s": round(time.perf_counter() - started, 1),
        }
    finally:
        await server.close()


def bench_settings(uri: str, max_tokens: int | None) -> Settings:
    defaults = Settings()
    return defaults.with_sections(
        {
            "store": dataclasses.replace(defaults.store, mongodb_uri=uri, database="bench"),
            "nlu": dataclasses.replace(
                defaults.nlu, auto_train=False, max_tokens=max_tokens or defaults.nlu.max_tokens
            ),
            "security": dataclasses.replace(defaults.security, secret_key="0123456789abcdef" * 4),
        }
    )


async def install_model(uri: str) -> None:
    data = load_paths([ROOT / "config" / "nlu"])
    model = await asyncio.get_running_loop().run_in_executor(None, train, data, default_embedder())
    store = Repositories.connect(uri, "bench")
    await store.ensure_indexes()
    await store.nlu.save_nlu_model("default", "bench-1", model.to_bytes(), {"intents": 0}, utcnow())
    assert await store.nlu.activate_nlu_model("default", "bench-1", "bench", utcnow())
    await store.close()


async def measure(args: argparse.Namespace, mongo: EmbeddedMongo, store_pid: int) -> dict[str, Any]:
    settings = bench_settings(mongo.uri, args.max_tokens)
    meter = CpuMeter(lambda: [("store", store_pid), *(("search terms", pid) for pid in terms_process_ids())])
    result: dict[str, Any] = {"max_tokens": settings.nlu.max_tokens}
    if not args.cpu_only:
        result.update(engine_costs(settings.nlu.max_tokens))
        for n in range(WARM_UP_RUNS):  # a process's first uses (connections, code paths, the terms' child)
            await run(settings, args.ordinary, args.long_each, f"warm-up-{n}", first=100_000 * (n + 1))
        ratios = []
        for n in range(args.pairs):  # in turn, and every other pair the other way round (ABBA)
            first = 100_000 * (WARM_UP_RUNS + 1 + 2 * n)
            if n % 2:
                mixed = await run(settings, args.ordinary, args.long_each, f"mixed-{n}", first=first + 100_000)
                alone = await run(settings, args.ordinary, 0, f"alone-{n}", first=first)
            else:
                alone = await run(settings, args.ordinary, 0, f"alone-{n}", meter if n == 0 else None, first=first)
                mixed = await run(settings, args.ordinary, args.long_each, f"mixed-{n}", first=first + 100_000)
            if n == 0:
                result.update({f"alone_{k}": v for k, v in alone.items() if not k.startswith("long")})
                result.update({f"with_long_{k}": v for k, v in mixed.items()})
            ratios.append(round(mixed["ordinary_p99_s"] / alone["ordinary_p99_s"], 2))
            result[f"pair_{n}_p99_s"] = f"{alone['ordinary_p99_s']} -> {mixed['ordinary_p99_s']} ({ratios[-1]})"
            result[f"pair_{n}_loop_lag_p99_s"] = f"{alone['loop_lag_p99_s']} -> {mixed['loop_lag_p99_s']}"
        result["p99_ratio_median"] = statistics.median(ratios)
        result["p99_ratio_max"] = max(ratios)
    costs = await run(settings, 0, args.long_each, "cpu", meter)
    result.update({f"long_alone_{k}": v for k, v in costs.items() if not k.startswith("ordinary")})
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ordinary", type=int, default=200, help="ordinary customers' messages per run")
    parser.add_argument("--long-each", type=int, default=20, help="long messages per channel")
    parser.add_argument("--max-tokens", type=int, help="nlu.max_tokens (default: the setting's)")
    parser.add_argument(
        "--pairs",
        type=int,
        default=3,
        help="pairs of runs without and with the long messages (every other pair in the other order)",
    )
    parser.add_argument("--cpu-only", action="store_true", help="only the long messages alone and their CPU")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("omnirouter").setLevel(logging.CRITICAL)  # the replies have nowhere to go: no sends
    with tempfile.TemporaryDirectory() as tmp:
        mongo = EmbeddedMongo(Path(tmp) / "store")
        await mongo.start()
        try:
            await install_model(mongo.uri)
            result = await measure(args, mongo, int((Path(tmp) / "store" / "nx-27017.pid").read_text()))
        finally:
            await mongo.stop()
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:40s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
