"""Prometheus metrics of the event platform: append latency, relay lag, consumer lag."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

APPEND_SECONDS = Histogram(
    "eventkit_append_seconds",
    "Time to append one batch of events to the store",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
)
EVENTS_APPENDED = Counter("eventkit_events_appended_total", "Events appended to the store")
RELAY_PUBLISHED = Counter(
    "eventkit_relay_published_total", "Events the outbox relay published", ["relay"]
)
RELAY_LAG = Gauge(
    "eventkit_relay_lag_events", "Committed events not yet published by the relay", ["relay"]
)
CONSUMER_APPLIED = Counter(
    "eventkit_consumer_applied_total", "Events applied by a consumer", ["consumer"]
)
CONSUMER_LAG = Gauge(
    "eventkit_consumer_lag_messages",
    "Messages between a consumer's position and the partition's high watermark",
    ["consumer", "topic", "partition"],
)
DEAD_LETTERS = Counter(
    "eventkit_dead_letters_total", "Events a consumer could not apply", ["consumer"]
)
CONSUMER_TRANSIENT_RETRIES = Counter(
    "eventkit_consumer_transient_retries_total",
    "Batches a consumer tried again after a transient failure (never dead-lettered)",
    ["consumer"],
)
RELAY_RETRIES = Counter(
    "eventkit_relay_retries_total",
    "Times the outbox relay started over from its saved position after a failure",
    ["relay"],
)
STREAMS_PARKED = Counter(
    "eventkit_streams_parked_total",
    "Streams a consumer parked behind a dead letter (later events held, not applied)",
    ["consumer"],
)
EVENTS_HELD = Counter(
    "eventkit_events_held_total",
    "Events a consumer held behind a parked stream's dead letter (not errors)",
    ["consumer"],
)
