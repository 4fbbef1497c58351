"""Which URLs the router itself may fetch: no request of ours goes to a private address because a
payload named it (SSRF).

The router fetches a customer's attachment only when an agent asks for it, and only from the
provider: Telegram's file URLs are built on the configured Bot API server, but WhatsApp's media
come at a URL the Graph API names — a URL the router would call with the number's access token.
Such a URL is fetched only when it is on the configured API server itself, or HTTPS to a host whose
every address is public (Meta's media hosts). Loopback, private, link-local (cloud metadata),
multicast and reserved addresses are refused, and so is anything that is not HTTPS.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from bot.handlers.media import AttachmentUnavailable


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


async def check_fetchable(url: str, provider_base: str) -> None:
    """Return if ``url`` may be fetched; ``AttachmentUnavailable`` saying why not otherwise."""
    try:
        scheme, host, port = _origin(url)
        if (scheme, host, port) == _origin(provider_base):
            return
    except ValueError:  # a port that is not a number, a malformed IPv6 literal
        raise AttachmentUnavailable("the provider named a malformed media URL") from None
    if scheme != "https" or not host:
        raise AttachmentUnavailable(f"the provider named a media URL that is not HTTPS ({scheme or 'none'})")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise AttachmentUnavailable(f"the media host {host} cannot be resolved") from None
    for *_, address in infos:
        ip = ipaddress.ip_address(str(address[0]).split("%")[0])
        if not ip.is_global:
            raise AttachmentUnavailable(f"the media URL points at a non-public address ({ip}); not fetched")
