"""What every child process of the router does first: end when the router ends."""

from __future__ import annotations

import contextlib
import signal
import sys


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (even by SIGKILL), so no child is
    orphaned holding the router's pipes and memory."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
