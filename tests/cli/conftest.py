"""The channel fixtures the commands are tried against: the fakes of the Bot API and the Graph API,
a router wired to them, and an SMTP sink (defined with the channel tests; the Bot API's in tests/conftest.py)."""

from tests.handlers.conftest import graph_api, router, smtp_sink

__all__ = ["graph_api", "router", "smtp_sink"]  # bot_api is in tests/conftest.py
