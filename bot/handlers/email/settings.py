"""The e-mail settings section (``[email]``) and when the channel is on."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from bot.handlers.kit.card import SettingsSections
from bot.setting_fields import between, one_of, setting

_NAME_SERVER = re.compile(
    r"^(\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)|(?P<bare>[0-9A-Fa-f:.]+))(:(?P<port>[0-9]{1,5}))?$"
)


def name_server_list(value: str) -> str | None:
    """The check of ``dns_servers``: IP addresses, each with an optional ``:port`` (IPv6 in brackets then)."""
    for item in value.replace(",", " ").split():
        found = _NAME_SERVER.match(item)
        bare = found and found["bare"] and ":" in found["bare"]
        address = found and (found["v6"] or found["v4"] or (item if bare else found["bare"]))
        try:
            ipaddress.ip_address(str(address))
        except ValueError:
            return f"{item!r} is no IP address (with an optional :port; IPv6 with a port in brackets)"
        if found and found["port"] and not bare and not 0 < int(found["port"]) < 65536:
            return f"{item!r}: the port must be from 1 to 65535"
    return None


@dataclass(frozen=True)
class EmailSettings:
    address: str = setting("", doc="our mailbox address (support@example.com); enables e-mail")
    display_name: str = setting("", doc="name shown in From: of our replies; empty: account.name")
    plus_addressing: bool = setting(True, doc="reply from address+<thread token>@domain so replies find their thread")
    imap_host: str = setting("", doc="IMAP server to poll; empty: no IMAP")
    imap_port: int = setting(993, check=between(1, 65535), doc="IMAP port (993: IMAPS)")
    imap_security: str = setting(
        "tls", check=one_of("tls", "none"), doc="tls (IMAPS) or none (plain, for local servers)"
    )
    imap_user: str = setting("", doc="IMAP login; empty: the address")
    imap_password: str = setting("", doc="IMAP password (an app password for Gmail or Microsoft 365)")
    imap_mailbox: str = setting("INBOX", doc="folder to read")
    imap_idle: bool = setting(True, doc="wait for new mail with IMAP IDLE between polls")
    poll_interval: float = setting(
        60.0, check=between(0.05, 3600), doc="seconds between mailbox polls (and longest IDLE)"
    )
    smtp_host: str = setting("", doc="SMTP server for our replies")
    smtp_port: int = setting(587, check=between(1, 65535), doc="SMTP port (587: submission)")
    smtp_security: str = setting(
        "starttls", check=one_of("starttls", "tls", "none"), doc="starttls, tls (port 465) or none (local servers)"
    )
    smtp_user: str = setting("", doc="SMTP login; empty: no authentication")
    smtp_password: str = setting("", doc="SMTP password")
    listen_host: str = setting("127.0.0.1", doc="address of the optional SMTP listener for inbound mail")
    listen_port: int = setting(0, check=between(0, 65535), doc="port of the SMTP listener; 0: off")
    max_message_bytes: int = setting(
        10 * 1_048_576,
        check=between(1024, 100 * 1_048_576),
        doc="larger inbound mails are refused (SMTP) or skipped (IMAP)",
    )
    dns_servers: str = setting(
        "",
        check=name_server_list,
        doc="name servers that domain verification asks for TXT records (addresses, :port if not 53); "
        "empty: the system's",
    )
    for_accounts: bool = setting(
        False, doc="serve accounts' mailbox inboxes even when address is empty (the install has no mailbox)"
    )


def enabled(settings: SettingsSections) -> bool:
    """Whether this install serves e-mail: a mailbox address, or accounts with mailboxes of their own."""
    own = settings.section(EmailSettings)
    return bool(own.address or own.for_accounts)
