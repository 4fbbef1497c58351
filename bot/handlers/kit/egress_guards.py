"""The install's egress guards, one per purpose, built once from its settings.

A host the operator typed for one purpose is reachable for that purpose only: were there one
allow-list for every request, an account's admin could subscribe a webhook to the Rasa server's API
or aim its Telegram client at the install's WhatsApp server. So each purpose has its own guard
(:class:`bot.handlers.kit.egress.Egress`), allowing by name:

- ``webhooks`` (an account's webhook deliveries, and its URLs when saved): the hosts the operator
  names in ``egress.allowed_destinations`` (``webhooks.allow_private_networks`` widens it);
- ``rasa`` (the remote Rasa client): those, and the host of ``nlu.rasa_url``;
- ``actions`` (the bot's custom actions, and the HTTP actions of the install's dialogue files):
  those, and the host of ``dialogue.action_endpoint``;
- ``account_actions`` (the HTTP actions of content an account's admins published): those only;
- ``telegram`` and ``whatsapp`` (each channel's API client and media downloads, every account's):
  those, and the host of that channel's own install-level ``api_base``;
- ``twilio`` (an SMS inbox's Twilio client, and MMS media downloads: Twilio answers with a redirect
  to where the file lies): those, and the host of ``twilio.api_base``;
- ``email`` (the IMAP and SMTP servers of an account's mailbox inbox): those only. A host is
  allowed with its port (``mail.lan:993``: a rule without a port stands for 80 and 443 only).

An account's own ``api_base`` for a channel must be the provider's public host, the install's
``api_base`` of that channel, or a host in ``egress.allowed_destinations``
(:meth:`ChannelEgress.refused_api_base`); an SMS inbox's Twilio ``api_base`` likewise (channel
``sms``). The install's own Twilio client and its own mailbox (``[email]``) are in no guard: no
account or payload changes where they go.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.handlers.kit.egress import Egress, HostRule, parse_host_rules, url_rule
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.telegram.settings import TelegramSettings
from bot.handlers.whatsapp.settings import WhatsappSettings
from bot.network_settings import EgressSettings
from bot.settings import Settings

# the providers' own API hosts: an account may always point its api_base there (they are public:
# their addresses are checked like any other)
PROVIDER_HOSTS: Mapping[str, str] = {
    "telegram": "api.telegram.org",
    "whatsapp": "graph.facebook.com",
    "sms": "api.twilio.com",
}


class ChannelEgress(Egress):
    """A channel's guard, which also says which API servers the channel's accounts may use."""

    def __init__(
        self, channel: str, install_api_base: str, operator: Iterable[HostRule], listen: tuple[str, int] | None = None
    ) -> None:
        operator, install = tuple(operator), url_rule(install_api_base)
        provider = HostRule(PROVIDER_HOSTS[channel])
        # the provider's public host is checked like any other; a host of the operator's is allowed by name
        named = [install] if install is not None and install.host not in PROVIDER_HOSTS.values() else []
        super().__init__([*named, *operator], listen)
        self.channel = channel
        self.install_api_base = install_api_base
        self.provider_url = f"https://{provider.host}"
        self._api_bases = (provider, *([install] if install else []), *operator)

    def refused_api_base(self, url: str) -> str | None:
        """The ``host:port`` of ``url`` if an account may not use it as its API server; ``None`` if it may."""
        rule = url_rule(url)
        if rule is None:
            return url[:100]
        if any(allowed.matches(rule.host, rule.port) for allowed in self._api_bases):
            return None
        return str(rule)

    def api_base_refusal(self, host: str) -> str:
        """Why an account may not use ``host`` as its API server, in one line."""
        return (
            f"channels.{self.channel}.api_base: {host} is not a host this install allows (use "
            f"{self.provider_url}, or ask the install's operator to allow it in egress.allowed_destinations)"
        )

    def account_api_base(self, account_id: str, config: Mapping[str, Any]) -> tuple[str, str]:
        """The API server an account's client talks to (its own ``api_base``, else the install's) and,
        when its own is one this install does not allow (stored by an older release), why nothing may
        be sent with it; ``""`` when all is well."""
        own = config.get("api_base")
        if not own:
            return self.install_api_base, ""
        refused = self.refused_api_base(str(own))
        why = f"account {account_id}: {self.api_base_refusal(refused)}; nothing sent" if refused else ""
        return str(own), why


@dataclass(frozen=True)
class EgressGuards:
    """One guard per purpose (see the module's docstring); built once per process and shared."""

    webhooks: Egress
    rasa: Egress
    actions: Egress
    account_actions: Egress  # HTTP actions of content an account published: not the action server's host
    telegram: ChannelEgress
    whatsapp: ChannelEgress
    twilio: ChannelEgress
    email: Egress

    @classmethod
    def from_settings(cls, settings: Settings) -> EgressGuards:
        operator = operator_destinations(settings.egress)
        listen = (settings.server.host, settings.server.port)
        rasa = url_rule(settings.nlu.rasa_url)
        actions = url_rule(settings.dialogue.action_endpoint)
        return cls(
            webhooks=Egress(operator, listen, private_ok=settings.webhooks.allow_private_networks),
            rasa=Egress([*operator, *([rasa] if rasa else [])], listen),
            actions=Egress([*operator, *([actions] if actions else [])], listen),
            account_actions=Egress(operator, listen),
            telegram=ChannelEgress("telegram", settings.section(TelegramSettings).api_base, operator, listen),
            whatsapp=ChannelEgress("whatsapp", settings.section(WhatsappSettings).api_base, operator, listen),
            twilio=ChannelEgress("sms", settings.section(TwilioSettings).api_base, operator, listen),
            email=Egress(operator, listen),
        )

    def channel(self, name: str) -> ChannelEgress:
        """The guard of a messenger channel (``telegram``, ``whatsapp``, ``sms``: Twilio's)."""
        guards = {"telegram": self.telegram, "whatsapp": self.whatsapp, "sms": self.twilio}
        return guards[name]


def operator_destinations(settings: EgressSettings) -> tuple[HostRule, ...]:
    """The hosts the operator allows (``egress.allowed_destinations``)."""
    return parse_host_rules(settings.allowed_destinations)
