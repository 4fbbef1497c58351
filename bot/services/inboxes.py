"""Inboxes as the API and the console manage them: what one takes, where its provider sends its
webhooks, how it is shown (secrets never: only whether each is set), and trying its settings
against the provider (the console's Check and Set-webhook buttons), and sending a test message
through one (the same provider client the router sends with; no conversation is made of it)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.egress import Egress, EgressRefused, is_address
from bot.handlers.kit.egress_guards import EgressGuards
from bot.handlers.kit.protocol import ChannelAdapter
from bot.handlers.kit.twilio import E164
from bot.handlers.kit.twilio_lines import SERVES
from bot.handlers.sms.settings import enabled as sms_enabled
from bot.handlers.sms.settings import own_line
from bot.handlers.telegram.settings import TelegramSettings
from bot.handlers.webchat.visitor_forms import MAX_URL, BadPrechat, PrechatForm
from bot.handlers.whatsapp.settings import WhatsappSettings
from bot.services.accounts import CHANNEL_FIELDS, URL_PATTERN, ChannelField, channel_schema, channel_summary
from bot.services.inbox_routing import INBOX_ROUTING
from bot.settings import Settings
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import Account, Inbox
from conversations.traffic import Identity, Outbound

# a site as a browser names it in Origin (the widget's own check, bot/web/chat/widget.py): lower
# case, labels between dots, no path, and no default port (a browser never sends :80 or :443)
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_ORIGIN = rf"https?://{_LABEL}(\.{_LABEL}){{0,20}}(:(?!(80|443)( |$))[0-9]{{1,5}})?"
_MAIL_ADDRESS = r"^[^@\s+]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}$"  # no plus: its plus-addresses are its replies'
_HOST = r"^[A-Za-z0-9.-]{1,253}$|^\[[0-9A-Fa-f:.]{2,45}\]$"  # a name, an IPv4 address, or an IPv6 one in brackets
_PORT = r"^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$"  # 1-65535
MAIL_SERVERS = (("imap_host", "imap_port", 993), ("smtp_host", "smtp_port", 587))

# What an inbox of each channel takes: an account's channel settings' fields, a Twilio number
# (an SMS inbox; calls to it too), a web chat widget and a mailbox (an e-mail inbox), which exist
# only as inboxes: an account's channel settings (``PUT …/channels/<channel>``) have no ``sms`` or
# ``email``, and its first web chat's look is its widget settings. A web chat inbox has no secret:
# its name is the chat's title; its greeting, colour and the sites that may embed it (origins
# separated by spaces) and its pre-chat form (``prechat``) are the account's widget's when left out.
# A messenger's, a number's or a mailbox's ``greeting`` is sent once as the first message of
# each new conversation in it (bot/router/dispatch.py; left empty: the account's, if any).
GREETING = ChannelField("greeting", False, r"^[^\x00-\x1f\x7f]{0,300}$")
INBOX_FIELDS: dict[str, tuple[ChannelField, ...]] = {
    "telegram": (*CHANNEL_FIELDS["telegram"], GREETING),
    "whatsapp": (*CHANNEL_FIELDS["whatsapp"], GREETING),
    "sms": (
        ChannelField("account_sid", True, r"^AC[0-9a-fA-F]{32}$"),
        ChannelField("auth_token", True, r"^\S{1,256}$"),
        ChannelField("from_number", True, E164.pattern),
        ChannelField("api_base", False, URL_PATTERN),
        # what the number takes: texts, calls, or both (left out: texts)
        ChannelField("serves", False, f"^({'|'.join(SERVES)})$", choices=SERVES),
        GREETING,
    ),
    "webchat": (
        ChannelField("greeting", False, r"^[^\x00-\x1f]{0,300}$"),
        ChannelField("color", False, r"^(#[0-9a-fA-F]{6})?$"),
        ChannelField("sites", False, rf"^({_ORIGIN}( {_ORIGIN}){{0,19}})?$"),
    ),
    "email": (
        ChannelField("address", True, _MAIL_ADDRESS),
        ChannelField("display_name", False, r"^[^\r\n]{1,120}$"),
        ChannelField("imap_host", False, _HOST),
        ChannelField("imap_port", False, _PORT, maximum=65535),
        ChannelField("imap_security", False, "^(tls|none)$"),
        ChannelField("imap_user", False, r"^\S{1,256}$"),
        ChannelField("imap_password", False, r"^[^\r\n]{1,256}$"),
        ChannelField("imap_mailbox", False, r"^[^\r\n\"]{1,200}$"),
        ChannelField("smtp_host", False, _HOST),
        ChannelField("smtp_port", False, _PORT, maximum=65535),
        ChannelField("smtp_security", False, "^(starttls|tls|none)$"),
        ChannelField("smtp_user", False, r"^\S{1,256}$"),
        ChannelField("smtp_password", False, r"^[^\r\n]{1,256}$"),
        GREETING,
    ),
}
INBOX_CHANNELS = tuple(INBOX_FIELDS)  # the channels an account can have extra inboxes of today


_FLAG = {"type": "boolean"}
PRECHAT: dict[str, Any] = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "description": "the web chat's own pre-chat form: the fields it asks (enabled unless false), and consent to the"
    " privacy notice at privacy_url; null or left out: the account's form",
    "properties": {
        **dict.fromkeys(("enabled", "name", "email", "phone", "consent"), _FLAG),
        "privacy_url": {"type": "string", "maxLength": MAX_URL},
    },
}


def inbox_schema(channel: str) -> dict[str, Any]:
    schema = channel_schema(channel, INBOX_FIELDS[channel])
    if channel == "webchat":
        schema["properties"]["prechat"] = PRECHAT
    return schema


def with_prechat(settings: Mapping[str, Any]) -> dict[str, Any]:
    """A web chat's ``settings`` with its own pre-chat form as it is kept (``None``: the
    account's); :class:`BadPrechat` says in words what is wrong with it."""
    given = settings.get("prechat")
    if not isinstance(given, Mapping):
        return dict(settings)
    try:
        return {**settings, "prechat": PrechatForm.given(given).to_doc()}
    except BadPrechat as bad:
        raise BadPrechat(f"settings.prechat.{bad}") from None


# an inbox's name: one line of at most 80 characters, not blank (it is a mail's sender name and
# subject in a test mail, a chat's title)
INBOX_NAME: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 80, "pattern": r"^[^\x00-\x1f\x7f]*$"}


def is_inbox_name(name: str) -> bool:
    """Whether ``name`` (stripped) can be an inbox's name (``INBOX_NAME``)."""
    return 0 < len(name) <= 80 and not any(ord(c) < 32 or ord(c) == 127 for c in name)


def new_inbox_schema() -> dict[str, Any]:
    """What ``POST …/inboxes`` takes: a channel, a name, and that channel's settings."""
    return {
        "type": "object",
        "required": ["channel", "name", "settings"],
        "additionalProperties": False,
        "properties": {
            "channel": {"enum": list(INBOX_CHANNELS)},
            "name": INBOX_NAME,
            "settings": {"type": "object"},
            "routing": INBOX_ROUTING,
        },
        "allOf": [
            {
                "if": {"properties": {"channel": {"const": channel}}},
                "then": {"properties": {"settings": inbox_schema(channel)}},
            }
            for channel in INBOX_CHANNELS
        ],
    }


def settings_change_schema(channel: str) -> dict[str, Any]:
    """Some of a channel's settings: each one checked, none required (a secret left out stays)."""
    return {**inbox_schema(channel), "required": []}


INBOX_CHANGES = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "name": INBOX_NAME,
        "disabled": {"type": "boolean"},
        # the inbox's channel's fields (checked against that channel's in the handler)
        "settings": {"anyOf": [settings_change_schema(channel) for channel in INBOX_CHANNELS]},
        "routing": INBOX_ROUTING,
    },
}


def unserved(settings: Settings, channel: str) -> str | None:
    """Why this install cannot serve a new inbox of ``channel``, naming the setting it needs; ``None``: it can."""
    if channel == "sms" and not sms_enabled(settings):
        return "this install does not serve Twilio numbers: its settings need sms.for_accounts = true"
    return None


async def refused_mail_server(guard: Egress, settings: Mapping[str, Any], stored: Mapping[str, Any]) -> str | None:
    """Why an e-mail inbox may not use one of its servers (an address this install does not let an
    account reach: loopback, private…; a name is checked each time it is connected to), or ``None``.
    ``stored``: the inbox's settings before this change (a port changed alone is checked with its host)."""
    merged = {**stored, **settings}
    for host_key, port_key, default in MAIL_SERVERS:
        host = str(merged.get(host_key) or "").strip("[]")
        if not host or not is_address(host) or not (host_key in settings or port_key in settings):
            continue
        try:
            await guard.check_address(host, int(merged.get(port_key) or default), host)
        except EgressRefused as refused:
            return f"settings.{host_key}: {refused}"
    return None


def inbox_webhook_url(settings: Settings, base: str, inbox: Inbox) -> str:
    """Where the inbox's provider sends its webhooks (``server.public_url`` or ``base``): a bot's
    or a WhatsApp number's own path; Twilio's shared one (the number written to says which inbox);
    a web chat inbox's chat page."""
    root = (settings.server.public_url or base).rstrip("/")
    if inbox.channel == "email":
        return ""  # mail comes over IMAP or to the SMTP listener, not to a webhook
    if inbox.channel == "sms":
        return f"{root}/webhooks/sms"
    if inbox.channel == "webchat":
        return f"{root}/chat?{urlencode({'account': inbox.account_id, 'inbox': inbox.id})}"
    return f"{root}/webhooks/{inbox.channel}/{inbox.account_id}/{inbox.id}"


def widget_snippet(chat_url: str, with_inbox: bool = True) -> str:
    """The tag a site puts on its pages to embed a web chat inbox (widget.js), from its chat page
    (``with_inbox=False``: the account's own web chat, its widget)."""
    root, _, query = chat_url.partition("/chat?")
    found = parse_qs(query)
    account, inbox = (html.escape(found.get(k, [""])[0], quote=True) for k in ("account", "inbox"))
    which = f' data-inbox="{inbox}"' if with_inbox else ""
    return f'<script src="{html.escape(root, quote=True)}/widget.js" data-account="{account}"{which} async></script>'


def inbox_json(inbox: Inbox, webhook_url: str) -> dict[str, Any]:
    config = dict(inbox.config)
    if isinstance(config.get("prechat"), Mapping):
        config["prechat"] = PrechatForm.stored(config["prechat"]).to_doc()
    summary = channel_summary(
        {inbox.channel: config}, {f"{inbox.channel}.{k}": v for k, v in (inbox.sealing_problems or {}).items()}
    )
    return {
        "id": inbox.id,
        "account_id": inbox.account_id,
        "channel": inbox.channel,
        "name": inbox.name,
        "disabled": inbox.disabled,
        "created_at": inbox.created_at.isoformat(),
        "webhook_url": webhook_url,
        "routing": inbox.routing or {},
        **({"snippet": widget_snippet(webhook_url)} if inbox.channel == "webchat" else {}),
        **summary.get(inbox.channel, {"settings": {}, "secrets": {}}),
    }


def first_inbox_config(settings: Settings, account: Account, channel: str) -> dict[str, Any] | None:
    """The settings of the account's first inbox of ``channel`` (the settings file's for the
    install's own account, the account's channel settings for any other); ``None``: it has none."""
    if account.id != settings.account.id:
        config = account.channels.get(channel)
        return dict(config) if isinstance(config, dict) else None
    if channel == "telegram":
        telegram = settings.section(TelegramSettings)
        return {"token": telegram.token, "webhook_secret": telegram.webhook_secret} if telegram.token else None
    whatsapp = settings.section(WhatsappSettings)
    if not whatsapp.phone_number_id:
        return None
    return {k: getattr(whatsapp, k) for k in ("phone_number_id", "access_token", "app_secret", "verify_token")}


async def check_inbox(
    guards: EgressGuards, settings: Settings, account_id: str, channel: str, config: Mapping[str, Any]
) -> str:
    """Ask the provider who the inbox's credentials are: the bot's ``@username``, the number's
    display number (WhatsApp), the number and its friendly name (Twilio). Raises
    :class:`bot.handlers.kit.probe.ProbeFailed` with the reason."""
    # imported here: a router without WhatsApp never loads pywa (docs/performance.md, memory)
    from bot.handlers.sms.probe import twilio_number
    from bot.handlers.telegram.probe import bot_username
    from bot.handlers.whatsapp.probe import display_number

    if channel == "telegram":
        return await bot_username(guards.telegram, account_id, config)
    if channel == "sms":
        return await twilio_number(guards.twilio, account_id, config)
    version = settings.section(WhatsappSettings).api_version
    return await display_number(guards.whatsapp, version, account_id, config)


async def set_telegram_webhook(guards: EgressGuards, account_id: str, config: Mapping[str, Any], url: str) -> None:
    """Point the bot's webhook at ``url`` with the inbox's secret (``ProbeFailed`` if Telegram refuses)."""
    from bot.handlers.telegram.probe import point_webhook

    await point_webhook(guards.telegram, account_id, config, url)


TEST_TEXT = "omnirouter test message from {name}"
# whom a test message may go to: a Telegram chat id, a phone number in E.164 (WhatsApp, SMS)
TEST_RECIPIENTS = {
    "telegram": (re.compile(r"-?[1-9][0-9]{0,19}"), "a Telegram chat id (digits)"),
    "whatsapp": (re.compile(r"\+[1-9][0-9]{6,14}"), "a phone number in E.164 (+ and 7 to 15 digits)"),
    "sms": (re.compile(r"\+[1-9][0-9]{6,14}"), "a phone number in E.164 (+ and 7 to 15 digits)"),
    "email": (
        re.compile(
            r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,63}"
        ),
        "an e-mail address (name@example.com)",
    ),
}


class BadRecipient(ValueError):
    """The test message's recipient is not an address of the inbox's channel; the message says
    what one looks like."""


def test_recipient(channel: str, to: str) -> str:
    """``to`` as the channel's sender takes it (WhatsApp: the digits of the number), or
    :class:`BadRecipient`."""
    pattern, what = TEST_RECIPIENTS.get(channel, (None, ""))
    if pattern is None:
        raise BadRecipient(f"no test messages on {channel}")
    to = to.strip()
    if not pattern.fullmatch(to):
        raise BadRecipient(f"the recipient must be {what}")
    return to.removeprefix("+") if channel == "whatsapp" else to


async def test_target(
    store: Repositories, settings: Settings, account: Account, ref: str
) -> tuple[str, Inbox | None] | None:
    """The inbox a test message is for: ``ref`` names an extra inbox by its id, the account's first
    inbox of a channel by the channel's name; as ``(channel, inbox or None)``, ``None`` when the
    account has no such inbox (another account's is none of its). The first mailbox, ``email``,
    and the first Twilio number, ``sms``, are the install's own, its own account's only."""
    if ref in ("email", "sms"):
        own = settings.section(EmailSettings).address if ref == "email" else own_line(settings)
        return (ref, None) if own and account.id == settings.account.id else None
    if ref in TEST_RECIPIENTS:
        return ref, None
    inbox = await store.inboxes.get_inbox(ref)
    if inbox is None or inbox.account_id != account.id:
        return None
    return inbox.channel, inbox


async def send_test_message(adapter: ChannelAdapter, account_id: str, inbox_id: str | None, name: str, to: str) -> str:
    """Send the test text through the inbox (``None``: the account's first of the channel) to
    ``to`` (checked by :func:`test_recipient`), with the adapter's own provider client; the
    provider's message id, or a ``SendError`` saying why not. No thread or message is stored.

    WhatsApp: the text is sent as a free-form message, so the provider itself refuses it to a
    number that has not written to this number in the last 24 hours (its answer is shown)."""
    outbound = Outbound(
        account_id=account_id,
        channel=adapter.name,
        thread_id="inbox-test",
        message_id="inbox-test",
        to=Identity(adapter.name, test_recipient(adapter.name, to)),
        text=TEST_TEXT.format(name=name),
        window_ends_at=utcnow() + timedelta(minutes=1),  # the provider decides, not our record of a window
        inbox_id=inbox_id,
    )
    return await adapter.send(outbound)
