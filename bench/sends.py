"""What one reply's send costs the router: CPU per send of each channel's outbound path, with the
provider client libraries' own path beside ours, measured in one run.

    PYTHONPATH=. .venv/bin/python bench/sends.py [--sends 3000] [--rounds 3] [--json]

The provider fakes (WhatsApp Graph API, Twilio) run in a child process, so this process's CPU
(``time.process_time``) is the sending side's alone: the client building the request, aiohttp
sending it and reading the answer. 32 sends in flight, as the outbox sends; in each round the
library's path and ours take turns going first. Printed per round and as means, with the ratio of
the library's path to ours:

- WhatsApp: pywa's ``send_message`` (httpx over ``httpx-aiohttp``) against ``GraphClient.send_text``
  (one JSON POST on the same aiohttp session), which the adapter uses for a plain text;
- Twilio: the ``twilio`` library's ``messages.create_async`` with its own ``AsyncTwilioHttpClient``
  against ``TwilioHttpClient`` (the form urlencoded once, the credentials as a header).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from bot.handlers.kit.egress import Egress, HostRule
from bot.handlers.kit.twilio_http import TwilioHttpClient
from bot.handlers.whatsapp.graph import make_client
from tests.fakes.graph_api import ACCESS_TOKEN, PHONE_NUMBER_ID
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN

IN_FLIGHT = 32
FAKES = """
import asyncio
from tests.fakes.graph_api import FakeGraphAPI
from tests.fakes.twilio import FakeTwilio

async def main():
    graph, twilio = FakeGraphAPI(), FakeTwilio()
    await graph.start()
    await twilio.start()
    print(graph.url.rsplit(":", 1)[1], twilio.url.rsplit(":", 1)[1], flush=True)
    while True:
        graph.requests.clear()
        twilio.sent.clear()
        twilio.sent_at.clear()
        await asyncio.sleep(1)

asyncio.run(main())
"""


async def cpu_per_send(send: Callable[[int], Awaitable[Any]], sends: int) -> float:
    """Milliseconds of this process's CPU per send, ``IN_FLIGHT`` at a time, after a warm-up."""
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int) -> None:
        async with gate:
            await send(n)

    await asyncio.gather(*(one(n) for n in range(200)))
    started = time.process_time()
    await asyncio.gather(*(one(n) for n in range(sends)))
    return (time.process_time() - started) / sends * 1000


async def measure(graph_port: int, twilio_port: int, sends: int, rounds: int) -> dict[str, list[float]]:
    egress = Egress([HostRule("127.0.0.1", graph_port), HostRule("127.0.0.1", twilio_port)])
    graph = make_client(
        {"phone_number_id": PHONE_NUMBER_ID, "access_token": ACCESS_TOKEN},
        f"http://127.0.0.1:{graph_port}",
        "21.0",
        egress,
    )
    found: dict[str, list[float]] = {}
    try:
        for round_ in range(rounds):
            whatsapp = [
                ("whatsapp: pywa", lambda n: graph.pywa.send_message("16505551234", f"Reply {n}")),
                ("whatsapp: ours", lambda n: graph.send_text("16505551234", f"Reply {n}")),
            ]
            for name, send in whatsapp[:: 1 if round_ % 2 == 0 else -1]:  # each goes first in turn
                found.setdefault(name, []).append(await cpu_per_send(send, sends))
            twilio: list[tuple[str, type[AsyncTwilioHttpClient]]] = [
                ("twilio: the library's client", AsyncTwilioHttpClient),
                ("twilio: ours", TwilioHttpClient),
            ]
            for name, kind in twilio[:: 1 if round_ % 2 == 0 else -1]:
                found.setdefault(name, []).append(await twilio_cpu_per_send(kind, egress, twilio_port, sends))
    finally:
        await graph.close()
    return found


async def twilio_cpu_per_send(kind: type[AsyncTwilioHttpClient], egress: Egress, port: int, sends: int) -> float:
    http = kind(pool_connections=False, timeout=10)
    http.session = egress.session(limit=20)
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = f"http://127.0.0.1:{port}"
    try:
        return await cpu_per_send(
            lambda n: client.messages.create_async(to="+15550100", from_="+15550199", body=f"Reply {n}"), sends
        )
    finally:
        await http.session.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fakes = await asyncio.create_subprocess_exec(sys.executable, "-c", FAKES, stdout=asyncio.subprocess.PIPE)
    try:
        assert fakes.stdout is not None
        graph_port, twilio_port = map(int, (await asyncio.wait_for(fakes.stdout.readline(), 30)).split())
        found = await measure(graph_port, twilio_port, args.sends, args.rounds)
    finally:
        fakes.terminate()
        await fakes.wait()
    means = {name: sum(values) / len(values) for name, values in found.items()}
    if args.json:
        print(json.dumps({"rounds": found, "means": means}))
        return
    print(f"CPU per send (ms), {args.sends} sends a round, {IN_FLIGHT} in flight, the fakes in another process")
    for name, values in found.items():
        print(f"  {name:30s} {' '.join(f'{v:.3f}' for v in values)}   mean {means[name]:.3f}")
    for channel, theirs, ours in (
        ("WhatsApp", "whatsapp: pywa", "whatsapp: ours"),
        ("Twilio", "twilio: the library's client", "twilio: ours"),
    ):
        print(f"  {channel}: the library's path costs {means[theirs] / means[ours]:.2f}x ours")


if __name__ == "__main__":
    asyncio.run(main())
