"""``omnirouter say TEXT``: act as a customer towards a running router.

On the web chat (the default) the command opens the chat's WebSocket as a visitor (remembering
the visitor's token per router, account and name, so a second ``say`` continues the conversation)
and prints the acknowledgement, the decision and the replies. ``--channel telegram|whatsapp``
posts a signed webhook (``bot/cli/channels.py``).

``--channel sms`` posts what Twilio would post to ``/webhooks/sms`` (signed with the configured Auth Token
over the public URL, so the router checks it like any webhook); ``email`` hands a mail to the
router's SMTP listener, or puts it in the IMAP mailbox the router reads. Either way the command
then follows the message through ``/api/messages`` and prints what the router did and the replies
it sent (through the real provider: an SMS reply really goes to the ``--as`` number), with the
install token (``api.token``, or the file the router wrote: ``bot/install_token.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
from twilio.request_validator import RequestValidator

from bot.cli.channels import say_webhook
from bot.cli.common import CliError, install_token, router_url, unreachable
from bot.handlers.email.parse import mail_dedup_key
from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.sms.settings import SmsSettings
from bot.settings import Settings
from conversations.messages import inbound_id
from conversations.traffic import Identity, Inbound

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def say(args: argparse.Namespace, settings: Settings) -> int:
    server = router_url(args, settings)
    if not server.startswith(("http://", "https://")):
        raise CliError(f"--server must be an http:// or https:// URL, got {server!r}", code=2)
    if not args.text.strip():
        raise CliError("the message is empty", code=2)
    account = args.account or settings.account.id
    if args.channel in ("sms", "email"):
        return _say_over_channel(server, account, args, settings)
    if args.channel != "webchat":
        return say_webhook(server, account, settings, args)
    return asyncio.run(_say_over_socket(server, account, args))


def _say_over_channel(server: str, account: str, args: argparse.Namespace, settings: Settings) -> int:
    try:
        lines = asyncio.run(
            say_over_channel(args.channel, args.text, args.name, server, account, settings, args.timeout, args.subject)
        )
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise unreachable(server, exc) from None
    print("\n".join(lines))
    return 0


def _token_file() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "omnirouter" / "say-visitors.json"


def _load_tokens() -> dict[str, str]:
    try:
        data = json.loads(_token_file().read_text())
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_token(key: str, token: str) -> None:
    tokens = _load_tokens()
    tokens[key] = token
    path = _token_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(tokens, indent=1))
    except OSError:
        pass  # the next `say` simply starts a new conversation


async def _say_over_socket(server: str, account: str, args: argparse.Namespace) -> int:
    key = f"{server}|{account}|{args.name}"
    params = {"account": account, "name": args.name, "token": _load_tokens().get(key, "")}
    ws_url = server.replace("http", "ws", 1) + "/webchat/ws"
    client_id = uuid.uuid4().hex
    timeout = aiohttp.ClientTimeout(total=None, connect=args.timeout)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.ws_connect(ws_url, params=params, heartbeat=30) as ws:
                return await asyncio.wait_for(_converse(ws, key, client_id, args), args.timeout)
    except aiohttp.WSServerHandshakeError as exc:
        detail = "unknown account" if exc.status == 404 else f"HTTP {exc.status}"
        raise CliError(f"the router at {server} refused the web chat connection: {detail}", code=2) from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise unreachable(server, exc) from None
    except TimeoutError:
        raise CliError(f"the router at {server} did not answer within {args.timeout:g} s") from None


async def _converse(ws: aiohttp.ClientWebSocketResponse, key: str, client_id: str, args: argparse.Namespace) -> int:
    """Send one message; print the ack, the decision and the replies it names."""
    sent = False
    awaiting: set[str] | None = None  # reply ids named by the decision, not yet seen
    seen: dict[str, dict[str, Any]] = {}
    async for frame in ws:
        if frame.type != aiohttp.WSMsgType.TEXT:
            raise CliError("the router closed the connection", code=1)
        event = json.loads(frame.data)
        if args.json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
        kind = event.get("type")
        if kind == "welcome" and not sent:
            _save_token(key, event["visitor_token"])
            await ws.send_json({"type": "message", "id": client_id, "text": args.text})
            sent = True
        elif kind == "error" and event.get("id") == client_id:
            if event.get("retry"):
                raise CliError(f"the router could not take the message: {event.get('detail')}", code=1)
            raise CliError(f"the router rejected the message: {event.get('detail')}", code=2)
        elif kind == "ack" and event.get("id") == client_id and not args.json:
            dup = " (already received before)" if event.get("duplicate") else ""
            print(f"recorded as {event['message_id']} in thread {event['thread_id']}{dup}")
        elif kind == "message" and event.get("direction") == "out":
            seen[event["message_id"]] = event
        elif kind == "decision" and event.get("id") == client_id:
            if not args.json:
                print(_describe(event))
            awaiting = set(event.get("replies", []))
        if awaiting is not None:
            for message_id in sorted(awaiting & seen.keys()):
                if not args.json:
                    reply = seen[message_id]
                    print(f"{reply.get('sender', 'bot')}: {reply['text']}")
                    for number, option in enumerate(reply.get("options") or [], start=1):
                        print(f"  [{number}] {option}")
                awaiting.discard(message_id)
            if not awaiting:
                return 0
    raise CliError("the router closed the connection before answering", code=1)


def _describe(decision: dict[str, Any]) -> str:
    thread = decision.get("thread_id")
    action = decision.get("action")
    if action == "queued":
        return f"queued for a human agent (reason: {decision.get('reason')}), thread {thread}"
    if action == "waiting":
        return f"added to thread {thread}, which is already waiting for a human agent"
    if action == "to_agent":
        return f"passed to the agent handling thread {thread}"
    if action == "answered" and decision.get("reason") == "fallback":
        return f"the bot did not understand and asked the customer to rephrase, thread {thread}"
    if action == "answered" and decision.get("reason") == "clarify":
        return f"the bot asked which of several things the customer meant, thread {thread}"
    if action == "answered":
        return f"answered by the bot (intent: {decision.get('reason')}), thread {thread}"
    return f"{action}: {decision.get('reason')} (thread {thread})"


async def say_over_channel(
    channel: str,
    text: str,
    sender: str,
    server: str,
    account: str,
    settings: Settings,
    timeout: float,
    subject: str | None = None,
) -> list[str]:
    """Send ``text`` as ``sender`` on ``channel``; returns the lines to print."""
    _check(channel, sender, settings)
    token = install_token(settings)  # before sending: following the message needs the API
    if channel == "sms":
        external_id = await _post_sms(text, sender, server, account, settings, timeout)
    else:
        external_id = await _deliver_mail(text, sender, settings, subject, timeout)
    message_id = inbound_id(
        Inbound(
            account_id=account, channel=channel, external_id=external_id, sender=Identity(channel, sender), text=text
        )
    )
    return await _follow(server, token, message_id, timeout)


def _check(channel: str, sender: str, settings: Settings) -> None:
    """Refuse, before anything is sent, what cannot work."""
    if channel == "sms":
        if not E164.match(sender):
            raise CliError("with --channel sms, --as is the sender's phone number in E.164 (+15551234567)", code=2)
        if not settings.section(TwilioSettings).auth_token:
            raise CliError("SMS is not configured: set twilio.auth_token (and sms.from_number)", code=2)
        return
    if "@" not in sender:
        raise CliError("with --channel email, --as is the sender's e-mail address", code=2)
    if not settings.section(EmailSettings).address:
        raise CliError("e-mail is not configured: set email.address", code=2)
    if not (settings.section(EmailSettings).listen_port or settings.section(EmailSettings).imap_host):
        raise CliError("e-mail has no inbound path: set email.listen_port or email.imap_host", code=2)


async def _post_sms(text: str, sender: str, server: str, account: str, settings: Settings, timeout: float) -> str:
    sid = "SM" + uuid.uuid4().hex
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsStatus": "received",
        "AccountSid": settings.section(TwilioSettings).account_sid,
        "From": sender,
        "To": settings.section(SmsSettings).from_number,
        "Body": text,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }
    public = (settings.server.public_url or server).rstrip("/")
    signature = RequestValidator(settings.section(TwilioSettings).auth_token).compute_signature(
        f"{public}/webhooks/sms", form
    )
    async with _session(timeout) as session:
        async with session.post(
            f"{server}/webhooks/sms", data=form, headers={"X-Twilio-Signature": signature}
        ) as response:
            if response.status == 404:
                raise CliError(f"the router at {server} has no SMS channel (is it configured there?)", code=2)
            if response.status != 200:
                raise CliError(f"the router refused the SMS: HTTP {response.status} {await response.text()}"[:300], 1)
    return sid


async def _deliver_mail(text: str, sender: str, settings: Settings, subject: str | None, timeout: float) -> str:
    mail_settings = settings.section(EmailSettings)
    msg = EmailMessage()
    message_id = make_msgid(domain=sender.rpartition("@")[2])[1:-1]
    msg["From"], msg["To"] = sender, mail_settings.address
    msg["Subject"] = subject or "Message from omnirouter say"
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content(text)
    try:
        if mail_settings.listen_port:
            await aiosmtplib.send(
                msg, hostname=mail_settings.listen_host, port=mail_settings.listen_port, timeout=timeout
            )
        else:
            await _append(settings, bytes(msg), timeout)
    except aiosmtplib.SMTPResponseException as exc:
        raise CliError(f"the router's SMTP listener refused the mail: {exc.code} {exc.message}", 1) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise CliError(f"cannot hand the mail to the router: {type(exc).__name__}: {exc}", 1) from None
    return mail_dedup_key(message_id, sender)


async def _append(settings: Settings, raw: bytes, timeout: float) -> None:
    from aioimaplib import IMAP4, IMAP4_SSL

    s = settings.section(EmailSettings)
    client = (IMAP4_SSL if s.imap_security == "tls" else IMAP4)(s.imap_host, s.imap_port, timeout=timeout)
    await client.wait_hello_from_server()
    if (await client.login(s.imap_user or s.address, s.imap_password)).result != "OK":
        raise CliError("the IMAP server refused the login in [email]", 1)
    try:
        if (await client.append(raw, mailbox=s.imap_mailbox)).result != "OK":
            raise CliError(f"the IMAP server refused the mail for {s.imap_mailbox}", 1)
    finally:
        await client.logout()


async def _follow(server: str, token: str, message_id: str, timeout: float) -> list[str]:
    """Wait until the message is recorded and decided and its replies have left; describe it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with _session(timeout, token) as session:
        message = await _poll(
            session, f"{server}/api/messages/{message_id}", deadline, lambda m: bool(m.get("decision"))
        )
        lines = [f"recorded as {message['id']} in thread {message['thread_id']}", _describe(message["decision"])]
        for reply_id in message["decision"].get("replies", []):
            reply = await _poll(
                session,
                f"{server}/api/messages/{reply_id}",
                deadline,
                lambda m: m.get("delivery_status") != "queued",
                accept_timeout=True,
            )
            sender = reply.get("sender", {}).get("kind", "bot")
            lines.append(f"{sender}: {reply['text']} ({reply.get('delivery_status')})")
    return lines


async def _poll(
    session: aiohttp.ClientSession, url: str, deadline: float, done: Any, accept_timeout: bool = False
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    last: dict[str, Any] | None = None
    while True:
        async with session.get(url) as response:
            if response.status in (401, 403):
                raise CliError(
                    f"the router's API refused the install token ({response.status}): is the token "
                    "file (api.token_file) or api.token this router's?",
                    1,
                )
            if response.status == 200:
                last = await response.json()
                if done(last):
                    return last
        if loop.time() > deadline:
            if accept_timeout and last is not None:
                return last
            raise CliError("the router did not record and answer the message in time", 1)
        await asyncio.sleep(0.2)


def _session(timeout: float, token: str | None = None) -> aiohttp.ClientSession:
    headers = {"Authorization": f"Bearer {token}"} if token else None
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout), headers=headers)
