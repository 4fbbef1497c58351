"""The per-chat pacer spaces sends by when the provider had the previous one, not only by when
it was started: a slow send (a new connection) must not land close to the next."""

from __future__ import annotations

import asyncio
import time

from bot.handlers.kit.pacing import ChatPacer


async def test_the_next_send_waits_for_the_interval_after_the_previous_was_answered() -> None:
    pacer = ChatPacer(0.2)
    answered: list[float] = []
    started: list[float] = []

    async def send(transit: float) -> None:
        await pacer.slot("chat")
        started.append(time.monotonic())
        await asyncio.sleep(transit)  # the request on its way and answered
        answered.append(time.monotonic())
        pacer.delivered("chat")

    await asyncio.gather(send(0.15), send(0.0))
    assert started[1] - answered[0] >= 0.2 - 0.005  # counted from the answer, not the start
    assert started[1] - started[0] >= 0.35 - 0.01
