"""The channel fixtures the commands are tried against: the fakes of the Bot API and the Graph API,
a router wired to them, and an SMTP sink (defined with the channel tests; the two fakes in tests/conftest.py)."""

from tests.handlers.conftest import router, smtp_sink

__all__ = ["router", "smtp_sink"]  # bot_api and graph_api are in tests/conftest.py
