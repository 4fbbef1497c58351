"""Attachments stay with the provider until someone needs the bytes: then they are fetched by the
provider's file id, never more than a configured size. How a file is then sent to a browser is
decided here for every route that serves one: only images of the common formats whose first bytes
match their type are shown inline; anything else is a download, and no type a browser would run
(HTML, SVG, XML, scripts) is ever declared."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import quote


class AttachmentError(Exception):
    """An attachment cannot be fetched; the message is one line for the user."""


class AttachmentTooLarge(AttachmentError):
    """The file is larger than the channel's ``max_download_bytes``."""


class AttachmentUnavailable(AttachmentError):
    """The provider does not have the file (any more), or could not be reached."""


class NotDownloadable(AttachmentError):
    """The attachment carries no file (a location, a contact card) or its channel cannot fetch it."""


async def read_capped(chunks: AsyncIterator[bytes], limit: int, declared: int | None = None) -> bytes:
    """Collect a download, refusing it as soon as it is known to exceed ``limit`` bytes."""
    if declared is not None and declared > limit:
        raise AttachmentTooLarge(f"the file has {declared} bytes, more than the {limit} allowed")
    data = bytearray()
    async for chunk in chunks:
        data += chunk
        if len(data) > limit:
            raise AttachmentTooLarge(f"the file is larger than the {limit} bytes allowed")
    return bytes(data)


def megabytes(size: int) -> str:
    """A file size as people read it: ``2.5 MB``."""
    return f"{size / 1_000_000:.1f} MB"


PREVIEWED = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]{0,63}/[A-Za-z0-9][\w.+-]{0,127}$", re.ASCII)
_ACTIVE = re.compile(r"html|xml|svg|javascript|ecmascript|x-sh|x-csh", re.IGNORECASE)
MAGIC = {  # what a previewed image's first bytes must be: a declared type is only a claim
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


def clean_type(declared: str | None) -> str:
    """A declared content type reduced to ``type/subtype`` (parameters dropped), or
    ``application/octet-stream`` when it is not one."""
    mime = (declared or "").lower().split(";")[0].strip()
    return mime if _MIME.match(mime) and not mime.startswith("multipart/") else "application/octet-stream"


def served_type(declared: str | None, data: bytes) -> tuple[str, bool]:
    """The content type to send and whether the file may be shown inline."""
    mime = (declared or "").lower().split(";")[0].strip()
    if mime in PREVIEWED and data.startswith(MAGIC[mime]):
        return mime, True
    if not _MIME.match(mime) or _ACTIVE.search(mime) or mime.startswith("text/"):
        return "application/octet-stream", False
    return mime, False


def disposition(name: str, inline: bool = False) -> str:
    """A Content-Disposition for a customer's file name, whatever it contains (quotes, line
    breaks, non-ASCII): an ASCII fallback plus the exact name percent-encoded (RFC 6266)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name)[:100]
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name[:200], safe='')}"


def file_headers(name: str, inline: bool) -> dict[str, str]:
    """The headers every file is sent with: its name, no sniffing, no script, kept privately."""
    return {
        "Content-Disposition": disposition(name, inline=inline),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=3600",
    }
