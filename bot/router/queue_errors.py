"""What the queue refuses, with a code and the HTTP status the console and the API answer with."""

from __future__ import annotations

from conversations.agent_models import Agent


class QueueError(Exception):
    """A queue action that cannot be done; ``code`` names why, ``status`` is the HTTP answer."""

    def __init__(self, code: str, detail: str, status: int = 409) -> None:
        super().__init__(detail)
        self.code = code
        self.status = status


class CannotTake(QueueError):
    """The agent a conversation was transferred to cannot take it now; ``team``: the queue it could
    go to instead (the agent's team, or the conversation's; "" for the general queue)."""

    def __init__(self, agent: Agent, team: str) -> None:
        presence = str(agent.presence)
        why = {"offline": "is not on shift", "away": "is away"}.get(presence, f"has {agent.load} of {agent.capacity}")
        super().__init__("cannot_take", f"{agent.name} cannot take it now: {why}", 409)
        self.agent_name, self.why, self.team = agent.name, why, team
