"""SMTP both ways: the optional listener (``aiosmtpd``) for installs that route their support
domain's mail straight to the router, and sending replies (``aiosmtplib``).

The listener accepts mail only for the mailboxes the router serves (it is no relay): an account's
mailbox inbox by its address, the install's own by its domain (``mailboxes.Mailboxes.for_recipient``);
any other recipient is refused with ``550`` and logged. A mail to several of them is recorded in
each. It answers
``250`` only once the router has recorded the mail; a store outage answers ``451`` so the sending
server tries again later. It takes what real relays send: bare line feeds (to a strict server a
whole such mail is one over-long "line") and lines over RFC 5322's 998 characters, up to the size
limit, with line ends normalised to CRLF; internationalised addresses and headers (SMTPUTF8).
A line starting with "." loses the one dot its sender added (RFC 5321 4.5.2) whatever its line
end; only CRLF "." CRLF ends a mail, so a "." line sent with bare line feeds is part of the body.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.egress import Egress, EgressRefused, EgressUnresolved
from bot.handlers.kit.protocol import MalformedPayload, PermanentSendError, RetryableSendError
from bot.logs import log_event
from conversations.errors import StoreUnavailable

if TYPE_CHECKING:
    from bot.handlers.email.mailboxes import Mailbox

log = logging.getLogger("omnirouter.handlers.email.smtp")

Ingest = Callable[[bytes, Sequence[str], "Mailbox"], Awaitable[object]]
Route = Callable[[str], Awaitable["Mailbox | None"]]
_LINE_END = re.compile(rb"\r*\n")
# a line after a bare line feed: aiosmtpd reads DATA up to CRLF, so it un-stuffed only the first line
_STUFFED_AFTER_LF = re.compile(rb"(?<!\r)\n\.")


class _LenientSMTP(SMTP):
    """aiosmtpd's server with its line length limit (1,001 bytes, which answered ``500 Line too
    long``) raised to the size limit of a whole mail."""

    def __init__(self, handler: object, *, data_size_limit: int, **options: Any) -> None:
        self.line_length_limit = data_size_limit + 3  # read by SMTP.__init__ for its stream
        super().__init__(handler, data_size_limit=data_size_limit, **options)


class _Handler:
    """aiosmtpd hooks: which recipients we take, and what happens to a received mail."""

    def __init__(self, route: Route, ingest: Ingest) -> None:
        self._route = route
        self._ingest = ingest

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            mailbox = await self._route(address)
        except StoreUnavailable:  # taken for now: DATA looks again, and answers 451 while the store is down
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        if mailbox is None:
            log_event(log, "smtp.unknown_recipient", logging.WARNING, domain=address.rpartition("@")[2][:100])
            return "550 5.1.1 no mailbox here has this address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw or "").encode()
        data = _LINE_END.sub(b"\r\n", _STUFFED_AFTER_LF.sub(b"\n", data))
        try:
            mailboxes: dict[tuple[str, str | None], tuple[Mailbox, list[str]]] = {}
            for recipient in envelope.rcpt_tos:
                mailbox = await self._route(recipient)
                if mailbox is not None:  # an inbox disabled since RCPT takes nothing
                    mailboxes.setdefault((mailbox.account_id, mailbox.inbox_id), (mailbox, []))[1].append(recipient)
            if not mailboxes:
                return "550 5.1.1 no mailbox here has these addresses"
            for mailbox, recipients in mailboxes.values():
                await self._ingest(data, recipients, mailbox)
        except MalformedPayload as exc:
            return f"554 5.6.0 {str(exc)[:200]}"
        except StoreUnavailable:
            log_event(log, "smtp.store_unavailable", logging.WARNING)
            return "451 4.3.0 cannot store the message now; try again later"
        return "250 2.0.0 recorded"


class SmtpListener:
    """An SMTP server on the router's own event loop."""

    def __init__(self, settings: EmailSettings, route: Route, ingest: Ingest) -> None:
        self._settings = settings
        self._handler = _Handler(route, ingest)
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        s = self._settings
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _LenientSMTP(
                self._handler,
                data_size_limit=s.max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname=s.address.rpartition("@")[2] or None,
                loop=loop,
            ),
            host=s.listen_host,
            port=s.listen_port,
        )
        log_event(log, "smtp.listening", host=s.listen_host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None


async def checked_socket(guard: Egress, host: str, port: int) -> socket.socket:
    """A socket connected to a checked address of ``host`` (``EgressRefused`` if it has none)."""
    address = await guard.checked_address(host, port)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (address, port)), 30)
    except BaseException:
        sock.close()
        raise
    return sock


async def send_mail(settings: EmailSettings, message: EmailMessage, guard: Egress | None = None) -> None:
    """Hand one mail to the configured SMTP server; raises a ``SendError``. ``guard``: the egress
    guard the server must pass (an account's inbox; the client connects to the checked address and
    TLS still checks the certificate against the server's name), ``None`` for the install's own."""
    if not settings.smtp_host:
        raise PermanentSendError("email.smtp_host is not configured")
    options: dict[str, Any] = {
        "hostname": settings.smtp_host,
        "use_tls": settings.smtp_security == "tls",
        "start_tls": settings.smtp_security == "starttls",
        "timeout": 30,
    }
    if settings.smtp_user:
        options.update(username=settings.smtp_user, password=settings.smtp_password)
    try:
        if guard is not None:
            options["sock"] = await checked_socket(guard, settings.smtp_host, settings.smtp_port)
        else:
            options["port"] = settings.smtp_port
        await aiosmtplib.send(message, **options)
    except EgressUnresolved as unresolved:  # a name server that did not answer: try again later
        raise RetryableSendError(f"SMTP server not found: {unresolved}"[:240]) from None
    except EgressRefused as refused:
        raise PermanentSendError(f"SMTP server not allowed: {refused}"[:240]) from None
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [error.code for error in exc.recipients]
        error = f"recipient refused: {'; '.join(f'{e.code} {e.message}' for e in exc.recipients)[:200]}"
        raise (PermanentSendError(error) if all(c >= 500 for c in codes) else RetryableSendError(error)) from None
    except aiosmtplib.SMTPNotSupported as exc:  # a UTF-8 address, and a server without SMTPUTF8
        raise PermanentSendError(f"the SMTP server cannot send this: {exc}"[:240]) from None
    except aiosmtplib.SMTPResponseException as exc:
        error = f"SMTP server answered {exc.code} {exc.message}"[:240]
        raise (PermanentSendError(error) if exc.code >= 500 else RetryableSendError(error)) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise RetryableSendError(f"SMTP server unreachable: {type(exc).__name__}: {exc}"[:240]) from None
