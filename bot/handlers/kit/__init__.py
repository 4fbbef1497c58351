"""What the channels share: the channel protocol, the inbound sink, payload access, signatures,
the egress guard, media, pacing, the webhook flow, per-account adapters and the Twilio gateway."""
