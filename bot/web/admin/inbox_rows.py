"""The rows of the inboxes page (``/admin/inboxes``): every inbox an account receives on, with
its state, its secrets as set or not (never their values), what to do with it (webhook URLs, how
its mail comes in, its chat page and embedding snippet) and which buttons it has.

Besides the account's extra inboxes (documents of their own) an account has first inboxes that are
edited elsewhere and shown read-only here: its channel settings of Telegram and WhatsApp (the
Account page; the settings file for the install's own account), its own web chat (its widget, on
the Account page), and — for the install's own account only — the install's Twilio number
(``[sms]``, ``[twilio]``) and mailbox (``[email]``) of the settings file, with Check and a test
message as an extra inbox of theirs has."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.twilio_lines import TwilioLines, serves_of
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.sms.settings import SmsSettings, own_line
from bot.handlers.webchat.visitor_forms import PrechatForm
from bot.keys import ADAPTERS, SETTINGS, STORE
from bot.services.accounts import CHANNEL_FIELDS, channel_summary, webhook_urls
from bot.services.inboxes import INBOX_FIELDS, first_inbox_config, inbox_webhook_url, widget_snippet
from bot.services.mail_domains import verification
from bot.services.teams import is_team
from bot.settings import Settings
from conversations.tenant_models import Account

# the channels whose first inbox is the account's channel settings (shown here, edited on the account page)
FIRST_CHANNELS = tuple(CHANNEL_FIELDS)
# the channels this page adds and edits extra inboxes of: those, Twilio numbers (SMS and calls) and mailboxes
CONSOLE_CHANNELS = tuple(INBOX_FIELDS)
# the buttons an inbox of each channel has: ask the provider (Check), point its webhook, send a test
_BUTTONS = {
    "telegram": ("check", "webhook", "test"),
    "whatsapp": ("check", "test"),
    "sms": ("check", "test"),
    "email": ("check", "test"),
    "webchat": (),
}
# the mailbox settings shown on the install's own mailbox's row (the rest is the install's knobs)
_MAILBOX_SHOWN: tuple[str, ...] = ("address", "display_name", "imap_host", "imap_port", "imap_user", "imap_mailbox")
_MAILBOX_SHOWN += ("smtp_host", "smtp_port", "smtp_user", "listen_port", "imap_password", "smtp_password")


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def _row(inbox_id: str, name: str, channel: str, config: dict[str, Any], problems: dict[str, str]) -> dict[str, Any]:
    shown = channel_summary({channel: config}, {f"{channel}.{k}": v for k, v in problems.items()}).get(channel, {})
    return {
        "id": inbox_id,
        "name": name,
        "channel": channel,
        "settings": shown.get("settings", {}),
        "secrets": shown.get("secrets", {}),
        "unreadable": shown.get("unreadable", []),
        "buttons": _BUTTONS[channel],
        "routing": {},
    }


def install_sms_config(settings: Settings) -> dict[str, Any] | None:
    """The install's own Twilio number (``[sms]``, ``[twilio]``), the install's first account's
    first SMS inbox; ``None``: the install has none."""
    if not own_line(settings):
        return None
    sms, twilio = settings.section(SmsSettings), settings.section(TwilioSettings)
    sender = {"from_number": sms.from_number} if sms.from_number else {}
    if sms.messaging_service_sid:
        sender["messaging_service_sid"] = sms.messaging_service_sid
    return {"account_sid": twilio.account_sid, "auth_token": twilio.auth_token, **sender}


def _twilio_urls(request: web.Request, config: dict[str, Any], sms_url: str) -> dict[str, Any]:
    """What a Twilio number's row shows: the SMS webhook URL where its texts are taken, the voice
    one where its calls are (the router serves them: ``voice`` is on)."""
    serves = serves_of(config, _install_takes_calls(request))
    shown: dict[str, Any] = {"texts": serves != "calls"}
    if serves != "sms" and "voice" in request.app[ADAPTERS]:
        shown["voice_url"] = sms_url.removesuffix("/webhooks/sms") + "/webhooks/voice"
    return shown


def install_mailbox_config(settings: Settings) -> dict[str, Any] | None:
    """The install's own mailbox (``[email]``), the install's first account's first mailbox;
    ``None``: the install has none."""
    email = settings.section(EmailSettings)
    if not email.address:
        return None
    return {key: getattr(email, key) for key in _MAILBOX_SHOWN}


def _install_takes_calls(request: web.Request) -> bool:
    """Whether calls to the install's own number are recorded: the voice channel's lines say so
    (``voice.enabled``)."""
    lines = getattr(request.app[ADAPTERS].get("voice"), "lines", None)
    return isinstance(lines, TwilioLines) and lines.install_serves


def _file_rows(request: web.Request, settings: Settings, root: str) -> list[dict[str, Any]]:
    """The install's own Twilio number and mailbox, as rows of its first account (set in the file,
    checked and tested with the buttons of inbox_buttons.py)."""
    rows = []
    if (sms := install_sms_config(settings)) is not None:
        row = _row("sms", "", "sms", sms, {})
        # Check finds the number in the Twilio account: a messaging service alone has none to find
        buttons = ("check", "test") if sms.get("from_number") else ("test",)
        row.update(buttons=buttons, webhook_url=f"{root}/webhooks/sms")
        if _install_takes_calls(request):
            row["voice_url"] = f"{root}/webhooks/voice"
        rows.append(row)
    if (mailbox := install_mailbox_config(settings)) is not None:
        rows.append({**_row("email", "", "email", mailbox, {}), "webhook_url": ""})
    return [{**row, "first": True, "in_file": True, "disabled": False} for row in rows]


def _webchat_row(account: Account, root: str, chat_url: str) -> dict[str, Any]:
    """The account's own web chat (its widget, set on the Account page)."""
    shown = {k: account.widget[k] for k in ("title", "greeting", "color") if account.widget.get(k)}
    row = _row("webchat", "", "webchat", shown, {})
    snippet = widget_snippet(f"{root}/chat?account={account.id}", with_inbox=False)
    row.update(first=True, in_file=False, disabled=False, webhook_url=chat_url, snippet=snippet)
    return row


async def inbox_rows(request: web.Request, account: Account) -> list[dict[str, Any]]:
    """The account's inboxes: its first of each channel, then its extra ones, oldest first."""
    settings, rows = request.app[SETTINGS], []
    urls = webhook_urls(settings, base_url(request), account.id)
    in_file = account.id == settings.account.id
    for channel in FIRST_CHANNELS:
        config = first_inbox_config(settings, account, channel)
        if config is None:
            continue
        problems = {
            k.partition(".")[2]: v for k, v in (account.sealing_problems or {}).items() if k.startswith(f"{channel}.")
        }
        row = _row(channel, "", channel, config, problems)
        rows.append({**row, "first": True, "in_file": in_file, "disabled": False, "webhook_url": urls[channel]})
    root = (settings.server.public_url or base_url(request)).rstrip("/")  # as webhook_urls has it
    if in_file:
        rows += _file_rows(request, settings, root)
    rows.append(_webchat_row(account, root, urls["webchat"]))
    for inbox in await request.app[STORE].inboxes.list_inboxes(account.id):
        if inbox.channel not in CONSOLE_CHANNELS:
            continue
        row = _row(inbox.id, inbox.name, inbox.channel, inbox.config, inbox.sealing_problems or {})
        url = inbox_webhook_url(settings, base_url(request), inbox)
        extra = _twilio_urls(request, inbox.config, url) if inbox.channel == "sms" else {}
        if inbox.channel == "webchat":
            extra = {"snippet": widget_snippet(url)}
        row.update(
            extra, first=False, in_file=False, disabled=inbox.disabled, webhook_url=url, routing=inbox.routing or {}
        )
        # a team an earlier release took against today's rule stays savable: the form does not refuse it
        team = row["routing"].get("team")
        row["team_keeps_rule"] = not team or is_team(str(team))
        if inbox.channel == "webchat" and (own := inbox.config.get("prechat")):
            row["prechat"] = PrechatForm.stored(own)  # its own pre-chat form
        if inbox.channel == "email":  # a listener-fed mailbox's domain verification (None: it needs none)
            row["verification"] = await verification(request.app[STORE], settings, inbox)
            row["released"] = inbox.released_domain and {"domain": inbox.released_domain, "at": inbox.released_at}
        rows.append(row)
    return rows
