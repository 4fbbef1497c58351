"""Entry point of the embedded store's child process: nx-27017 that dies with its parent.

Run as ``python -m conversations._nx_child --data-dir DIR --port N ...`` by ``EmbeddedMongo``.
"""

from __future__ import annotations

import contextlib
import signal
import sys


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so no server is orphaned."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def main() -> None:
    _die_with_parent()
    from nx_27017.nx_27017 import main as nx_main

    sys.argv[0] = "nx-27017"
    nx_main()


if __name__ == "__main__":
    main()
