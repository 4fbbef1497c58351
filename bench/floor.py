"""The floor under a bot-answered message: each unavoidable per-message cost measured alone.

Used by ``bench/load.py`` (same run, same machine load): one inbound HTTP exchange (a bare
aiohttp handler answering 200, driven by the load generator), one NLU prediction (the loaded
model, with the router's LRU of query embeddings, embedded as its short lane embeds), one store
write amortised by batching (``insert_many`` on the embedded store) and one outbound HTTP exchange
(a send to the provider fakes, with the same HTTP client the adapters use).

Beside the batched write, the store's own CPU for the least a bot-answered message must write
(``minimal_store_seconds``: two inserts, the message and its reply, and two updates, the thread's
activity and the message's decision, into collections with the router's indexes), the floor of
issue 19's efficiency.
"""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient, UpdateOne

from bench.meters import cpu_seconds
from bot.nlu.embedder import QueryEmbeddings, default_embedder, single_engine_thread
from bot.nlu.lanes import SHORT_BATCH
from bot.nlu.model import NluModel
from conversations.repositories import INDEXES
from tests.fakes.graph_api import ACCESS_TOKEN, PHONE_NUMBER_ID
from tests.fakes.telegram_api import TOKEN
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.faults.harness import Providers

BARE_SERVER = textwrap.dedent(
    """
    import sys
    from aiohttp import web

    async def ok(request):
        await request.read()
        return web.json_response({"ok": True})

    async def healthz(request):
        return web.json_response({"status": "ok"})

    app = web.Application()
    for path in ("/webhooks/telegram", "/webhooks/whatsapp", "/webhooks/sms", "/webchat/messages"):
        app.router.add_post(path, ok)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
    """
)


async def start_bare(port: int) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(sys.executable, "-c", BARE_SERVER, str(port))


def nlu_seconds(
    blob: bytes,
    texts: Sequence[str],
    semantic: bool,
    batch: int = SHORT_BATCH,
    passes: int = 3,
    embedders: Callable[[], QueryEmbeddings] | None = None,
) -> float:
    """Mean seconds of one prediction over ``texts`` as the router makes it, the best of
    ``passes`` passes (so other work on the machine inflates the floor as little as it can).

    With the semantic tier the texts are embedded as the router's short lane embeds them
    (``bot.nlu.lanes``): on a thread whose engine runs on one OpenMP thread, ``batch`` texts an
    engine call, a text that came before not again (a fresh query LRU from ``embedders`` each
    pass, as a router starts); then each text is parsed. Left out: the tokenizer counts the router
    makes before it embeds a text (is it long, where its prefix ends)."""
    fresh = embedders or (lambda: QueryEmbeddings(default_embedder()))
    with ThreadPoolExecutor(1, thread_name_prefix="nlu-floor", initializer=single_engine_thread) as thread:
        return thread.submit(
            _best_pass, NluModel.from_bytes(blob), texts, fresh if semantic else None, batch, passes
        ).result()


def _best_pass(
    model: NluModel, texts: Sequence[str], embedders: Callable[[], QueryEmbeddings] | None, batch: int, passes: int
) -> float:
    model.parse("warm up", embedders() if embedders else None)
    best = float("inf")
    for _ in range(passes):
        embedder = embedders() if embedders else None
        started = time.perf_counter()
        for start in range(0, len(texts), batch):
            chunk = texts[start : start + batch]
            if embedder is not None:
                embedder.embed(list(dict.fromkeys(chunk)))
            for text in chunk:
                model.parse(text, embedder)
        best = min(best, (time.perf_counter() - started) / len(texts))
    return best


async def store_write_seconds(
    uri: str, database: str, sample: dict[str, Any], count: int = 5000, batch: int = 100
) -> float:
    """Seconds per message document inserted in batches of ``batch`` (a group commit's cost)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    collection = client[database]["floor_messages"]
    try:
        await collection.insert_one({**sample, "_id": "warm"})
        started = time.perf_counter()
        for _ in range(0, count, batch):
            await collection.insert_many([{**sample, "_id": uuid.uuid4().hex} for _ in range(batch)], ordered=False)
        seconds = (time.perf_counter() - started) / count
        await collection.drop()
        return seconds
    finally:
        await client.close()


async def minimal_store_seconds(
    uri: str, database: str, sample: dict[str, Any], store_pid: int | None, count: int = 3000, batch: int = 32
) -> float:
    """Per message, the store process's CPU seconds (its wall time without a pid, as on a remote
    MongoDB) for two inserts and two updates: the message and its reply inserted, the thread's
    activity and the message's decision updated, ``batch`` messages at a time (the router's
    in-flight messages share commands the same way), into copies of the ``messages`` and
    ``threads`` collections with omnirouter's indexes of them, from its own plan: the embedded
    server lists neither a text index nor a partial index's filter."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    db = client[database]
    messages, threads = db["floor_min_messages"], db["floor_min_threads"]
    try:
        for name, copy in (("messages", messages), ("threads", threads)):
            await copy.create_indexes([model for plan in INDEXES for model in plan.get(name, ())])
        thread_ids = [f"thr_{n}" for n in range(batch)]
        await threads.insert_many([{"_id": t, "account_id": "default", "messages": 0} for t in thread_ids])
        await _minimal_round(messages, threads, sample, thread_ids)  # warm up
        rounds = max(1, count // batch)
        cpu, started = (cpu_seconds(store_pid) if store_pid else 0.0), time.perf_counter()
        for _ in range(rounds):
            await _minimal_round(messages, threads, sample, thread_ids)
        used = cpu_seconds(store_pid) - cpu if store_pid else time.perf_counter() - started
        return used / (rounds * batch)
    finally:
        await messages.drop()
        await threads.drop()
        await client.close()


async def _minimal_round(messages: Any, threads: Any, sample: dict[str, Any], thread_ids: list[str]) -> None:
    ids = [uuid.uuid4().hex for _ in thread_ids]
    await messages.insert_many(
        [{**sample, "_id": i, "external_id": i, "thread_id": t} for i, t in zip(ids, thread_ids)], ordered=False
    )
    await threads.bulk_write(
        [
            UpdateOne({"_id": t}, {"$set": {"last_message_at": time.time()}, "$inc": {"messages": 2}})
            for t in thread_ids
        ],
        ordered=False,
    )
    await messages.bulk_write(
        [UpdateOne({"_id": i}, {"$set": {"dispatch_state": "done", "decision": {"action": "answered"}}}) for i in ids],
        ordered=False,
    )
    await messages.insert_many(
        [
            {**sample, "_id": f"r{i}", "direction": "out", "thread_id": t, "external_id": f"r{i}"}
            for i, t in zip(ids, thread_ids)
        ],
        ordered=False,
    )


def _sends(providers: Providers, channels: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """One outbound request per channel, as the adapters make it (web chat sends no HTTP)."""
    known = {
        "telegram": (
            f"{providers.telegram.url}/bot{TOKEN}/sendMessage",
            {"data": {"chat_id": "7", "text": "We are open"}},
        ),
        "whatsapp": (
            f"{providers.whatsapp.url}/v21.0/{PHONE_NUMBER_ID}/messages",
            {
                "json": {
                    "messaging_product": "whatsapp",
                    "to": "16505550000",
                    "type": "text",
                    "text": {"body": "We are open"},
                },
                "headers": {"Authorization": f"Bearer {ACCESS_TOKEN}"},
            },
        ),
        "sms": (
            f"{providers.twilio.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json",
            {
                "data": {"To": "+14155559999", "From": "+14155550100", "Body": "We are open"},
                "auth": aiohttp.BasicAuth(ACCOUNT_SID, AUTH_TOKEN),
            },
        ),
    }
    return [known[c] for c in channels if c in known]


async def outbound_seconds(providers: Providers, channels: Sequence[str], count: int, concurrency: int) -> float:
    """Seconds per outbound exchange with the provider fakes, ``concurrency`` in flight."""
    sends = _sends(providers, channels)
    if not sends:
        return 0.0
    numbers = iter(range(count))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for n in numbers:
                url, kwargs = sends[n % len(sends)]
                async with session.post(url, **kwargs) as response:
                    await response.read()
                    assert response.status < 300, response.status

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.perf_counter() - started) / count
