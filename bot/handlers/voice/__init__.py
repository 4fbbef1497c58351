"""Voice calls over Twilio: status callbacks recorded as call events."""
