"""``omnirouter say --channel sms|email``: act as a customer on a real channel path.

``sms`` posts what Twilio would post to ``/webhooks/sms`` (signed with the configured Auth Token
over the public URL, so the router checks it like any webhook); ``email`` hands a mail to the
router's SMTP listener, or puts it in the IMAP mailbox the router reads. Either way the command
then follows the message through ``/api/messages`` and prints what the router did and the replies
it sent (through the real provider: an SMS reply really goes to the ``--as`` number), with the
install token (``api.token``, or the file the router wrote: ``bot/install_token.py``).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiohttp
import aiosmtplib
from twilio.request_validator import RequestValidator

from bot.install_token import InstallTokenError, token_for_cli
from bot.settings import Settings
from conversations.messages import inbound_id
from conversations.traffic import Identity, Inbound

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


class SayError(Exception):
    """A one-line problem; ``code`` is the exit status (1: the router, 2: bad input)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


async def say_over_channel(
    channel: str, text: str, sender: str, server: str, account: str, settings: Settings,
    timeout: float, subject: str | None = None,
) -> list[str]:
    """Send ``text`` as ``sender`` on ``channel``; returns the lines to print."""
    _check(channel, sender, settings)
    try:
        token = token_for_cli(settings.api)  # before sending: following the message needs the API
    except InstallTokenError as exc:
        raise SayError(str(exc)) from None
    if channel == "sms":
        external_id = await _post_sms(text, sender, server, account, settings, timeout)
    else:
        external_id = await _deliver_mail(text, sender, settings, subject, timeout)
    message_id = inbound_id(Inbound(account_id=account, channel=channel, external_id=external_id,
                                    sender=Identity(channel, sender), text=text))
    return await _follow(server, token, message_id, timeout)


def _check(channel: str, sender: str, settings: Settings) -> None:
    """Refuse, before anything is sent, what cannot work."""
    if channel == "sms":
        if not E164.match(sender):
            raise SayError("with --channel sms, --as is the sender's phone number in E.164 (+15551234567)")
        if not settings.twilio.auth_token:
            raise SayError("SMS is not configured: set twilio.auth_token (and sms.from_number)")
        return
    if "@" not in sender:
        raise SayError("with --channel email, --as is the sender's e-mail address")
    if not settings.email.address:
        raise SayError("e-mail is not configured: set email.address")
    if not (settings.email.listen_port or settings.email.imap_host):
        raise SayError("e-mail has no inbound path: set email.listen_port or email.imap_host")


async def _post_sms(text: str, sender: str, server: str, account: str, settings: Settings, timeout: float) -> str:
    sid = "SM" + uuid.uuid4().hex
    form = {"MessageSid": sid, "SmsSid": sid, "SmsStatus": "received", "AccountSid": settings.twilio.account_sid,
            "From": sender, "To": settings.sms.from_number, "Body": text, "NumMedia": "0", "NumSegments": "1",
            "ApiVersion": "2010-04-01"}
    public = (settings.server.public_url or server).rstrip("/")
    signature = RequestValidator(settings.twilio.auth_token).compute_signature(f"{public}/webhooks/sms", form)
    async with _session(timeout) as session:
        async with session.post(f"{server}/webhooks/sms", data=form,
                                headers={"X-Twilio-Signature": signature}) as response:
            if response.status == 404:
                raise SayError(f"the router at {server} has no SMS channel (is it configured there?)")
            if response.status != 200:
                raise SayError(f"the router refused the SMS: HTTP {response.status} {await response.text()}"[:300], 1)
    return sid


async def _deliver_mail(text: str, sender: str, settings: Settings, subject: str | None, timeout: float) -> str:
    mail_settings = settings.email
    msg = EmailMessage()
    message_id = make_msgid(domain=sender.rpartition("@")[2])[1:-1]
    msg["From"], msg["To"] = sender, mail_settings.address
    msg["Subject"] = subject or "Message from omnirouter say"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(text)
    try:
        if mail_settings.listen_port:
            await aiosmtplib.send(msg, hostname=mail_settings.listen_host, port=mail_settings.listen_port,
                                  timeout=timeout)
        else:
            await _append(settings, bytes(msg), timeout)
    except aiosmtplib.SMTPResponseException as exc:
        raise SayError(f"the router's SMTP listener refused the mail: {exc.code} {exc.message}", 1) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SayError(f"cannot hand the mail to the router: {type(exc).__name__}: {exc}", 1) from None
    return message_id


async def _append(settings: Settings, raw: bytes, timeout: float) -> None:
    from aioimaplib import IMAP4, IMAP4_SSL

    s = settings.email
    client = (IMAP4_SSL if s.imap_security == "tls" else IMAP4)(s.imap_host, s.imap_port, timeout=timeout)
    await client.wait_hello_from_server()
    if (await client.login(s.imap_user or s.address, s.imap_password)).result != "OK":
        raise SayError("the IMAP server refused the login in [email]", 1)
    try:
        if (await client.append(raw, mailbox=s.imap_mailbox)).result != "OK":
            raise SayError(f"the IMAP server refused the mail for {s.imap_mailbox}", 1)
    finally:
        await client.logout()


async def _follow(server: str, token: str, message_id: str, timeout: float) -> list[str]:
    """Wait until the message is recorded and decided and its replies have left; describe it."""
    from bot.cli import _describe

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with _session(timeout, token) as session:
        message = await _poll(session, f"{server}/api/messages/{message_id}", deadline,
                              lambda m: bool(m.get("decision")))
        lines = [f"recorded as {message['id']} in thread {message['thread_id']}",
                 _describe(message["decision"])]
        for reply_id in message["decision"].get("replies", []):
            reply = await _poll(session, f"{server}/api/messages/{reply_id}", deadline,
                                lambda m: m.get("delivery_status") != "queued", accept_timeout=True)
            sender = reply.get("sender", {}).get("kind", "bot")
            lines.append(f"{sender}: {reply['text']} ({reply.get('delivery_status')})")
    return lines


async def _poll(session: aiohttp.ClientSession, url: str, deadline: float, done: Any,
                accept_timeout: bool = False) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    last: dict[str, Any] | None = None
    while True:
        async with session.get(url) as response:
            if response.status in (401, 403):
                raise SayError(f"the router's API refused the install token ({response.status}): is the token "
                               "file (api.token_file) or api.token this router's?", 1)
            if response.status == 200:
                last = await response.json()
                if done(last):
                    return last
        if loop.time() > deadline:
            if accept_timeout and last is not None:
                return last
            raise SayError("the router did not record and answer the message in time", 1)
        await asyncio.sleep(0.2)


def _session(timeout: float, token: str | None = None) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), headers=headers)
