"""The bytes of a customer's attachment, for the console and the API alike: from the store when
the file was fetched before, otherwise from the channel's provider (by its file id, capped at the
channel's ``max_download_bytes``) and then kept in the store's GridFS under the account's quota.

How a file is served is decided here too: only images of the common formats are shown inline
(the console previews them); anything else is a download, and no declared type that a browser
would run (HTML, SVG, XML, scripts) is ever sent as such.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot.handlers.kit.media import AttachmentError, AttachmentUnavailable
from bot.logs import log_event
from conversations.files import QuotaExceeded
from conversations.repositories import Repositories
from conversations.thread_models import Message

log = logging.getLogger("omnirouter.attachments")
PREVIEWED = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]{0,63}/[A-Za-z0-9][\w.+-]{0,127}$", re.ASCII)
_ACTIVE = re.compile(r"html|xml|svg|javascript|ecmascript|x-sh|x-csh", re.IGNORECASE)
MAGIC = {  # what a previewed image's first bytes must be: a declared type is only a claim
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


class NotDownloadable(AttachmentError):
    """The attachment carries no file (a location, a contact card) or its channel cannot fetch it."""


@dataclass(frozen=True, slots=True)
class FileView:
    """A file as it is sent to a browser."""

    data: bytes
    name: str
    content_type: str  # what is declared to the browser: never an active type
    inline: bool  # an image shown in the page; otherwise a download

    def headers(self) -> dict[str, str]:
        return {
            "Content-Disposition": disposition(self.name, inline=self.inline),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        }


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


async def attachment_file(
    store: Repositories, adapters: dict[str, Any], quota: int, message: Message, index: int
) -> FileView:
    """The ``index``-th attachment of ``message`` (checked to exist by the caller), kept in the
    store on its first fetch. ``AttachmentError`` says why it cannot be had."""
    attachment = message.attachments[index]
    name = attachment.name or f"attachment-{index + 1}"
    kept = await store.files.cached(message.account_id, message.id, index)
    data = await store.files.read(kept) if kept is not None else None
    if data is None:
        fetch = getattr(adapters.get(message.channel), "fetch_attachment", None)
        if fetch is None or not attachment.provider_ref:
            raise NotDownloadable("this attachment has no file to fetch")
        data = await fetch(message.account_id, attachment.provider_ref)
        if not isinstance(data, bytes):
            raise AttachmentUnavailable("the channel gave no bytes for this file")
        try:
            await store.files.keep(
                account_id=message.account_id,
                contact_id=message.contact_id,
                thread_id=message.thread_id,
                message_id=message.id,
                index=index,
                name=name,
                content_type=attachment.mime_type or "application/octet-stream",
                data=data,
                quota=quota,
            )
        except QuotaExceeded as exc:  # shown this once, fetched again next time
            log_event(log, "attachments.quota_full", logging.WARNING, account=message.account_id, reason=str(exc))
    mime, inline = served_type(attachment.mime_type, data)
    return FileView(data, name, mime, inline)
