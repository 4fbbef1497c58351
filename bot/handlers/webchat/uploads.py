"""Files and images a web chat visitor sends: ``POST /webchat/files?account=…`` as
``multipart/form-data`` with the visitor's ``token``, the message's client ``id``, an optional
``text`` and ``name``, and the ``file``.

A file is taken only when it is at most ``webchat.max_file_mb``, of a kind on ``KINDS`` whose
first bytes are what its type claims (an image is an image, a PDF a PDF), and the account's files
quota has room for it. The bytes are kept in the store (GridFS, with the contact's other files:
exported and erased with them) before the message is recorded, so an acknowledged file is never
lost; the message carries it as its one attachment, which the console shows as it shows any
channel's. How it is then served, to the agent or back to the visitor (a signed address), is
``kit/media.py``'s rule: never as HTML or script.

Refusals are JSON with an ``error`` the page says in the visitor's language: ``too_large`` (with
``limit_mb``), ``bad_type``, ``quota``, ``bad_upload``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aiohttp import BodyPartReader, web

from bot.handlers.kit.media import MAGIC, PREVIEWED, NotDownloadable, clean_type
from bot.handlers.kit.protocol import MalformedPayload
from bot.handlers.kit.sink import InboundSink
from bot.handlers.webchat.settings import WebchatSettings
from bot.settings import Settings
from conversations.errors import StoreUnavailable
from conversations.files import QuotaExceeded
from conversations.messages import inbound_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.traffic import Attachment, Identity, Inbound

_ZIP = (b"PK\x03\x04",)
# what a visitor may send, and what its first bytes must be (``None``: text, checked as UTF-8)
KINDS: dict[str, tuple[bytes, ...] | None] = {
    **MAGIC,
    "application/pdf": (b"%PDF-",),
    "text/plain": None,
    "text/csv": None,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": _ZIP,
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": _ZIP,
    "application/vnd.oasis.opendocument.text": _ZIP,
}
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_FIELD_MAX = 8192  # the form's text fields


class Refused(Exception):
    """A file the router does not take; ``error`` is the code the page translates."""

    def __init__(self, status: int, error: str, **details: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.details = status, error, details

    def response(self) -> web.Response:
        body = {"error": self.error, **self.details}
        return web.Response(status=self.status, text=json.dumps(body), content_type="application/json")


def kind_of(declared: str | None, data: bytes) -> str:
    """The file's content type when a visitor may send it (``Refused`` with ``bad_type`` if not)."""
    mime = clean_type(declared)
    if mime not in KINDS:
        raise Refused(415, "bad_type")
    starts = KINDS[mime]
    if starts is None:
        try:
            good = b"\x00" not in data and bool(data.decode("utf-8"))
        except UnicodeDecodeError:
            good = False
    else:
        good = data.startswith(starts)
    if not good:
        raise Refused(415, "bad_type")
    return mime


@dataclass
class _Upload:
    fields: dict[str, str]
    name: str = "file"
    declared: str | None = None
    data: bytes = b""


async def _read(request: web.Request, limit: int) -> _Upload:
    """The form, the file read no further than ``limit`` bytes (``Refused`` beyond)."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise Refused(400, "bad_upload", detail="send multipart/form-data") from None
    upload = _Upload({})
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise Refused(400, "bad_upload", detail="no nested multipart")
        if part.name == "file":
            data = bytearray()
            while chunk := await part.read_chunk(65536):
                data += chunk
                if len(data) > limit:
                    raise Refused(413, "too_large", limit_mb=round(limit / 1_000_000, 1))
            upload.name = (part.filename or "file").replace("\\", "/").rsplit("/", 1)[-1][:200] or "file"
            upload.declared, upload.data = part.headers.get("Content-Type"), bytes(data)
        elif part.name:
            value = await part.read(decode=True)
            if len(value) > _FIELD_MAX:
                raise Refused(400, "bad_upload", detail=f"{part.name} is too long")
            upload.fields[part.name] = value.decode("utf-8", "replace")
    if not upload.data:
        raise Refused(400, "bad_upload", detail="no file")
    return upload


class _Chat(Protocol):
    """What of the web chat adapter a visitor's file needs."""

    @property
    def store(self) -> Repositories: ...
    @property
    def sink(self) -> InboundSink: ...
    async def visitor_of(self, account_id: str, token: object, inbox_id: str | None = None) -> tuple[str, str]: ...


Links = Callable[[str, str], Callable[[str], str]]  # the signed address of a kept file for (account, visitor)


class VisitorFiles:
    """The route that takes a visitor's file, for the web chat adapter."""

    @classmethod
    def of(cls, adapter: _Chat, settings: Settings, url: Links) -> VisitorFiles:
        """With the install's limits: ``webchat.max_file_mb`` and ``store.files_quota_mb``."""
        limit = int(settings.section(WebchatSettings).max_file_mb * 1_000_000)
        return cls(adapter, limit, settings.store.files_quota_mb * 1_000_000, url)

    def __init__(self, adapter: _Chat, limit: int, quota: int, url: Links) -> None:
        self._adapter = adapter
        self._limit = limit
        self._quota = quota
        self._url = url

    async def kept(self, account_id: str, key: str) -> bytes:
        """The bytes of a visitor's file by its key (``<message id>:0``)."""
        found = await self._adapter.store.files.read_upload(account_id, key)
        if found is None:
            raise NotDownloadable("the visitor's file is not in the store (it may have been erased)")
        return found[1]

    async def receive(self, request: web.Request, account_id: str, inbox_id: str | None = None) -> web.Response:
        try:
            return await self._receive(request, account_id, inbox_id)
        except Refused as refused:
            return refused.response()

    async def _receive(self, request: web.Request, account_id: str, inbox_id: str | None) -> web.Response:
        upload = await _read(request, self._limit)
        token, client_id = upload.fields.get("token", ""), upload.fields.get("id", "")
        if not _CLIENT_ID.match(client_id):
            raise Refused(400, "bad_upload", detail="id must be 1-64 characters of letters, digits, _ . : -")
        try:
            visitor, _ = await self._adapter.visitor_of(account_id, token or None, inbox_id)
        except MalformedPayload:
            visitor = ""
        if not token or token.split(".")[0] != visitor:  # not this visitor's, or no longer honoured
            raise Refused(403, "bad_token", detail="reconnect to the chat first")
        mime = kind_of(upload.declared, upload.data)
        text = upload.fields.get("text", "").strip()[:4096]
        name = upload.fields.get("name", "").strip()[:80] or None
        sender = Identity("webchat", visitor)
        first = Inbound(account_id, "webchat", f"{visitor}:{client_id}", sender, text, name, inbox_id=inbox_id)
        key = f"{inbound_id(first)}:0"
        kind = "image" if mime in PREVIEWED else "document"
        attachment = Attachment(kind=kind, name=upload.name, mime_type=mime, size=len(upload.data), provider_ref=key)
        inbound = replace(first, attachments=(attachment,))
        store = self._adapter.store
        try:
            contact_id = await store.contacts.find_or_create_contact(account_id, inbound.sender, name, utcnow())
            await store.files.keep(
                account_id=account_id,
                contact_id=contact_id,
                thread_id="",
                message_id=inbound_id(inbound),
                index=0,
                name=upload.name,
                content_type=mime,
                data=upload.data,
                quota=self._quota,
            )
            recorded, _ = await self._adapter.sink.receive(inbound)
        except QuotaExceeded:
            raise Refused(413, "quota") from None
        except StoreUnavailable:
            raise Refused(503, "store_unavailable") from None
        file = {"name": upload.name, "url": self._url(account_id, visitor)(key), "image": kind == "image"}
        body = {
            "id": client_id,
            "message_id": recorded.message.id,
            "thread_id": recorded.message.thread_id,
            "file": file,
        }
        return web.json_response(body, status=202)
