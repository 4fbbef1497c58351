"""Files only the router's user may read: the install token, the key file, the first admin's
password, contact exports, the embedded store's own files.

One way of writing them, so none is ever readable by others, not even for a moment: the text goes
to a new temporary file beside the target, created 0600 (whatever the umask), and is then renamed
over the target (``replace``) or linked to its name only if there is none yet (``create``), so a
reader meanwhile finds the old file, the whole new one, or none — never a half-written one.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

PRIVATE_FILE, PRIVATE_DIR = 0o600, 0o700


def open_private(path: Path, flags: int) -> int:
    """``os.open`` of ``path`` (created when missing) that leaves it 0600 even if it was not."""
    fd = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except OSError:
        os.close(fd)
        raise
    return fd


def write_private(path: Path, text: str, *, replace: bool = True) -> None:
    """``text`` in ``path``, mode 0600, whole or not at all (``OSError`` when it cannot be).
    With ``replace=False`` an existing file is kept and ``FileExistsError`` raised: the first of
    several processes making the same file wins."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = open_private(temporary, os.O_WRONLY | os.O_EXCL)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
