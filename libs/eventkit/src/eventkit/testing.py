"""Helpers for tests of eventkit and of the services built on it (no fakes of real parts)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from eventkit.db import Conn
from eventkit.envelope import EventEnvelope
from eventkit.kafka import (
    KafkaConnection,
    idempotent_producer,
    kafka_connection,
    message_headers,
    start_or_explain,
    topic_partitions,
)


def connection_env(connection: KafkaConnection, prefix: str = "EVENTKIT") -> dict[str, str]:
    """The environment variables that make a process connect as `connection` does
    (`<prefix>_KAFKA_*`: PlatformSettings reads EVENTKIT_, the ops tool OPS_)."""
    env = {
        f"{prefix}_KAFKA_BOOTSTRAP": connection.bootstrap,
        f"{prefix}_KAFKA_SECURITY_PROTOCOL": connection.security_protocol,
    }
    optional = {
        "SASL_MECHANISM": connection.sasl_mechanism,
        "USERNAME": connection.username,
        "PASSWORD": connection.password,
        "CA_FILE": None if connection.ca_file is None else str(connection.ca_file),
    }
    env.update({f"{prefix}_KAFKA_{k}": v for k, v in optional.items() if v is not None})
    return env


@dataclass(frozen=True)
class ConsumedMessage:
    """A message read back from Kafka, with where it sat."""

    partition: int
    offset: int
    key: bytes | None
    envelope: EventEnvelope | None
    headers: tuple[tuple[str, bytes], ...]


async def read_topic(
    bootstrap: KafkaConnection | str, topic: str, *, timeout: float = 10.0
) -> list[ConsumedMessage]:
    """Every message in a topic from the beginning to its current end, across partitions."""
    connection = kafka_connection(bootstrap)
    partitions = await topic_partitions(connection, [topic])
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(
        **connection.client_kwargs(), group_id=None, enable_auto_commit=False
    )
    try:
        await start_or_explain(consumer.start, connection)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        out: list[ConsumedMessage] = []
        deadline = time.monotonic() + timeout
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout}s")
            batches = await consumer.getmany(*remaining, timeout_ms=200)
            for tp, records in batches.items():
                for r in records:
                    if r.offset < end[tp]:
                        envelope = EventEnvelope.from_json_bytes(r.value) if r.value else None
                        out.append(
                            ConsumedMessage(
                                tp.partition, r.offset, r.key, envelope, tuple(r.headers)
                            )
                        )
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return out
    finally:
        await consumer.stop()


async def publish(
    bootstrap: KafkaConnection | str, topic: str, envelopes: Sequence[EventEnvelope]
) -> None:
    """Publish envelopes as another service's relay would (key = stream id, same headers)."""
    producer = idempotent_producer(bootstrap, client_id=f"test-{uuid.uuid4().hex[:8]}")
    await start_or_explain(producer.start, bootstrap)
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic,
                envelope.to_json_bytes(),
                key=envelope.stream_id.encode(),
                headers=message_headers(envelope),
            )
    finally:
        await producer.stop()


async def eventually(
    check: Callable[[], Awaitable[bool]], *, timeout: float = 20.0, interval: float = 0.05
) -> None:
    """Wait until `check` is true, with a deadline (never a bare sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


class CountingProjection:
    """A small projection for tests: per-stream totals and how often each event was applied."""

    def __init__(self, name: str, topics: tuple[str, ...], poison_type: str = "Poison") -> None:
        self.name = name
        self.topics = topics
        self.poison_type = poison_type

    ddl = """
    CREATE TABLE IF NOT EXISTS stream_totals (
        stream_id    text PRIMARY KEY,
        events       integer NOT NULL,
        last_version integer NOT NULL,
        total        bigint NOT NULL
    );
    CREATE TABLE IF NOT EXISTS applied (
        event_id uuid PRIMARY KEY,
        times    integer NOT NULL
    );
    """

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Count the event; raise for the poison type, and for out-of-order versions."""
        if envelope.event_type == self.poison_type:
            raise ValueError(f"poison event {envelope.event_id}")
        await conn.execute(
            "INSERT INTO applied (event_id, times) VALUES ($1, 1)"
            " ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1",
            envelope.event_id,
        )
        last = await conn.fetchval(
            "SELECT last_version FROM stream_totals WHERE stream_id = $1", envelope.stream_id
        )
        if last is not None and envelope.stream_version != last + 1:
            raise AssertionError(
                f"{envelope.stream_id}: version {envelope.stream_version} after {last}"
            )
        await conn.execute(
            """
            INSERT INTO stream_totals (stream_id, events, last_version, total)
            VALUES ($1, 1, $2, $3)
            ON CONFLICT (stream_id) DO UPDATE SET events = stream_totals.events + 1,
                last_version = excluded.last_version, total = stream_totals.total + excluded.total
            """,
            envelope.stream_id,
            envelope.stream_version,
            int(envelope.payload.get("n", 0)),
        )


def unique_name(prefix: str) -> str:
    """A name no other test uses (topics, schemas, groups)."""
    return f"{prefix}_{uuid.uuid4().hex[:10]}"
