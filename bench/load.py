"""Load benchmark: signed Telegram, WhatsApp, SMS and web chat traffic against real router processes.

    PYTHONPATH=. .venv/bin/python bench/load.py [--channels telegram,whatsapp,sms,webchat]
        [--messages 2000] [--concurrency 32 | --rate 300] [--customers 100] [--processes 1]
        [--tiers lexical,both | --lexical | --semantic] [--mongodb-uri URI] [--json]

For each NLU tier it starts an embedded store (its own process; or, with ``--mongodb-uri``, uses a
fresh database on that MongoDB and drops it after: ``bench/stores.py``), the provider fakes (Telegram Bot
API, WhatsApp Graph API, Twilio; replies really go out over HTTP to them) and ``omnirouter serve``
processes with the starter model active, then posts signed webhooks that the bot answers, and
reports: sustained messages/s (sent -> every reply received), p50/p99 acknowledgement latency and
reply latency (inbound sent -> reply received at the fake; web chat replies go to a socket, so no
reply latency for it), store round trips per message (the routers' PyMongo command listener, read
from /metrics), router CPU seconds per 1,000 messages and peak RSS (from /proc).

In the same run it measures the floor (see ``bench/floor.py``): a bare aiohttp 200 handler with the
same generator, one NLU prediction, one batched store write, one outbound exchange; and prints the
efficiency = end-to-end messages/s / (1 / sum of those four per-message costs); and beside it the
efficiency against the floor with the least store work a message needs in place of the batched
write: the store's own CPU for two inserts and two updates (``floor.minimal_store_seconds``).
Both floors count the NLU prediction for the messages the bot read: a message that joins a
conversation already handed to a person (decided ``waiting`` or ``to_agent``) is not read by it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench import floor
from bench.meters import Meters, cpu_seconds, machine_busy_seconds, metric, pct, peak_rss_mb
from bench.stores import bench_store
from bot.cli.common import redact
from bot.handlers.webchat.adapter import VisitorTokens
from bot.nlu.embedder import default_embedder
from bot.nlu.formats import load_paths
from bot.nlu.lanes import SHORT_BATCH
from bot.nlu.training import train
from conversations.embedded import free_port
from conversations.models import utcnow
from conversations.repositories import Repositories
from tests import traffic
from tests.faults.harness import WEBCHAT_SECRET, Providers, Router

ROOT = Path(__file__).resolve().parent.parent
# what customers write: repeated greetings and thanks, and questions with order numbers in them
REPEATED = ("hi", "thanks", "what are your opening hours?", "hello", "thank you")
UNIQUE = ("where is my order A-{n}?", "has order {n} shipped yet?")
SETTINGS = {  # production timers (the harness's fast ones are for fault tests)
    "OMNIROUTER_DISPATCH_LEASE_SECONDS": "30",
    "OMNIROUTER_DISPATCH_SWEEP_INTERVAL": "5",
    "OMNIROUTER_OUTBOX_LEASE_SECONDS": "30",
    "OMNIROUTER_OUTBOX_POLL_INTERVAL": "0.5",
    "OMNIROUTER_STORE_TIMEOUT_MS": "3000",
    "OMNIROUTER_NLU_AUTO_TRAIN": "false",
    "OMNIROUTER_NLU_RESPONSES": str(ROOT / "config" / "responses.yml"),
    "OMNIROUTER_NLU_DATA": str(ROOT / "config" / "nlu"),
}


def text_of(n: int) -> str:
    """Half the texts repeat (greetings, thanks), half are new (an order number), on every channel."""
    draw = random.Random(n).random()
    if draw < 0.5:
        return UNIQUE[int(draw * 4)].format(n=10_000 + n)
    return REPEATED[int((draw - 0.5) * 2 * len(REPEATED))]


def build(channel: str, n: int, who: int) -> tuple[traffic.SignedRequest, str]:
    """The n-th message and the address its reply goes to."""
    text = text_of(n)
    if channel == "telegram":
        return traffic.telegram_text(n, 700_000 + who, text), f"telegram:{700_000 + who}"
    if channel == "whatsapp":
        return traffic.whatsapp_text(n, str(16_505_550_000 + who), text), f"whatsapp:{16_505_550_000 + who}"
    if channel == "sms":
        return traffic.sms_text(n, f"+1415556{who:04d}", text), f"sms:+1415556{who:04d}"
    token = VisitorTokens(WEBCHAT_SECRET).token_for("default", f"vload{who:05d}")
    return traffic.webchat_text(n, token, text), f"webchat:{who}"


def workload(channels: list[str], count: int, customers: int, first: int) -> list[tuple[traffic.SignedRequest, str]]:
    """``count`` messages round robin over the channels, each from a customer drawn at random."""
    rng = random.Random(first)
    return [build(channels[n % len(channels)], n, rng.randrange(customers)) for n in range(first, first + count)]


def first_contacts(channels: list[str], customers: int) -> list[tuple[traffic.SignedRequest, str]]:
    """One message from every customer (the warm-up): the measured run is returning customers."""
    return [
        build(channel, who * len(channels) + c, who) for who in range(customers) for c, channel in enumerate(channels)
    ]


@dataclass
class Driven:
    seconds: float
    acks: list[float]
    sent_at: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: int = 0


async def drive(
    targets: list[str], requests: list[tuple[traffic.SignedRequest, str]], concurrency: int, rate: float | None
) -> Driven:
    """Post every request (retrying non-2xx as providers do), ``concurrency`` in flight or at ``rate``/s."""
    result = Driven(0.0, [])
    slots = asyncio.Semaphore(concurrency if not rate else 10_000)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.monotonic()

        async def one(n: int, request: traffic.SignedRequest, address: str) -> None:
            if rate:
                await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            async with slots:
                sent = time.monotonic()
                result.sent_at[address].append(sent)
                for _ in range(50):
                    async with session.post(
                        targets[n % len(targets)] + request.path, data=request.body, headers=dict(request.headers)
                    ) as response:
                        await response.read()
                    if response.status < 300:
                        result.acks.append(time.monotonic() - sent)
                        return
                    result.errors += 1
                    await asyncio.sleep(0.2)

        await asyncio.gather(*(one(n, r, a) for n, (r, a) in enumerate(requests)))
        result.seconds = time.monotonic() - started
    return result


def replies(providers: Providers) -> dict[str, list[float]]:
    """When each customer's replies arrived at the fakes, in order."""
    got: dict[str, list[float]] = defaultdict(list)
    for call in providers.telegram.calls:
        if call.method == "sendMessage" and call.status == 200:
            got[f"telegram:{call.params['chat_id']}"].append(call.at)
    for request in providers.whatsapp.requests:
        if request.path.endswith("/messages") and request.status == 200:
            got[f"whatsapp:{request.body['to']}"].append(request.at)
    for message, at in zip(providers.twilio.sent, providers.twilio.sent_at):
        got[f"sms:{message['To']}"].append(at)
    return got


async def model_blob(semantic: bool) -> bytes:
    data = load_paths([ROOT / "config" / "nlu"])
    loop = asyncio.get_running_loop()
    model = await loop.run_in_executor(None, train, data, default_embedder() if semantic else None)
    model.meta["version"] = "bench-both" if semantic else "bench-lexical"
    return model.to_bytes()


async def install(uri: str, database: str, blob: bytes, version: str) -> None:
    """Make ``blob`` the active model of the default account, as `omnirouter nlu train` would."""
    store = Repositories.connect(uri, database)
    try:
        await store.ensure_indexes()
        await store.nlu.save_nlu_model("default", version, blob, {"intents": 0}, utcnow())
        assert await store.nlu.activate_nlu_model("default", version, "bench", utcnow())
    finally:
        await store.close()


def delta(after: dict[str, float], before: dict[str, float], prefix: str) -> float:
    return metric(after, prefix) - metric(before, prefix)


def mean_ms(after: dict[str, float], before: dict[str, float], histogram: str) -> float:
    """The mean of a routers' latency histogram over the run, in milliseconds."""
    count = delta(after, before, f"{histogram}_count")
    return delta(after, before, f"{histogram}_sum") / count * 1000 if count else float("nan")


async def settle(
    meters: Meters, before: dict[str, float], providers: Providers, expected: int
) -> tuple[dict[str, float], float]:
    """Wait until ``expected`` messages are dispatched and every reply they made is sent (per the
    routers' counters); the metrics, and when the last reply arrived."""
    for _ in range(6000):
        after = await meters.read()
        # a dispatch that outlived its lease may be decided twice (sends nothing twice): count
        # the inbound messages, and nothing left to send
        recorded = delta(after, before, "omnirouter_inbound_total")
        decided = delta(after, before, "omnirouter_dispatch_decisions_total")
        if recorded >= expected and decided >= expected and metric(after, "omnirouter_outbox_pending") == 0:
            last = max((t for ts in replies(providers).values() for t in ts), default=time.monotonic())
            return after, max(last, time.monotonic() - 0.05)
        await asyncio.sleep(0.05)
    raise SystemExit("bench: the routers did not send every reply within 5 minutes")


async def run_tier(args: argparse.Namespace, semantic: bool, blob: bytes, tmp: Path) -> dict[str, Any]:
    store = bench_store(args.mongodb_uri, tmp / "store")
    providers = Providers()
    await store.start()
    await providers.start()
    settings = {**SETTINGS, "OMNIROUTER_NLU_SEMANTIC": str(semantic).lower()}
    # the default reply limit (20 in 10 minutes) unless a customer writes more than that here
    per_customer = -(-args.messages // (len(args.channels) * args.customers)) + 1
    if per_customer >= 20:
        settings["OMNIROUTER_DISPATCH_MAX_BOT_REPLIES"] = str(2 * per_customer)
    routers = [
        Router(store.uri, store.database, providers, tmp / f"router{i}", **settings) for i in range(args.processes)
    ]
    try:
        await install(store.uri, store.database, blob, "bench-both" if semantic else "bench-lexical")
        for router in routers:
            await router.start()
        targets = [r.url for r in routers]
        warmup = first_contacts(args.channels, args.customers)
        await drive(targets, warmup, args.concurrency, None)
        meters = Meters(routers)
        await settle(meters, {}, providers, len(warmup))
        store_process = store.pid()
        before, cpu_before, replied_before = await meters.read(), meters.cpu(), replies(providers)
        store_cpu_before = cpu_seconds(store_process) if store_process else 0.0
        own_before, machine_before = time.process_time(), machine_busy_seconds()
        scrapes_before = meters.scrapes
        requests = workload(args.channels, args.messages, args.customers, 1_000_000)
        started = time.monotonic()
        driven = await drive(targets, requests, args.concurrency, args.rate)
        after, finished = await settle(meters, before, providers, args.messages)
        cpu = meters.cpu() - cpu_before
        store_cpu = cpu_seconds(store_process) - store_cpu_before if store_process else float("nan")
        own_cpu, machine_cpu = time.process_time() - own_before, machine_busy_seconds() - machine_before
        load = os.getloadavg()[0]
        end_to_end = args.messages / (finished - started)
        delays = reply_latencies(driven, replies(providers), replied_before)
        commands = {
            m.group(1): v - before.get(k, 0)
            for k, v in after.items()
            if (m := re.match(r'omnirouter_store_commands_total\{command="(\w+)"\}', k))
        }
        commands["aggregate"] = commands.get("aggregate", 0) - 2 * (meters.scrapes - scrapes_before)
        decisions = {
            re.sub(r'.*action="(\w+)".*', r"\1", k): v - before.get(k, 0)
            for k, v in after.items()
            if k.startswith("omnirouter_dispatch_decisions_total")
        }
        sample = await install_sample(store.uri, store.database)
        result = {
            "tier": "both" if semantic else "lexical",
            "messages": args.messages,
            "processes": args.processes,
            "ack_rate": args.messages / driven.seconds,
            "end_to_end_rate": end_to_end,
            "ack_p50_ms": pct(driven.acks, 0.5),
            "ack_p99_ms": pct(driven.acks, 0.99),
            "reply_p50_ms": pct(delays, 0.5),
            "reply_p99_ms": pct(delays, 0.99),
            "retried_posts": driven.errors,
            # the routers' own means: receipt to acknowledgement (recording), and deciding a message
            "router_record_ms": mean_ms(after, before, "omnirouter_inbound_ack_seconds"),
            "router_dispatch_ms": mean_ms(after, before, "omnirouter_dispatch_seconds"),
            "store_round_trips_per_message": sum(v for v in commands.values() if v > 0) / args.messages,
            "round_trips_by_command": {k: round(v / args.messages, 3) for k, v in commands.items() if v > 0},
            "decisions": decisions,
            "router_cpu_s_per_1000": cpu / args.messages * 1000,
            "store_cpu_s_per_1000": store_cpu / args.messages * 1000,
            # this process: the load generator and the provider fakes; the machine: every process
            "bench_cpu_s_per_1000": own_cpu / args.messages * 1000,
            "machine_cpu_s_per_1000": machine_cpu / args.messages * 1000,
            "load_average": load,
            "router_peak_rss_mb": max(peak_rss_mb(r.pid) for r in routers),
            "store_peak_rss_mb": peak_rss_mb(store_process),
        }
        unread = decisions.get("waiting", 0) + decisions.get("to_agent", 0)  # joined a person's conversation
        result["floor"] = await measure_floor(
            args, semantic, blob, (store.uri, store.database), providers, sample, requests, store_process
        )
        result["floor"]["read_share"] = read_share = max(0.0, 1 - unread / args.messages)
        shared = result["floor"]["inbound_http_s"] + result["floor"]["nlu_s"] * read_share
        shared += result["floor"]["outbound_http_s"]
        result["floor"]["sum_s"] = shared + result["floor"]["store_write_s"]  # issue 8's floor: one batched write
        result["floor"]["minimal_sum_s"] = shared + result["floor"]["minimal_store_s"]  # issue 19's
        return result
    except BaseException:
        for router in routers:
            print(
                f"bench: router on {router.url} (exit {router.process and router.process.returncode}):\n"
                f"{router.log()[-3000:]}",
                file=sys.stderr,
            )
        raise
    finally:
        for router in routers:
            await router.stop()
        await providers.stop()
        await store.stop()


def reply_latencies(driven: Driven, got: dict[str, list[float]], earlier: dict[str, list[float]]) -> list[float]:
    """Inbound sent -> its reply received, pairing each customer's messages and replies in order."""
    delays = []
    for address, sent in driven.sent_at.items():
        arrived = got.get(address, [])[len(earlier.get(address, [])) :]
        delays += [reply - posted for posted, reply in zip(sent, arrived)]
    return delays


async def install_sample(uri: str, database: str) -> dict[str, Any]:
    store = Repositories.connect(uri, database)
    try:
        found = await store.messages.list_messages("default", limit=1, direction="in")
        if not found:
            return {"text": "hi"}
        doc = found[0].to_doc()
        doc.pop("_id")
        return doc
    finally:
        await store.close()


async def measure_floor(
    args: argparse.Namespace,
    semantic: bool,
    blob: bytes,
    where: tuple[str, str],
    providers: Providers,
    sample: dict[str, Any],
    requests: list[tuple[traffic.SignedRequest, str]],
    store_pid: int | None,
) -> dict[str, float]:
    port = free_port()
    bare = await floor.start_bare(port)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        break
            await asyncio.sleep(0.1)
        await drive([url], requests[:200], args.concurrency, None)
        driven = await drive([url], requests, args.concurrency, None)
    finally:
        bare.terminate()
        await bare.wait()
    texts = [text_of(n) for n in range(1_000_000, 1_000_000 + min(args.messages, 300))]
    # a router embeds the texts that arrive together in one engine call: at most as many as it has
    # in flight (the posts spread round robin over the routers); an open loop bounds none
    batch = SHORT_BATCH if args.rate else min(SHORT_BATCH, math.ceil(args.concurrency / args.processes))
    loop = asyncio.get_running_loop()
    costs = {
        "inbound_http_s": driven.seconds / len(requests),
        "nlu_s": await loop.run_in_executor(None, floor.nlu_seconds, blob, texts, semantic, batch),
        "store_write_s": await floor.store_write_seconds(*where, sample),
        "outbound_http_s": await floor.outbound_seconds(providers, args.channels, args.messages, args.concurrency),
        "minimal_store_s": await floor.minimal_store_seconds(*where, sample, store_pid),
    }
    costs["bare_rate"] = 1 / costs["inbound_http_s"]
    return costs


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"{args.messages} messages over {','.join(args.channels)}, "
        f"{f'{args.rate:.0f}/s' if args.rate else f'{args.concurrency} in flight'}, {args.customers} customers "
        f"per channel, {args.processes} router process(es), {os.cpu_count()} CPUs; "
        f"{f'MongoDB at {redact(args.mongodb_uri)}' if args.mongodb_uri else 'embedded store'}\n"
    )
    for r in results:
        f = r["floor"]
        efficiency = r["end_to_end_rate"] * f["sum_s"]
        minimal = r["end_to_end_rate"] * f["minimal_sum_s"]
        print(
            f"[{r['tier']} NLU] sustained {r['end_to_end_rate']:.0f} msg/s end to end (acknowledged at "
            f"{r['ack_rate']:.0f}/s; bare aiohttp 200: {f['bare_rate']:.0f}/s, ratio {r['ack_rate'] / f['bare_rate']:.3f})"
        )
        print(
            f"  ack p50 {r['ack_p50_ms']:.1f} ms, p99 {r['ack_p99_ms']:.1f} ms; reply p50 {r['reply_p50_ms']:.1f} ms, "
            f"p99 {r['reply_p99_ms']:.1f} ms; retried posts {r['retried_posts']}; decisions {r['decisions']}"
        )
        print(
            f"  inside the router (means): receipt to acknowledgement {r['router_record_ms']:.1f} ms, "
            f"deciding a message {r['router_dispatch_ms']:.1f} ms"
        )
        trips = ", ".join(f"{k} {v}" for k, v in sorted(r["round_trips_by_command"].items(), key=lambda kv: -kv[1]))
        print(f"  store round trips per message {r['store_round_trips_per_message']:.2f} ({trips})")
        print(
            f"  CPU per 1,000 messages: router {r['router_cpu_s_per_1000']:.2f} s, store process "
            f"{r['store_cpu_s_per_1000']:.2f} s (machine load average {r['load_average']:.1f}); peak RSS router "
            f"{r['router_peak_rss_mb']:.0f} MB, store process {r['store_peak_rss_mb']:.0f} MB"
            if not args.mongodb_uri
            else f"  CPU per 1,000 messages: router {r['router_cpu_s_per_1000']:.2f} s (machine load average "
            f"{r['load_average']:.1f}); peak RSS router {r['router_peak_rss_mb']:.0f} MB; the MongoDB's own "
            "CPU and memory are not measured (read them on its machine)"
        )
        if not args.mongodb_uri:
            print(budget(r, f))
        print(
            f"  floor per message: inbound HTTP {f['inbound_http_s'] * 1e3:.3f} ms + NLU {f['nlu_s'] * 1e3:.3f} ms"
            f"{read_share_note(f['read_share'])} + "
            f"batched store write {f['store_write_s'] * 1e3:.3f} ms + outbound HTTP {f['outbound_http_s'] * 1e3:.3f} ms"
            f" = {f['sum_s'] * 1e3:.3f} ms -> {1 / f['sum_s']:.0f} msg/s; efficiency {efficiency:.2f}"
        )
        where = "store CPU" if not args.mongodb_uri else "store wall time"
        print(
            f"  floor with the least store work (2 inserts + 2 updates, {where} "
            f"{f['minimal_store_s'] * 1e3:.3f} ms): {f['minimal_sum_s'] * 1e3:.3f} ms -> "
            f"{1 / f['minimal_sum_s']:.0f} msg/s; efficiency {minimal:.2f} (target >= 0.6)\n"
        )


def read_share_note(share: float) -> str:
    return "" if share == 1 else f" x {share:.2f} (the messages the bot read)"


def budget(r: dict[str, Any], f: dict[str, float]) -> str:
    """Where the machine's CPU went per message, and two bounds on the end-to-end rate and issue
    19's efficiency, arithmetic on this run's figures (not measurements): the cores', were the
    router's share 1.0 ms (its target) and every other process's as measured; and the embedded
    store's: one Python process whose commands on a database run one at a time behind one lock,
    so it works on about one core and cannot carry more messages a second than one core's worth
    of its CPU per message allows. Both are estimates: the floor they are set against varies from
    run to run by more than their margin to the target."""
    machine, router = r["machine_cpu_s_per_1000"], r["router_cpu_s_per_1000"]
    store, bench = r["store_cpu_s_per_1000"], r["bench_cpu_s_per_1000"]
    cores = os.cpu_count() or 1
    by_cores = cores / ((machine - router + 1.0) / 1000)
    by_store = 1000 / store
    return (
        f"  the machine's CPU per message: {machine:.2f} ms (router {router:.2f}, store {store:.2f}, load generator "
        f"and provider fakes {bench:.2f}, every other process and the kernel {machine - router - store - bench:.2f}: "
        "each share read off its own ticks, so a small negative remainder is rounding)\n"
        f"  bounds: with the router at 1.0 ms and the rest as measured, {cores} cores would carry at most "
        f"{by_cores:.0f} msg/s (efficiency {by_cores * f['minimal_sum_s']:.2f}); the store, on about one core, "
        f"at most {by_store:.0f} msg/s (efficiency {by_store * f['minimal_sum_s']:.2f}), whatever the router's CPU"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", default="telegram,whatsapp,sms,webchat")
    parser.add_argument("-n", "--messages", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, help="messages per second (open loop) instead of a concurrency")
    parser.add_argument("--customers", type=int, default=100, help="customers per channel")
    parser.add_argument("--processes", type=int, default=1, help="router processes (load spread round robin)")
    parser.add_argument("--tiers", default="lexical,both", help="NLU tiers to run: lexical, both")
    parser.add_argument("--lexical", dest="tiers", action="store_const", const="lexical")
    parser.add_argument("--semantic", dest="tiers", action="store_const", const="both")
    parser.add_argument(
        "--mongodb-uri",
        help="run against this MongoDB (a fresh database on it, dropped after) instead of an embedded store; "
        "the store's CPU and RSS are then not measured",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    unknown = set(args.channels) - {"telegram", "whatsapp", "sms", "webchat"}
    if unknown or not args.channels:
        parser.error(f"unknown channels {sorted(unknown)} (telegram, whatsapp, sms, webchat)")
    if args.mongodb_uri is not None and not args.mongodb_uri.startswith(("mongodb://", "mongodb+srv://")):
        parser.error("--mongodb-uri must start with mongodb:// or mongodb+srv://")
    return args


async def main() -> None:
    args = parse_args()
    results = []
    for tier in [t.strip() for t in args.tiers.split(",") if t.strip()]:
        if tier not in ("lexical", "both"):
            raise SystemExit(f"bench: unknown tier {tier!r} (lexical, both)")
        blob = await model_blob(tier == "both")
        with tempfile.TemporaryDirectory(prefix="omnirouter-load-") as tmp:
            results.append(await run_tier(args, tier == "both", blob, Path(tmp)))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        report(results, args)


if __name__ == "__main__":
    asyncio.run(main())
