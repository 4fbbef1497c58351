"""WhatsApp (Cloud API through pywa): signed webhooks, the 24-hour customer service window."""
