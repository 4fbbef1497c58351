"""Attachments stay with the provider until someone needs the bytes: then they are fetched by the
provider's file id, never more than a configured size."""

from __future__ import annotations

from collections.abc import AsyncIterator


class AttachmentError(Exception):
    """An attachment cannot be fetched; the message is one line for the user."""


class AttachmentTooLarge(AttachmentError):
    """The file is larger than the channel's ``max_download_bytes``."""


class AttachmentUnavailable(AttachmentError):
    """The provider does not have the file (any more), or could not be reached."""


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
