"""WhatsApp (Cloud API through pywa): signed webhooks, the 24-hour customer service window."""

from bot.handlers.kit.card import Channel
from bot.handlers.whatsapp.settings import WhatsappSettings, enabled, send_limits

CHANNEL = Channel(
    "whatsapp", "bot.handlers.whatsapp.adapter:WhatsappAdapter", {"whatsapp": WhatsappSettings}, enabled, send_limits
)
