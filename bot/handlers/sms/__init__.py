"""SMS over a gateway (Twilio): signed webhooks, segment-aware splitting."""

from bot.handlers.kit.card import Channel
from bot.handlers.kit.twilio_settings import TwilioSettings
from bot.handlers.sms.settings import SmsSettings, enabled, send_limits

CHANNEL = Channel(
    "sms", "bot.handlers.sms.adapter:SmsAdapter", {"twilio": TwilioSettings, "sms": SmsSettings}, enabled, send_limits
)
