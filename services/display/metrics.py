"""Prometheus metrics of the display gateway (served on /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CONNECTED_CLIENTS = Gauge("display_connected_clients", "Screens with an open event stream")
CLIENTS_DROPPED = Counter(
    "display_clients_dropped_total",
    "Streams the gateway ended: slow (queue full), shutdown, reconfigured",
    ["reason"],
)
CLIENTS_REJECTED = Counter(
    "display_clients_rejected_total", "Stream requests answered 503: capacity or not ready", ["reason"]
)
RESUMES = Counter(
    "display_stream_starts_total", "How streams started: snapshot, resume (replayed) or current", ["kind"]
)
MESSAGES = Counter("display_messages_total", "Coalesced update messages sent per venue", ["venue"])
FANOUT_SECONDS = Histogram(
    "display_fanout_seconds",
    "From a coalesced message being queued to its write to a client's socket",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
EVENTS_APPLIED = Counter("display_events_total", "Ledger output events read", ["type", "outcome"])
UNDECODABLE = Counter("display_undecodable_total", "Records on the output topics that did not decode")
CAUGHT_UP = Gauge("display_caught_up", "1 once the state has caught up with the topics")
CONSUMER_LAG = Gauge("display_consumer_lag", "Records behind the end of the topics", ["topic"])
BROKER_REACHABLE = Gauge("display_broker_reachable", "1 while the last offset probe succeeded")
