"""Voice calls over Twilio: status callbacks recorded as call events in the caller's thread."""

from bot.handlers.kit.card import Channel
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.voice.settings import VoiceSettings, enabled

CHANNEL = Channel(
    "voice", "bot.handlers.voice.adapter:VoiceAdapter", {"twilio": TwilioSettings, "voice": VoiceSettings}, enabled
)
