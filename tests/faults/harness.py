"""A harness for fault and load runs with real processes: a store the run can stop and start, the
provider fakes receiving replies, `omnirouter serve` processes the run can kill, and a load driver
that posts signed traffic from several channels and retries like providers do.

Used by ``tests/faults/`` and meant for ``bench/`` (run with ``PYTHONPATH=.``):

    store = SharedStore(tmp / "store"); await store.start()
    providers = Providers(); await providers.start()
    router = Router(store.uri, "db", providers, tmp / "a"); await router.start()
    load = Load([router.url]); await load.run(mixed_traffic(200, customers=40), concurrency=16)
    report = await settle(store.uri, "db")
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from pymongo import AsyncMongoClient

from bot.handlers.webchat.tokens import VisitorTokens
from conversations.embedded import EmbeddedMongo, free_port
from tests import traffic
from tests.fakes.graph_api import ACCESS_TOKEN, PHONE_NUMBER_ID, FakeGraphAPI
from tests.fakes.telegram_api import TOKEN, FakeBotAPI
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, PUBLIC_URL, FakeTwilio
from tests.handlers.channels import TG_SECRET, WA_SECRET, WA_VERIFY

OMNIROUTER = str(Path(sys.executable).parent / "omnirouter")
WEBCHAT_SECRET = "harness-webchat-secret"
OUR_NUMBER = "+14155550100"
INSTALL_KEY = "5e" * 32  # the key that seals the run's channel secrets, shared by its routers


class SharedStore:
    """The store every router of a run points at: a real nx-27017 process on a Unix socket that
    stays where it is, so it can be stopped (an outage) and started again where the routers expect it."""

    def __init__(self, store: Path | EmbeddedMongo) -> None:
        """``store``: the data directory of a store to start, or an embedded store running already
        (the ``own_store`` fixture)."""
        self._server = store if isinstance(store, EmbeddedMongo) else EmbeddedMongo(store)
        self._uri: str | None = self._server.uri if self._server.running else None

    @property
    def uri(self) -> str:
        assert self._uri is not None, "start() first"
        return self._uri

    async def start(self) -> None:
        await self._server.start()
        assert self._uri in (None, self._server.uri), "the store moved"
        self._uri = self._server.uri

    async def stop(self) -> None:
        await self._server.stop()


class Providers:
    """The provider fakes replies go to: Telegram Bot API, WhatsApp Graph API, Twilio."""

    def __init__(self) -> None:
        self.telegram, self.whatsapp, self.twilio = FakeBotAPI(), FakeGraphAPI(), FakeTwilio()

    async def start(self) -> None:
        for fake in (self.telegram, self.whatsapp, self.twilio):
            await fake.start()

    async def stop(self) -> None:
        for fake in (self.telegram, self.whatsapp, self.twilio):
            await fake.stop()

    def settings_env(self) -> dict[str, str]:
        """The router settings that point every channel at these fakes."""
        return {
            "OMNIROUTER_SERVER_PUBLIC_URL": PUBLIC_URL,
            "OMNIROUTER_WEBCHAT_SECRET": WEBCHAT_SECRET,
            "OMNIROUTER_TELEGRAM_TOKEN": TOKEN,
            "OMNIROUTER_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "OMNIROUTER_TELEGRAM_API_BASE": self.telegram.url,
            "OMNIROUTER_TELEGRAM_PACING": "0",
            "OMNIROUTER_WHATSAPP_PHONE_NUMBER_ID": PHONE_NUMBER_ID,
            "OMNIROUTER_WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "OMNIROUTER_WHATSAPP_APP_SECRET": WA_SECRET,
            "OMNIROUTER_WHATSAPP_VERIFY_TOKEN": WA_VERIFY,
            "OMNIROUTER_WHATSAPP_API_BASE": self.whatsapp.url,
            "OMNIROUTER_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "OMNIROUTER_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "OMNIROUTER_TWILIO_API_BASE": self.twilio.url,
            "OMNIROUTER_SMS_FROM_NUMBER": OUR_NUMBER,
        }

    def deliveries(self) -> Counter[str]:
        """Replies each customer received, by channel address (``telegram:<chat>``, ...)."""
        got: Counter[str] = Counter()
        got.update(
            f"telegram:{c.params['chat_id']}"
            for c in self.telegram.calls
            if c.method == "sendMessage" and c.status == 200
        )
        got.update(f"whatsapp:{body['to']}" for body in self.whatsapp.sent_ok())
        got.update(f"sms:{m['To']}" for m in self.twilio.sent)
        return got


FAST = {  # timers short enough for a test: a dead process's work is taken over within seconds
    "OMNIROUTER_STORE_TIMEOUT_MS": "1000",
    "OMNIROUTER_DISPATCH_LEASE_SECONDS": "2",
    "OMNIROUTER_DISPATCH_SWEEP_INTERVAL": "0.5",
    "OMNIROUTER_OUTBOX_LEASE_SECONDS": "3",
    "OMNIROUTER_OUTBOX_POLL_INTERVAL": "0.1",
    "OMNIROUTER_OUTBOX_BASE_DELAY": "0.2",
    "OMNIROUTER_OUTBOX_MAX_DELAY": "1",
    "OMNIROUTER_LOG_LEVEL": "warning",
}


class Router:
    """One `omnirouter serve` process on a port of its own (the same port again after a restart)."""

    def __init__(self, store_uri: str, database: str, providers: Providers, workdir: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("OMNIROUTER_")}
        self._env = {
            **inherited,
            **providers.settings_env(),
            **FAST,
            **settings,
            "OMNIROUTER_SECRET_KEY": INSTALL_KEY,  # one install: every process opens its sealed secrets
            "OMNIROUTER_MONGODB_URI": store_uri,
            "OMNIROUTER_STORE_DATABASE": database,
            "OMNIROUTER_SERVER_HOST": "127.0.0.1",
            "OMNIROUTER_SERVER_PORT": str(self.port),
        }

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    async def start(self, timeout: float = 60.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / "router.log", "ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                OMNIROUTER,
                "serve",
                cwd=self.workdir,
                env=self._env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"omnirouter exited with {self.process.returncode}: {self.log()[-2000:]}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"omnirouter did not answer /healthz within {timeout} s: {self.log()[-2000:]}")

    async def kill(self) -> None:
        """``kill -9``: no shutdown, no draining, whatever was in flight is lost with the process."""
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 15)
            except TimeoutError:
                await self.kill()

    def api_headers(self) -> dict[str, str]:
        """The superadmin's header for this router's ``/api``: the install token it wrote on its
        first start (the same for every router of the run: they share the store)."""
        return {"Authorization": f"Bearer {(self.workdir / 'var' / 'api.token').read_text().strip()}"}

    def log(self) -> str:
        path = self.workdir / "router.log"
        return path.read_text(errors="replace") if path.exists() else ""


# --- traffic ----------------------------------------------------------------------------------------

CHANNELS = ("telegram", "whatsapp", "sms", "webchat")


def message(channel: str, n: int, who: int) -> traffic.SignedRequest:
    """The ``n``-th message of a run (``n`` also makes its provider id), from customer ``who``."""
    if channel == "telegram":
        return traffic.telegram_text(n, 700_000 + who)
    if channel == "whatsapp":
        return traffic.whatsapp_text(n, str(16_505_550_000 + who))
    if channel == "sms":
        return traffic.sms_text(n, f"+1415556{who:04d}")
    token = VisitorTokens(WEBCHAT_SECRET).token_for("default", f"vload{who:05d}")
    return traffic.webchat_text(n, token)


def mixed_traffic(count: int, customers: int, first: int = 0) -> list[traffic.SignedRequest]:
    """``count`` messages round-robin over the channels, from ``customers`` customers per channel;
    numbered from ``first`` (runs on one store keep their provider ids apart)."""
    return [
        message(CHANNELS[n % len(CHANNELS)], n, (n // len(CHANNELS)) % customers) for n in range(first, first + count)
    ]


@dataclass
class Delivery:
    """What happened to one message: every status the routers answered, and when it was acked."""

    statuses: list[int | str] = field(default_factory=list)
    acked_at: float | None = None
    slowest: float = 0.0


class Load:
    """Posts signed messages to routers and retries each until a router acknowledges it (2xx),
    as providers do: on 5xx, on a refused or dropped connection, after a short pause."""

    def __init__(self, targets: Sequence[str], deadline: float = 90.0, retry_pause: float = 0.2) -> None:
        self.targets = list(targets)
        self.deadline = deadline
        self.retry_pause = retry_pause
        self.deliveries: dict[str, Delivery] = {}
        self.fan_out = False  # post each message to every target at once (providers retrying in parallel)

    @property
    def acked(self) -> list[str]:
        return [key for key, d in self.deliveries.items() if d.acked_at is not None]

    def statuses(self) -> Counter[int | str]:
        return Counter(s for d in self.deliveries.values() for s in d.statuses)

    async def run(
        self, requests: Iterable[traffic.SignedRequest], concurrency: int = 16, rate: float | None = None
    ) -> None:
        """Deliver every request; ``rate`` spaces their first attempts (messages per second)."""
        slots = asyncio.Semaphore(concurrency)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            started = time.monotonic()

            async def one(n: int, request: traffic.SignedRequest) -> None:
                if rate:
                    await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                async with slots:
                    await self._deliver(session, request, n)

            await asyncio.gather(*(one(n, r) for n, r in enumerate(requests)))

    async def _deliver(self, session: aiohttp.ClientSession, request: traffic.SignedRequest, n: int) -> None:
        record = self.deliveries.setdefault(request.key, Delivery())
        give_up = time.monotonic() + self.deadline
        while time.monotonic() < give_up:
            targets = self.targets if self.fan_out else [self.targets[n % len(self.targets)]]
            answers = await asyncio.gather(*(self._post(session, t, request, record) for t in targets))
            if any(isinstance(a, int) and 200 <= a < 300 for a in answers):
                record.acked_at = time.monotonic()
                return
            await asyncio.sleep(self.retry_pause)
        raise AssertionError(f"{request.key} was never acknowledged: {record.statuses}")

    async def _post(
        self, session: aiohttp.ClientSession, target: str, request: traffic.SignedRequest, record: Delivery
    ) -> int | str:
        sent = time.monotonic()
        try:
            async with session.post(
                target + request.path, data=request.body, headers=dict(request.headers)
            ) as response:
                await response.read()
                answer: int | str = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            answer = type(exc).__name__
        record.slowest = max(record.slowest, time.monotonic() - sent)
        record.statuses.append(answer)
        return answer


# --- what the store holds ---------------------------------------------------------------------------


async def settle(store_uri: str, database: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until every inbound message is dispatched and no reply is pending; the store's state."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(store_uri, serverSelectionTimeoutMS=5000)
    db = client[database]
    try:
        deadline = time.monotonic() + timeout
        while True:
            pending = await db.messages.count_documents(
                {"direction": "in", "dispatch_state": "pending"}
            ) + await db.messages.count_documents({"send.state": "pending"})
            if not pending:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"{pending} dispatches or sends still pending after {timeout} s")
            await asyncio.sleep(0.25)
        return await snapshot(db)
    finally:
        await client.close()


async def snapshot(db: Any) -> dict[str, Any]:
    inbound = await db.messages.find(
        {"direction": "in"}, {"external_id": 1, "thread_id": 1, "channel": 1, "decision": 1}
    ).to_list()
    threads = await db.threads.find({}, {"status": 1, "queued_by": 1, "channel": 1, "address": 1}).to_list()
    sends = await db.messages.find({"send": {"$exists": True}}, {"send": 1, "thread_id": 1}).to_list()
    outbox = [{**m["send"], "thread_id": m["thread_id"]} for m in sends]  # each reply's send state
    thread_ids = {t["_id"] for t in threads}
    return {
        "inbound": len(inbound),
        "inbound_keys": Counter(f"{m['channel']}:{m['external_id']}" for m in inbound),
        "orphans": [m["_id"] for m in inbound if m["thread_id"] not in thread_ids],
        "empty_threads": [t["_id"] for t in threads if t["_id"] not in {m["thread_id"] for m in inbound}],
        "threads": threads,
        "outbox": outbox,
        "notices_by_address": Counter(f"{o['to']['channel']}:{o['to']['address']}" for o in outbox),
        "outbox_states": Counter(o["state"] for o in outbox),
        "decisions": Counter((m.get("decision") or {}).get("action") for m in inbound),
    }
