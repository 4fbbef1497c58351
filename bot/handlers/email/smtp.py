"""SMTP both ways: the optional listener (``aiosmtpd``) for installs that route their support
domain's mail straight to the router, and sending replies (``aiosmtplib``).

The listener accepts mail only for addresses in our own domain (it is no relay) and answers
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
from collections.abc import Awaitable, Callable, Sequence
from email.message import EmailMessage
from typing import Any

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.protocol import MalformedPayload, PermanentSendError, RetryableSendError
from bot.logs import log_event
from conversations.errors import StoreUnavailable

log = logging.getLogger("omnirouter.handlers.email.smtp")

Ingest = Callable[[bytes, Sequence[str]], Awaitable[object]]
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

    def __init__(self, domain: str, ingest: Ingest) -> None:
        self._domain = domain.lower()
        self._ingest = ingest

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.rpartition("@")[2].lower() != self._domain:
            return "550 5.7.1 this server only takes mail for its own domain"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        data = raw if isinstance(raw, bytes) else str(raw or "").encode()
        data = _LINE_END.sub(b"\r\n", _STUFFED_AFTER_LF.sub(b"\n", data))
        try:
            await self._ingest(data, list(envelope.rcpt_tos))
        except MalformedPayload as exc:
            return f"554 5.6.0 {str(exc)[:200]}"
        except StoreUnavailable:
            log_event(log, "smtp.store_unavailable", logging.WARNING)
            return "451 4.3.0 cannot store the message now; try again later"
        return "250 2.0.0 recorded"


class SmtpListener:
    """An SMTP server on the router's own event loop."""

    def __init__(self, settings: EmailSettings, ingest: Ingest) -> None:
        self._settings = settings
        self._handler = _Handler(settings.address.rpartition("@")[2], ingest)
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


async def send_mail(settings: EmailSettings, message: EmailMessage) -> None:
    """Hand one mail to the configured SMTP server; raises a ``SendError``."""
    if not settings.smtp_host:
        raise PermanentSendError("email.smtp_host is not configured")
    options: dict[str, Any] = {
        "hostname": settings.smtp_host,
        "port": settings.smtp_port,
        "use_tls": settings.smtp_security == "tls",
        "start_tls": settings.smtp_security == "starttls",
        "timeout": 30,
    }
    if settings.smtp_user:
        options.update(username=settings.smtp_user, password=settings.smtp_password)
    try:
        await aiosmtplib.send(message, **options)
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
