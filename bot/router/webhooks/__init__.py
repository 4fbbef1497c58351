"""Signed outbound webhooks: thread events POSTed to the URLs an account subscribes, durably.

``events`` publishes (one stored delivery per subscription and event), ``sender`` delivers
(leased, retried with backoff, dead-lettered), ``signing`` is the signature both sides compute.
"""
