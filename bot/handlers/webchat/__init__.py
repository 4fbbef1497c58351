"""The web chat: a page and a socket served by the router itself."""

from bot.handlers.kit.card import Channel
from bot.handlers.webchat.settings import WebchatSettings, enabled

CHANNEL = Channel("webchat", "bot.handlers.webchat.adapter:WebchatAdapter", {"webchat": WebchatSettings}, enabled)
