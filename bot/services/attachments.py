"""The bytes of a customer's attachment, for the console and the API alike: from the store when
the file was fetched before, otherwise from the channel's provider (by its file id, capped at the
channel's ``max_download_bytes``) and then kept in the store's GridFS under the account's quota.

How a file is served is ``kit/media.py``'s rule: only images of the common formats whose bytes are
what they claim are shown inline; anything else is a download, never sent as HTML, SVG or script.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bot.handlers.kit.media import AttachmentUnavailable, NotDownloadable, file_headers, served_type
from bot.logs import log_event
from bot.settings import Settings
from conversations.files import QuotaExceeded
from conversations.repositories import Repositories
from conversations.thread_models import Message

log = logging.getLogger("omnirouter.attachments")


def files_quota(settings: Settings) -> int:
    """Bytes of files each account may keep (``store.files_quota_mb``)."""
    return settings.store.files_quota_mb * 1_000_000


@dataclass(frozen=True, slots=True)
class FileView:
    """A file as it is sent to a browser."""

    data: bytes
    name: str
    content_type: str  # what is declared to the browser: never an active type
    inline: bool  # an image shown in the page; otherwise a download

    def headers(self) -> dict[str, str]:
        return file_headers(self.name, self.inline)


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
        adapter = adapters.get(message.channel)
        stored = getattr(adapter, "stored_attachment", None)  # e-mail: in the original mail we keep
        fetch = getattr(adapter, "fetch_attachment", None)  # the provider's, by its file id
        if attachment.kind in ("location", "contact") or (
            stored is None and (fetch is None or not attachment.provider_ref)
        ):
            raise NotDownloadable("this attachment has no file to fetch")
        if stored is not None:
            data = await stored(message.id, index)
        else:
            assert fetch is not None and attachment.provider_ref
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
