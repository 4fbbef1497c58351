"""The pipeline: record (inbound), decide (dispatch), wait for a human (queue), send (outbox)."""
