"""E-mail: IMAP polling or an SMTP listener in, SMTP out, threads found by plus-address and headers."""

from bot.handlers.email.settings import EmailSettings, enabled
from bot.handlers.kit.card import Channel

CHANNEL = Channel("email", "bot.handlers.email.adapter:EmailAdapter", {"email": EmailSettings}, enabled)
