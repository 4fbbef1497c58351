"""The buttons of the inboxes page (``/admin/inboxes``, inboxes.py) that ask the provider: Check
(Telegram ``getMe``, the WhatsApp number through the Graph API, the Twilio number among its
account's ``IncomingPhoneNumbers``), Set webhook (Telegram ``setWebhook``), and a test message sent
through the inbox to a recipient the admin names. Each shows the provider's answer in words."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot import audit
from bot.handlers.email.settings import EmailSettings
from bot.handlers.kit.probe import ProbeFailed
from bot.handlers.kit.protocol import SendError
from bot.handlers.telegram.settings import TelegramSettings
from bot.keys import ADAPTERS, EGRESS, SETTINGS, STORE
from bot.services.accounts import webhook_urls
from bot.services.inbox_mail import FIRST_MAILBOX, check_mailbox_inbox, install_mailbox, mailbox_of, send_mailbox_test
from bot.services.inboxes import (
    TEST_RECIPIENTS,
    TEST_TEXT,
    BadRecipient,
    check_inbox,
    first_inbox_config,
    inbox_webhook_url,
    send_test_message,
    set_telegram_webhook,
    test_recipient,
    test_target,
)
from bot.web.admin.inbox_rows import FIRST_CHANNELS, base_url, install_sms_config
from bot.web.admin.inboxes import CHECKED_CHANNELS, own_inbox, show
from bot.web.i18n import N_, translate
from bot.web.pages import current_agent, plain, signed_in
from conversations.agent_models import Agent, Role

FIRST_NUMBER = "sms"  # the row of the install's own Twilio number ([sms], [twilio])
_WORKS = {
    "telegram": N_("It works: this is the bot {who}."),
    "whatsapp": N_("It works: this is the number {who}."),
    "sms": N_("It works: this is the Twilio number {who}."),
}
_MAIL_WORKS = N_(
    "It works: {address} logs in to its IMAP server {imap} ({folder} selected), and its SMTP server {smtp} "
    "takes it ({steps})."
)
_MAIL_WORKS_NO_IMAP = N_(
    "It works: its SMTP server {smtp} takes {address} ({steps}); its mail comes to this install's SMTP listener."
)
# no IMAP and the install's SMTP listener off (email.listen_port = 0): replies go out, no mail comes in
_MAIL_SENDS_ONLY = {
    "first": N_(
        "Its SMTP server {smtp} takes {address} ({steps}), but no mail comes in: email.imap_host is empty and "
        "this install's SMTP listener is off (email.listen_port = 0). Set one of them in the settings file."
    ),
    "extra": N_(
        "Its SMTP server {smtp} takes {address} ({steps}), but no mail comes in: it has no imap_host and this "
        "install's SMTP listener is off (email.listen_port = 0). Set its imap_host (Edit), or ask the install's "
        "operator to set email.listen_port."
    ),
}


async def _inbox_config(request: web.Request, admin: Agent) -> tuple[str, str, dict[str, Any], str] | None:
    """The inbox a button is for — an extra one by id, the first of a channel by the channel's
    name — as ``(id, channel, settings, webhook URL)``; ``None`` when the account has no such inbox."""
    inbox_id, settings = request.match_info["inbox_id"], request.app[SETTINGS]
    if inbox_id == FIRST_MAILBOX:  # the install's own mailbox, its own account's only
        own = install_mailbox(settings, admin.account_id)
        return (inbox_id, inbox_id, {"address": own.address}, "") if own is not None else None
    if inbox_id == FIRST_NUMBER:  # the install's own Twilio number, its own account's only
        number = install_sms_config(settings) if admin.account_id == settings.account.id else None
        return (inbox_id, inbox_id, number, "") if number and number.get("from_number") else None
    if inbox_id in FIRST_CHANNELS:
        account = await request.app[STORE].accounts.get_account(admin.account_id)
        config = first_inbox_config(settings, account, inbox_id) if account else None
        if config is None:
            return None
        return inbox_id, inbox_id, config, webhook_urls(settings, base_url(request), admin.account_id)[inbox_id]
    inbox = await own_inbox(request, admin)
    if inbox is None:
        return None
    return inbox.id, inbox.channel, inbox.config, inbox_webhook_url(settings, base_url(request), inbox)


def _failure(lang: str, channel: str, failed: ProbeFailed) -> str:
    if failed.fault == "refused":
        return translate(lang, "Not tried: {reason}", reason=failed.reason)
    if channel == "email":  # the reason names the server, IMAP or SMTP
        if failed.fault == "unreachable":
            return translate(lang, "No answer from the mail server: {reason}", reason=failed.reason)
        return translate(lang, "The mail server refused: {reason}", reason=failed.reason)
    provider = {"telegram": "Telegram", "whatsapp": "WhatsApp", "sms": "Twilio"}[channel]
    if failed.fault == "unreachable":
        return translate(lang, "No answer from {provider}: {reason}", provider=provider, reason=failed.reason)
    return translate(lang, "{provider} refused: {reason}", provider=provider, reason=failed.reason)


@signed_in(Role.ADMIN)
async def check(request: web.Request) -> web.Response:
    """Try the inbox's credentials on the real channel: whose bot, which number."""
    admin, app = current_agent(request), request.app
    found = await _inbox_config(request, admin)
    if found is None or found[1] not in CHECKED_CHANNELS:
        return plain(404, "no such Telegram, WhatsApp, Twilio or mailbox inbox in this account")
    inbox_id, channel, config, _ = found
    try:
        if channel == "email":
            receives, text = await _check_mailbox(request, admin, inbox_id)
            return await show(request, result={"id": inbox_id, "ok": receives, "text": text})
        who = await check_inbox(app[EGRESS], app[SETTINGS], admin.account_id, channel, config)
    except ProbeFailed as failed:
        result = {"id": inbox_id, "ok": False, "text": _failure(admin.lang, channel, failed)}
        return await show(request, result=result)
    text = translate(admin.lang, _WORKS[channel], who=who)
    return await show(request, result={"id": inbox_id, "ok": True, "text": text})


async def _check_mailbox(request: web.Request, admin: Agent, inbox_id: str) -> tuple[bool, str]:
    """Whether the mailbox receives mail and what its servers said to its settings, in words
    (``ProbeFailed``: why not)."""
    app = request.app
    account = await app[STORE].accounts.get_account(admin.account_id)
    inbox = None if inbox_id == FIRST_MAILBOX else await own_inbox(request, admin)
    mailbox = mailbox_of(app[SETTINGS], app[EGRESS], account, inbox) if account else None
    if mailbox is None:
        raise ProbeFailed("refused", translate(admin.lang, "This account has no such mailbox."))
    found = await check_mailbox_inbox(mailbox)
    steps = ", ".join(found.steps)
    if found.imap is None:
        words = {"smtp": found.smtp, "address": mailbox[0].address, "steps": steps}
        if not app[SETTINGS].section(EmailSettings).listen_port:
            return False, translate(admin.lang, _MAIL_SENDS_ONLY["extra" if inbox else "first"], **words)
        return True, translate(admin.lang, _MAIL_WORKS_NO_IMAP, **words)
    words = {"imap": found.imap, "folder": found.folder, "smtp": found.smtp, "steps": steps}
    return True, translate(admin.lang, _MAIL_WORKS, address=mailbox[0].address, **words)


@signed_in(Role.ADMIN)
async def set_webhook(request: web.Request) -> web.Response:
    """Tell Telegram to deliver the bot's updates to the inbox's webhook URL, with its secret."""
    admin, app = current_agent(request), request.app
    found = await _inbox_config(request, admin)
    if found is None or found[1] != "telegram":
        return plain(404, "no such Telegram inbox in this account")
    inbox_id, _, config, url = found
    polling = app[SETTINGS].section(TelegramSettings).mode == "polling"
    if inbox_id == "telegram" and admin.account_id == app[SETTINGS].account.id and polling:
        text = translate(
            admin.lang, "This bot polls Telegram for updates (telegram.mode = polling): it needs no webhook."
        )
        return await show(request, result={"id": inbox_id, "ok": False, "text": text})
    if not url.startswith("https://"):
        text = translate(
            admin.lang,
            "Telegram delivers only to https addresses: set server.public_url in the settings file to this "
            "install's https address first.",
        )
        return await show(request, result={"id": inbox_id, "ok": False, "text": text})
    try:
        await set_telegram_webhook(app[EGRESS], admin.account_id, config, url)
    except ProbeFailed as failed:
        text = _failure(admin.lang, "telegram", failed)
        return await show(request, result={"id": inbox_id, "ok": False, "text": text})
    await audit.record(app[STORE], admin.account_id, admin, "inbox.webhook", inbox_id, url=url)
    text = translate(admin.lang, "Webhook set: Telegram now delivers this bot's messages to {url}.", url=url)
    return await show(request, result={"id": inbox_id, "ok": True, "text": text})


@signed_in(Role.ADMIN)
async def send_test(request: web.Request) -> web.Response:
    """Send "omnirouter test message from <inbox>" through the inbox to the recipient typed, with
    the provider client the router sends with; show the provider's answer (no conversation is
    made of it)."""
    admin, app, form = current_agent(request), request.app, await request.post()
    account = await app[STORE].accounts.get_account(admin.account_id)
    ref = request.match_info["inbox_id"]
    target = await test_target(app[STORE], app[SETTINGS], account, ref) if account else None
    if account is None or target is None or target[0] not in TEST_RECIPIENTS:  # web chats take none
        return plain(404, "no such inbox in this account")
    (channel, inbox), row_id = target, request.match_info["inbox_id"]
    to = str(form.get("to", ""))[:254]
    try:
        test_recipient(channel, to)
    except BadRecipient:
        words = {
            "telegram": N_("Type a Telegram chat id (digits)."),
            "whatsapp": N_("Type a number in E.164, e.g. +37120000000."),
            "sms": N_("Type a number in E.164, e.g. +37120000000."),
            "email": N_("Type an e-mail address, e.g. name@example.com."),
        }
        problem = {"where": f"test-{row_id}", "text": translate(admin.lang, words[channel])}
        return await show(request, 400, problem=problem, typed={"to": to})
    if inbox is not None and inbox.disabled:
        text = translate(admin.lang, "The inbox is disabled: enable it first.")
        return await show(request, 400, problem={"where": f"test-{row_id}", "text": text}, typed={"to": to})
    name, adapter = inbox.name if inbox is not None else f"{account.name} ({channel})", app[ADAPTERS].get(channel)
    try:
        if channel == "email":  # through the mailbox's own SMTP server, whether the router reads it or not
            await send_mailbox_test(app[SETTINGS], app[EGRESS], account, inbox, name, to, TEST_TEXT.format(name=name))
        elif adapter is None:
            raise SendError(f"this install does not serve {channel} (its settings need {channel}.for_accounts = true)")
        else:
            await send_test_message(adapter, account.id, inbox.id if inbox else None, name, to)
    except SendError as failed:
        sent, text = False, translate(admin.lang, "Not sent: {reason}", reason=str(failed)[:300])
    else:
        sent, text = True, translate(admin.lang, "Test message sent to {to}.", to=to)
    await audit.record(app[STORE], account.id, admin, "inbox.test", row_id, to=to, sent=sent)
    return await show(request, result={"id": row_id, "ok": sent, "text": text}, typed={"to": to})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/admin/inboxes/{inbox_id}/check", check),
        web.post("/admin/inboxes/{inbox_id}/webhook", set_webhook),
        web.post("/admin/inboxes/{inbox_id}/test", send_test),
    ]
