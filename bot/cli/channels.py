"""Command-line tools for the messenger channels.

``omnirouter say --channel telegram|whatsapp TEXT`` builds the webhook the provider would send for
a customer writing TEXT, signs it with this install's secrets, and posts it to a running router,
so a person can try a channel without a real bot or number. ``omnirouter telegram set-webhook``
registers the router's webhook URL and secret with the Bot API; ``telegram webhook-info`` shows
what Telegram has.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.cli.common import CliError
from bot.handlers.telegram.settings import TelegramSettings
from bot.handlers.whatsapp.settings import WhatsappSettings
from bot.settings import Settings

# --- say --channel ----------------------------------------------------------------------------


def _user_number(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16) % 10**9


def telegram_webhook(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """A private-chat text ``Update`` from the customer ``--as`` (user id from ``--from``)."""
    secret = settings.section(TelegramSettings).webhook_secret
    if not secret:
        raise CliError("set telegram.webhook_secret (the same as the router's) to sign the update", code=2)
    user_id = int(args.sender) if args.sender else 5_000_000_000 + _user_number(args.name)
    user = {"id": user_id, "is_bot": False, "first_name": args.name}
    now = int(time.time())
    update = {
        "update_id": now * 1000 + random.randrange(1000),
        "message": {
            "message_id": random.randrange(1, 2**31),
            "from": user,
            "chat": {"id": user_id, "first_name": args.name, "type": "private"},
            "date": now,
            "text": args.text,
        },
    }
    return update, {"X-Telegram-Bot-Api-Secret-Token": secret}


def whatsapp_webhook(settings: Settings, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """A Cloud API ``messages`` webhook with one text message, signed with the app secret."""
    wa = settings.section(WhatsappSettings)
    if not wa.app_secret:
        raise CliError("set whatsapp.app_secret (the same as the router's) to sign the webhook", code=2)
    number = "".join(c for c in (args.sender or "") if c.isdigit()) or f"1555{_user_number(args.name) % 10**7:07d}"
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": wa.phone_number_id or "0"},
        "contacts": [{"profile": {"name": args.name}, "wa_id": number}],
        "messages": [
            {
                "from": number,
                "id": f"wamid.SAY{random.getrandbits(64):016X}",
                "timestamp": str(int(time.time())),
                "type": "text",
                "text": {"body": args.text},
            }
        ],
    }
    payload = {
        "object": "whatsapp_business_account",
        "entry": [{"id": "0", "changes": [{"value": value, "field": "messages"}]}],
    }
    return payload, {}


BUILDERS: dict[str, Callable[[Settings, argparse.Namespace], tuple[dict[str, Any], dict[str, str]]]] = {
    "telegram": telegram_webhook,
    "whatsapp": whatsapp_webhook,
}


def say_webhook(server: str, account: str, settings: Settings, args: argparse.Namespace) -> int:
    """Post a realistic, signed webhook of ``args.channel`` to the router at ``server``."""
    payload, headers = BUILDERS[args.channel](settings, args)
    body = json.dumps(payload).encode()
    if args.channel == "whatsapp":
        headers["X-Hub-Signature-256"] = (
            "sha256="
            + hmac.new(settings.section(WhatsappSettings).app_secret.encode(), body, hashlib.sha256).hexdigest()
        )
    path = f"/webhooks/{args.channel}" + ("" if account == settings.account.id else f"/{account}")
    answer = asyncio.run(_post(server + path, body, headers, args.timeout))
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
    elif answer.get("recorded"):
        print(f"recorded by the router's {args.channel} webhook as a message from {args.name}")
    elif answer.get("duplicates"):
        print("the router had recorded this message before")
    else:
        print(f"the router ignored it: {answer.get('ignored')}")
    return 0


async def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> dict[str, Any]:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.post(
                url, data=body, headers={"Content-Type": "application/json", **headers}
            ) as response:
                try:
                    answer = await response.json(content_type=None)
                except (json.JSONDecodeError, aiohttp.ContentTypeError):
                    answer = {"detail": (await response.text())[:200]}
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise CliError(
            f"cannot reach the router at {url} ({exc.__class__.__name__}); is `omnirouter serve` running?"
        ) from None
    except TimeoutError:
        raise CliError(f"the router at {url} did not answer within {timeout:g} s") from None
    if response.status in (401, 403):
        raise CliError(
            f"the router refused the signature ({answer.get('detail')}): use the router's settings file", code=2
        )
    if response.status == 404:
        raise CliError(f"the router has no such webhook: {answer.get('detail')} (is the channel configured?)", code=2)
    if response.status != 200:
        raise CliError(f"the router answered {response.status}: {answer.get('detail')}")
    return dict(answer)


# --- telegram set-webhook / webhook-info ------------------------------------------------------


def _token(settings: Settings, args: argparse.Namespace) -> str:
    token = args.token or settings.section(TelegramSettings).token
    if not token:
        raise CliError("no bot token: set telegram.token (OMNIROUTER_TELEGRAM_TOKEN) or pass --token", code=2)
    return str(token)


def set_webhook(args: argparse.Namespace, settings: Settings) -> int:
    token, secret = _token(settings, args), args.secret or settings.section(TelegramSettings).webhook_secret
    if not secret:
        raise CliError("no webhook secret: set telegram.webhook_secret or pass --secret", code=2)
    account = args.account or settings.account.id
    url = args.url
    if not url:
        if not settings.server.public_url:
            raise CliError("set server.public_url (the https:// address Telegram reaches) or pass --url", code=2)
        url = settings.server.public_url.rstrip("/") + "/webhooks/telegram"
        url += "" if account == settings.account.id else f"/{account}"
    if not url.startswith("https://"):
        print(f"omnirouter: note: Telegram only delivers to https:// URLs; {url} is for a local Bot API server")
    pending = asyncio.run(_telegram(token, settings, "set", url, secret, args.drop_pending))
    print(f"webhook set: {url} (updates waiting at Telegram: {pending})")
    return 0


def webhook_info(args: argparse.Namespace, settings: Settings) -> int:
    info = asyncio.run(_telegram(_token(settings, args), settings, "info"))
    print(info)
    return 0


async def _telegram(
    token: str, settings: Settings, action: str, url: str = "", secret: str = "", drop: bool = False
) -> str:
    from bot.handlers.kit.egress_guards import EgressGuards
    from bot.handlers.kit.protocol import MalformedPayload
    from bot.handlers.telegram.adapter import make_bot
    from bot.handlers.telegram.botapi import BotAPIError, BotAPIUnreachable
    from bot.handlers.telegram.updates import ALLOWED_UPDATES

    bot = make_bot(
        token, settings.section(TelegramSettings).api_base, EgressGuards.from_settings(settings).telegram, timeout=20
    )
    try:
        if action == "set":
            await bot.set_webhook(
                url, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES), drop_pending_updates=drop
            )
        info = await bot.get_webhook_info()
        pending = info.opt_integer("pending_update_count") or 0
        hooked, last_error = info.opt_string("url"), info.opt_string("last_error_message")
    except BotAPIError as exc:
        raise CliError(f"Telegram refused: {exc.description}") from None
    except (BotAPIUnreachable, MalformedPayload) as exc:
        raise CliError(f"Telegram did not answer: {exc}") from None
    finally:
        await bot.close()
    if action == "set":
        return str(pending)
    error = f", last error: {last_error}" if last_error else ""
    return f"url: {hooked or '(none: the bot polls or is not set up)'}, pending updates: {pending}{error}"
