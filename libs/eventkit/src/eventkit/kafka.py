"""Kafka plumbing: producers, topics, and the headers every message carries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from eventkit.envelope import EventEnvelope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    """A topic owned by the service that publishes to it; retention is infinite for the audit."""

    name: str
    partitions: int = 6
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=lambda: {"retention.ms": "-1"})


async def ensure_topics(bootstrap: str, topics: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return []
        try:
            await admin.create_topics(
                [
                    NewTopic(
                        name=t.name,
                        num_partitions=t.partitions,
                        replication_factor=t.replication_factor,
                        topic_configs=dict(t.configs),
                    )
                    for t in missing
                ]
            )
        except TopicAlreadyExistsError:
            log.info("topic created concurrently by another process")
        return [t.name for t in missing]
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the given topics (a missing topic has none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    )


def idempotent_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    """A producer that never reorders or duplicates within a partition while it lives."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=30000,
        max_batch_size=1 << 20,
    )


def message_headers(envelope: EventEnvelope) -> list[tuple[str, bytes]]:
    """Routing and trace headers: consumers can filter without parsing the value."""
    return [
        ("event_type", envelope.event_type.encode()),
        ("event_id", str(envelope.event_id).encode()),
        ("schema_version", str(envelope.schema_version).encode()),
        ("traceparent", traceparent(envelope).encode()),
    ]


def traceparent(envelope: EventEnvelope) -> str:
    """W3C trace context: the trace is the correlation, the span is the event."""
    return f"00-{envelope.correlation_id.hex}-{envelope.event_id.hex[:16]}-01"


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """One header's value as text, if present."""
    for key, value in headers or ():
        if key == name:
            return value.decode()
    return None
