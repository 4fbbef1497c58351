"""The channel fixtures the commands are tried against: the fakes of the Bot API and the Graph API,
a router wired to them, and an SMTP sink (defined with the channel tests)."""

from tests.handlers.conftest import bot_api, graph_api, router, smtp_sink

__all__ = ["bot_api", "graph_api", "router", "smtp_sink"]
