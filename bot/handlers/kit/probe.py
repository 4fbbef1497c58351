"""What a channel's probe says when a provider did not confirm an inbox's settings (the console's
Check and Set-webhook buttons): why, in one line, and whose fault it was."""

from __future__ import annotations

from typing import Literal

ProbeFault = Literal["refused", "unreachable", "provider"]


class ProbeFailed(Exception):
    """``refused``: this install may not call the inbox's ``api_base``; ``unreachable``: no answer
    from the provider (network, timeout, the egress guard, a non-API answer); ``provider``: the
    provider answered with an error (``reason`` is its own words)."""

    def __init__(self, fault: ProbeFault, reason: str) -> None:
        super().__init__(reason)
        self.fault: ProbeFault = fault
        self.reason = reason
