"""Accounts (tenants) as the console and the API manage them: creating one with its first admin,
disabling it, what each messenger channel's settings are (which of them are secret), the webhook
URLs a provider is given, and how an account is shown (secrets never: only whether one is set)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.handlers.kit.egress_guards import ChannelEgress
from bot.services.agents import add_agent
from bot.settings import Settings
from conversations.agent_models import Agent, Role
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.sealing import is_secret_field
from conversations.tenant_models import Account

ACCOUNT_ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{1,31}$"
_NO_SPACE = r"^\S{1,256}$"
URL_PATTERN = r"^https?://\S{1,2000}$"


@dataclass(frozen=True)
class ChannelField:
    name: str
    required: bool
    pattern: str
    maximum: int | None = None  # a number (a port): given as a number up to this, or as digits
    choices: tuple[str, ...] = ()  # one of these words (the console shows a list; pattern says the same)

    def schema(self) -> dict[str, Any]:
        if self.choices:
            return {"enum": list(self.choices)}
        text = {"type": "string", "pattern": self.pattern}
        if self.maximum is None:
            return text
        return {"anyOf": [{"type": "integer", "minimum": 1, "maximum": self.maximum}, text]}

    @property
    def secret(self) -> bool:
        return is_secret_field(self.name)


# the messenger channels an account can have its own settings for (bot/handlers/kit/accounts.py)
CHANNEL_FIELDS: dict[str, tuple[ChannelField, ...]] = {
    "telegram": (
        ChannelField("token", True, _NO_SPACE),
        ChannelField("webhook_secret", True, r"^[A-Za-z0-9_-]{1,256}$"),
        ChannelField("api_base", False, URL_PATTERN),
    ),
    "whatsapp": (
        ChannelField("phone_number_id", True, _NO_SPACE),
        ChannelField("access_token", True, _NO_SPACE),
        ChannelField("app_secret", True, _NO_SPACE),
        ChannelField("verify_token", True, _NO_SPACE),
        ChannelField("api_base", False, URL_PATTERN),
    ),
}


def channel_schema(channel: str, fields: tuple[ChannelField, ...] | None = None) -> dict[str, Any]:
    """The JSON Schema of one channel's settings (what ``PUT …/channels/<channel>`` takes, or
    ``fields`` when given: an inbox's)."""
    fields = CHANNEL_FIELDS[channel] if fields is None else fields
    properties: dict[str, Any] = {f.name: f.schema() for f in fields}
    if channel == "whatsapp":
        properties["templates"] = {
            "type": "object",
            "propertyNames": {"pattern": r"^[a-z0-9_]{1,512}$"},
            "additionalProperties": {
                "type": "object",
                "required": ["language"],
                "additionalProperties": False,
                "properties": {
                    "language": {"type": "string"},
                    "parameters": {"type": "array", "items": {"type": "string"}},
                    "text": {"type": "string"},
                },
            },
        }
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": [f.name for f in fields if f.required],
    }


def refused_api_base(guard: ChannelEgress, values: Mapping[str, Any]) -> str | None:
    """The host of ``values["api_base"]`` when the account may not use it as the API server of
    ``guard``'s channel (not the provider's own, not the install's, not in
    ``egress.allowed_destinations``); ``None`` when fine."""
    url = values.get("api_base")
    if not isinstance(url, str) or not url:
        return None
    return guard.refused_api_base(url)


def webhook_urls(settings: Settings, base: str, account_id: str) -> dict[str, str]:
    """Where each provider sends this account's webhooks (``server.public_url`` or ``base``)."""
    root = (settings.server.public_url or base).rstrip("/")
    suffix = "" if account_id == settings.account.id else f"/{account_id}"
    return {
        "telegram": f"{root}/webhooks/telegram{suffix}",
        "whatsapp": f"{root}/webhooks/whatsapp{suffix}",
        "webchat": f"{root}/chat" + ("" if not suffix else f"?account={account_id}"),
        "console": f"{root}/login" + ("" if not suffix else f"?account={account_id}"),
    }


def channel_summary(channels: dict[str, Any], unopened: dict[str, str] | None = None) -> dict[str, Any]:
    """An account's channel settings with every secret replaced by whether it is set; a secret
    that is stored but does not open (``Account.sealing_problems``) is listed as ``unreadable``."""
    summary: dict[str, Any] = {}
    for name, config in channels.items():
        if not isinstance(config, dict):
            continue
        summary[name] = {
            "settings": {k: v for k, v in config.items() if not is_secret_field(k)},
            "secrets": {k: bool(v) for k, v in config.items() if is_secret_field(k)},
        }
        unreadable = sorted(f.partition(".")[2] for f in (unopened or {}) if f.startswith(f"{name}."))
        if unreadable:
            summary[name]["unreadable"] = unreadable
    return summary


def account_json(account: Account) -> dict[str, Any]:
    doc = account.to_json()
    channels = doc.pop("channels", None)
    doc.pop("sealing_problems", None)
    if channels:
        doc["channels"] = channel_summary(channels, account.sealing_problems)
    return doc


async def create_account(
    store: Repositories,
    account_id: str,
    name: str,
    admin_login: str | None,
    admin_name: str | None = None,
    password: str | None = None,
) -> tuple[Account | None, Agent | None, str]:
    """A new account and (optionally) its first admin; ``(None, None, "")`` if the id is taken.
    Returns the admin's password (generated unless given), to show once."""
    account = Account(id=account_id, name=name, created_at=utcnow())
    if not await store.accounts.create_account(account):
        return None, None, ""
    if not admin_login:
        return account, None, ""
    agent, secret = await add_agent(
        store, account_id, admin_login, name=admin_name or admin_login, role=Role.ADMIN, password=password
    )
    return account, agent, secret


async def set_disabled(store: Repositories, account_id: str, disabled: bool) -> Account | None:
    """Disable an account (its agents are logged out at once) or enable it again."""
    account = await store.accounts.update_account(account_id, disabled=disabled)
    if account is not None and disabled:
        await store.sign_in.end_account_sessions(account_id)
    return account
