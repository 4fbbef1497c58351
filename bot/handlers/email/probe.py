"""A mailbox's settings tried against its own servers, for the console's Check button and test
messages: an IMAP login with its folder selected, an SMTP connection with EHLO (and STARTTLS and
AUTH as configured), and a test mail sent through its SMTP server from its address. An account's
mailbox is reached only through the ``email`` egress guard; each refusal is the server's own words."""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import aiosmtplib

from bot.handlers.email.imap import ImapError, close_mailbox, open_mailbox
from bot.handlers.email.settings import EmailSettings
from bot.handlers.email.smtp import send_mail
from bot.handlers.kit.egress import Egress, EgressRefused, EgressUnresolved
from bot.handlers.kit.probe import ProbeFailed
from conversations.models import utcnow

TIMEOUT = 15.0


@dataclass(frozen=True)
class MailboxFound:
    """What a check found: the IMAP server logged in to (``None``: the mailbox has none, its mail
    comes to the SMTP listener) and its folder, the SMTP server and the steps it took."""

    imap: str | None
    folder: str
    smtp: str
    steps: tuple[str, ...]


async def check_mailbox(settings: EmailSettings, guard: Egress | None) -> MailboxFound:
    """Log in to the mailbox's IMAP server (when it has one) and connect to its SMTP server;
    :class:`ProbeFailed` saying which server refused what."""
    if not settings.smtp_host:
        raise ProbeFailed("refused", "no smtp_host: this mailbox cannot send mail")
    imap = None
    if settings.imap_host:
        imap = f"{settings.imap_host}:{settings.imap_port}"
        await _check_imap(settings, guard, imap)
    smtp = f"{settings.smtp_host}:{settings.smtp_port}"
    steps = await _check_smtp(settings, guard, smtp)
    return MailboxFound(imap, settings.imap_mailbox, smtp, steps)


async def _check_imap(settings: EmailSettings, guard: Egress | None, where: str) -> None:
    try:
        client = await open_mailbox(settings, guard, TIMEOUT)
    except EgressUnresolved as unresolved:
        raise ProbeFailed("unreachable", f"IMAP {where}: {unresolved}") from None
    except EgressRefused as refused:
        raise ProbeFailed("refused", f"IMAP {where}: {refused}") from None
    except ImapError as refused:
        raise ProbeFailed("provider", f"IMAP {where}: {refused}") from None
    except Exception as exc:  # no connection, a timeout, a broken greeting (aioimaplib's own errors)
        raise ProbeFailed("unreachable", f"IMAP {where}: {type(exc).__name__}: {exc}"[:300]) from None
    await close_mailbox(client)


def _smtp_options(settings: EmailSettings) -> dict[str, Any]:
    """The client's options as :func:`bot.handlers.email.smtp.send_mail` sends with."""
    options: dict[str, Any] = {
        "hostname": settings.smtp_host,
        "use_tls": settings.smtp_security == "tls",
        "start_tls": settings.smtp_security == "starttls",
        "timeout": TIMEOUT,
    }
    if settings.smtp_user:
        options.update(username=settings.smtp_user, password=settings.smtp_password)
    return options


async def _check_smtp(settings: EmailSettings, guard: Egress | None, where: str) -> tuple[str, ...]:
    """Connect, EHLO, STARTTLS and AUTH as the mailbox is configured; the steps taken."""
    options = _smtp_options(settings)
    client: aiosmtplib.SMTP | None = None
    try:
        if guard is not None:
            options["sock"] = await guard.connect(settings.smtp_host, settings.smtp_port)
        else:
            options["port"] = settings.smtp_port
        client = aiosmtplib.SMTP(**options)
        await client.connect()
        if client.is_ehlo_or_helo_needed:  # a plain server without AUTH: nothing said EHLO yet
            await client.ehlo()
    except EgressUnresolved as unresolved:
        raise ProbeFailed("unreachable", f"SMTP {where}: {unresolved}") from None
    except EgressRefused as refused:
        raise ProbeFailed("refused", f"SMTP {where}: {refused}") from None
    except aiosmtplib.SMTPResponseException as exc:  # a refused login, STARTTLS, greeting or EHLO
        raise ProbeFailed("provider", f"SMTP {where}: {exc.code} {exc.message}"[:300]) from None
    except aiosmtplib.SMTPException as exc:  # e.g. AUTH asked of a server that offers none, a hang-up
        raise ProbeFailed("provider", f"SMTP {where}: {exc}"[:300]) from None
    except (OSError, TimeoutError) as exc:
        raise ProbeFailed("unreachable", f"SMTP {where}: {type(exc).__name__}: {exc}"[:300]) from None
    finally:
        if client is not None:
            await _leave(client)
    steps = ["TLS"] if options["use_tls"] else []
    steps += ["EHLO", *(["STARTTLS"] if options["start_tls"] else []), *(["AUTH"] if settings.smtp_user else [])]
    return tuple(steps)


async def _leave(client: aiosmtplib.SMTP) -> None:
    """QUIT when the connection is still up; close it in any case."""
    try:
        if client.is_connected:
            await client.quit()
    except aiosmtplib.SMTPException:
        pass
    client.close()


def compose_test_mail(settings: EmailSettings, from_name: str, to: str, text: str) -> EmailMessage:
    """The test mail: ``text`` as its subject and body, from the mailbox's address to ``to`` (a line
    break in the name, which an earlier release took, becomes a space: headers are one line)."""
    from_name, text = (" ".join(part.splitlines()) for part in (from_name, text))
    mail = EmailMessage()
    local, _, domain = settings.address.partition("@")
    mail["From"] = Address(display_name=from_name, username=local, domain=domain)
    mail["To"] = to
    mail["Subject"] = text
    mail["Date"] = format_datetime(utcnow())
    mail["Message-ID"] = make_msgid("omnirouter-test", domain or None)
    mail["Auto-Submitted"] = "auto-generated"  # no robot answers it (RFC 3834)
    mail.set_content(text + "\n")
    return mail


async def send_test_mail(settings: EmailSettings, guard: Egress | None, from_name: str, to: str, text: str) -> str:
    """Send the test mail through the mailbox's own SMTP server; its Message-ID, or a
    ``SendError`` with the server's answer."""
    mail = compose_test_mail(settings, from_name, to, text)
    await send_mail(settings, mail, guard)
    return str(mail["Message-ID"])
