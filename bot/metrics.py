"""Prometheus metrics of one router process, on a registry of its own (one per application).

Store round trips are counted as the store's client reports each command it sends
(``count_store_command``), so the benchmark can read "round trips per message" from ``/metrics``
of a running router.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series only add noise to every scrape

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Everything the router counts and times."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.inbound = Counter(
            "omnirouter_inbound", "Inbound messages by channel and result", ["channel", "result"], registry=r
        )
        self.inbound_refused = Counter(
            "omnirouter_inbound_refused",
            "Inbound refused before anything was stored, by channel and reason (e-mail: unknown_recipient)",
            ["channel", "reason"],
            registry=r,
        )
        self.outbound = Counter(
            "omnirouter_outbound", "Outbound sends by channel and result", ["channel", "result"], registry=r
        )
        self.outbox_retries = Counter(
            "omnirouter_outbox_retries", "Outbox sends that failed and were rescheduled", ["channel"], registry=r
        )
        self.outbox_dead = Counter(
            "omnirouter_outbox_dead_letters", "Outbox items given up on", ["channel"], registry=r
        )
        self.decisions = Counter(
            "omnirouter_dispatch_decisions", "Dispatch decisions by action", ["action"], registry=r
        )
        self.queue_depth = Gauge(
            "omnirouter_queue_depth", "Threads waiting for a human (read at scrape time)", registry=r
        )
        self.outbox_pending = Gauge(
            "omnirouter_outbox_pending", "Outbox items not yet sent (read at scrape time)", registry=r
        )
        self.ack_latency = Histogram(
            "omnirouter_inbound_ack_seconds",
            "Receipt to acknowledgement of an inbound message",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dispatch_latency = Histogram(
            "omnirouter_dispatch_seconds", "Time to decide on one inbound message", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.send_latency = Histogram(
            "omnirouter_outbox_send_seconds",
            "Time of one provider send",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.store_commands = Counter(
            "omnirouter_store_commands", "Store round trips by command", ["command"], registry=r
        )
        self.webchat_sockets = Gauge("omnirouter_webchat_sockets", "Open web chat WebSockets", registry=r)

    def count_store_command(self, command: str) -> None:
        """One store round trip (a command the store's client sent)."""
        self.store_commands.labels(command).inc()
