"""Creating and changing webhook subscriptions, for the console and the API alike: the URL is
checked (http or https, a host; an address written in it must pass the egress guard — a name is
checked when it is resolved, at delivery), the secret is generated here and returned once."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from bot.handlers.kit.egress import Egress, EgressRefused
from bot.router.webhooks.events import ThreadEvents
from conversations.ids import new_id
from conversations.models import utcnow
from conversations.repositories import Repositories
from conversations.tenant_models import EVENT_TYPES, WebhookSubscription

SECRET_PREFIX = "whsec_"


class BadSubscription(ValueError):
    """The URL or the events cannot be used; the message says why in one line."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def check_url(url: str, egress: Egress) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        await egress.check_url(url)
    except ValueError:
        raise BadSubscription("the URL must be an http:// or https:// URL with a host") from None
    except EgressRefused as exc:
        raise BadSubscription(str(exc)) from None
    if len(url) > 2000 or any(c.isspace() for c in url):
        raise BadSubscription("the URL must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise BadSubscription("the URL must not carry a user name or password: the signature authenticates us")
    return url


def check_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise BadSubscription(f"events must be some of {', '.join(EVENT_TYPES)}")
    return [e for e in EVENT_TYPES if e in events]


async def subscribe(
    store: Repositories,
    events: ThreadEvents,
    account_id: str,
    url: str,
    kinds: Sequence[str],
    description: str,
    egress: Egress,
) -> tuple[WebhookSubscription, str]:
    """A new subscription and its secret (to show once)."""
    secret = new_secret()
    subscription = WebhookSubscription(
        id=new_id("whs"),
        account_id=account_id,
        url=await check_url(url, egress),
        events=check_events(kinds),
        secret=secret,
        created_at=utcnow(),
        description=description.strip()[:200],
    )
    await store.webhooks.create_webhook(subscription)
    events.forget(account_id)
    return subscription, secret
