"""SMS over a gateway (Twilio): signed webhooks, segment-aware splitting."""
