"""A week of conversations with known report figures, seeded straight into the store.

The period is 2025-03-01 .. 2025-03-07 (UTC); "now" is 2025-03-08 02:00. The expected figures are
worked out by hand in ``EXPECTED`` (the comments show the arithmetic), so the reports are checked
against answers, not against a second implementation.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from conversations.agent_models import Agent, Role, Shift
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.thread_models import Thread, ThreadStatus

SINCE, UNTIL = date(2025, 3, 1), date(2025, 3, 7)
NOW = datetime(2025, 3, 8, 2, 0, tzinfo=UTC)
SLA_MINUTES = 15.0


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


S = timedelta(seconds=1)
WAITS = [30, 60, 90, 120, 150, 180, 240, 300, 600, 1200]  # queue wait of escalated threads 0..9, seconds
FIRST = [60, 120, 180, 240, 300, 600, 900, 1200, 1800, 3600]  # first response, from being queued
RESOLVED = [600, 1200, 1800, 2400, 3000, 3600, 7200]  # opened -> resolved, threads 0..6
CHANNELS = ["whatsapp"] * 6 + ["sms"] * 3 + ["email"]
REASONS = ["no_nlu"] * 6 + ["missed_call"] * 3 + ["direct_channel"]

EXPECTED: dict[str, Any] = {
    "total": 15,  # 4 contained + 10 escalated + 1 still unanswered
    "contained": 4,
    "contained_resolved": 2,
    "escalated": 11,
    "resolved": 9,
    "by_channel": [("whatsapp", 6), ("sms", 3), ("email", 2), ("telegram", 2), ("webchat", 2)],
    "by_day": [4, 0, 6, 0, 3, 0, 2],
    "reasons": [("no_nlu", 6), ("missed_call", 3), ("direct_channel", 2)],
    # sorted waits: median = (150 + 180) / 2; p90 at rank 8.1 = 600 + 0.1 * (1200 - 600)
    "queue_wait": {"count": 10, "median": 165.0, "p90": 660.0, "mean": 297.0},
    # median = (300 + 600) / 2; p90 at rank 8.1 = 1800 + 0.1 * (3600 - 1800); mean 9000 / 10
    "first_response": {"count": 10, "median": 450.0, "p90": 1980.0, "mean": 900.0},
    # [120, 240, 600, 1200, 1800, 2400, 3000, 3600, 7200]: median the 5th; p90 at 7.2 = 3600 + 0.2 * 3600
    "resolution": {"count": 9, "median": 1800.0, "p90": 4320.0, "mean": 20160 / 9},
    "sla_breached": 4,  # first responses of 1200, 1800, 3600 s > 900 s, and the unanswered thread
    "sla_unanswered": 1,
    "next_breaches": 3,
    # handling = resolved - queued (10 s after opening) - wait: ann 560+1700+2840+6950, ben 1130+2270+3410
    "agents": {"ann": (5, 4, 12050.0, 2, 12.5 * 3600), "ben": (5, 3, 6810.0, 1, 6 * 3600)},
}


def _thread(
    n: str, channel: str, opened: datetime, status: ThreadStatus, account: str = "default", **fields: Any
) -> Thread:
    return Thread(
        id=f"thr_seed{n}",
        account_id=account,
        contact_id=f"con_seed{n}",
        channel=channel,
        status=status,
        opened_at=opened,
        last_message_at=opened,
        **fields,
    )


def threads(agents: dict[str, str]) -> list[Thread]:
    seeded = [
        _thread("c0", "webchat", at(1, 9), ThreadStatus.RESOLVED, resolved_at=at(1, 9) + 120 * S),
        _thread("c1", "webchat", at(1, 10), ThreadStatus.BOT),
        _thread("c2", "telegram", at(1, 11), ThreadStatus.RESOLVED, resolved_at=at(1, 11) + 240 * S),
        _thread("c3", "telegram", at(1, 12), ThreadStatus.BOT),
    ]
    for i, channel in enumerate(CHANNELS):
        opened = at(3 if i < 6 else 5 if i < 9 else 7, 8 + i)
        queued, agent = opened + 10 * S, agents["ann" if i % 2 == 0 else "ben"]
        assigned = queued + WAITS[i] * S
        fields: dict[str, Any] = {
            "queued_at": queued,
            "first_queued_at": queued,
            "assigned_at": assigned,
            "first_assigned_at": assigned,
            "first_response_at": queued + FIRST[i] * S,
            "handoff_reason": REASONS[i],
            "escalation_reason": "transfer" if i == 9 else REASONS[i],
            "next_response_breaches": {2: 2, 3: 1}.get(i, 0),
        }
        if i < len(RESOLVED):
            fields.update(resolved_at=opened + RESOLVED[i] * S, last_assignee=agent)
            seeded.append(_thread(str(i), channel, opened, ThreadStatus.RESOLVED, **fields))
        else:
            seeded.append(_thread(str(i), channel, opened, ThreadStatus.ASSIGNED, assignee=agent, **fields))
    seeded.append(
        _thread(
            "u",
            "email",
            at(7, 12),
            ThreadStatus.QUEUED,
            queued_at=at(7, 12, 1),
            first_queued_at=at(7, 12, 1),
            handoff_reason="direct_channel",
            escalation_reason="direct_channel",
        )
    )
    # outside the period or the account: must count nowhere
    late = {"queued_at": at(1, 0), "first_queued_at": at(1, 0), "first_response_at": at(1, 0) + 99_999 * S}
    seeded += [
        _thread("x1", "sms", at(1, 0) - timedelta(milliseconds=1), ThreadStatus.QUEUED, **late),
        _thread("x2", "sms", datetime(2025, 3, 8, tzinfo=UTC), ThreadStatus.QUEUED, **late),
        _thread("x3", "webchat", at(4, 12), ThreadStatus.QUEUED, account="other", **late),
    ]
    return seeded


async def seed(store: Repositories) -> dict[str, str]:
    """Seed the week; returns the agents' ids by login."""
    agents: dict[str, str] = {}
    for login in ("ann", "ben"):
        agent = Agent(
            id=f"agt_{login}",
            account_id="default",
            login=login,
            name=login.title(),
            role=Role.AGENT,
            created_at=utcnow(),
        )
        await store.agents.create_agent(agent)
        agents[login] = agent.id
    await store.threads.import_threads(threads(agents))
    shifts = [  # one agent's shifts in the order they were worked
        ("ann", at(2, 8), at(2, 16)),
        ("ann", at(4, 9), at(4, 13, 30)),
        ("ben", at(1, 0) - timedelta(hours=2), at(1, 6)),  # started before the period
        ("ben", at(7, 20), None),  # still on shift "now": 6 h so far
    ]
    for n, (login, started, ended) in enumerate(shifts):
        await store.agents.open_shift(
            Shift(
                id=f"shf_seed{n}",
                account_id="default",
                agent_id=agents[login],
                agent_login=login,
                started_at=started,
                open_key=agents[login],
            )
        )
        if ended is not None:
            assert await store.agents.close_shift(agents[login], ended, None) is not None
    return agents
