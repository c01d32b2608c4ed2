"""Outbox relay against real PostgreSQL and Kafka: crash, restart, nothing lost, order kept."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY

from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.feed import Position, approximate_lag
from eventkit.kafka import TopicSpec, ensure_topics, header
from eventkit.relay import OutboxRelay
from eventkit.store import EventStore
from eventkit.testing import ConsumedMessage, eventually, read_topic, unique_name

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor.system("test"))


async def append_events(store: EventStore, streams: int, per_stream: int) -> set[uuid.UUID]:
    """Append `per_stream` single-event commits to each stream, streams interleaved."""
    ids: set[uuid.UUID] = set()
    versions = dict.fromkeys(range(streams), 0)

    async def one_stream(s: int) -> None:
        for n in range(per_stream):
            event = NewEvent(event_type="Counted", payload={"n": n})
            await store.append("thing", f"s-{s}", versions[s], [event], META)
            versions[s] += 1
            ids.add(event.event_id)

    await asyncio.gather(*(one_stream(s) for s in range(streams)))
    return ids


def check_delivery(messages: list[ConsumedMessage], committed: set[uuid.UUID]) -> int:
    """Every committed event arrived; each stream's first deliveries are in version order.

    Returns the number of duplicate deliveries.
    """
    envelopes = [m.envelope for m in messages if m.envelope is not None]
    delivered = [e.event_id for e in envelopes]
    assert set(delivered) == committed, f"lost {len(committed - set(delivered))}"
    by_partition: dict[int, list[ConsumedMessage]] = collections.defaultdict(list)
    for m in messages:
        by_partition[m.partition].append(m)
    streams_seen_in: dict[str, set[int]] = collections.defaultdict(set)
    for partition, items in by_partition.items():
        items.sort(key=lambda m: m.offset)
        first_seen: dict[str, list[int]] = collections.defaultdict(list)
        seen: set[uuid.UUID] = set()
        for m in items:
            assert m.envelope is not None
            assert m.key == m.envelope.stream_id.encode()
            streams_seen_in[m.envelope.stream_id].add(partition)
            if m.envelope.event_id in seen:
                continue
            seen.add(m.envelope.event_id)
            first_seen[m.envelope.stream_id].append(m.envelope.stream_version)
        for stream, versions in first_seen.items():
            assert versions == list(range(1, len(versions) + 1)), f"{stream} out of order"
    assert all(len(p) == 1 for p in streams_seen_in.values()), "a stream spans partitions"
    return len(delivered) - len(set(delivered))


async def test_relay_publishes_everything_with_headers(pool: asyncpg.Pool, stack) -> None:
    topic = unique_name("relay")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(topic, partitions=3)])
    store = EventStore(pool)
    committed = await append_events(store, 5, 20)
    private = NewEvent(event_type="Private", payload={})
    await store.append("private", "p", 0, [private], META)
    relay = OutboxRelay(pool, {"thing": topic}.get, name="r1", bootstrap=stack.kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def caught_up() -> bool:
        async with pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT published = 101 FROM eventkit.relay_positions WHERE relay_name='r1'"
                )
            )

    await eventually(caught_up)

    async def lag_reported_zero() -> bool:
        return REGISTRY.get_sample_value("eventkit_relay_lag_events", {"relay": "r1"}) == 0

    await eventually(lag_reported_zero)
    async with pool.acquire() as conn:
        assert await approximate_lag(conn, Position.ZERO) == 101
    stop.set()
    await task
    messages = await read_topic(stack.kafka_bootstrap, topic)
    assert check_delivery(messages, committed) == 0
    first = messages[0]
    assert first.envelope is not None
    assert header(first.headers, "event_type") == "Counted"
    assert header(first.headers, "event_id") == str(first.envelope.event_id)
    traceparent = header(first.headers, "traceparent")
    assert traceparent is not None and first.envelope.correlation_id.hex in traceparent


async def test_relay_cancelled_mid_stream_loses_nothing(pool: asyncpg.Pool, stack) -> None:
    topic = unique_name("relay")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(topic, partitions=4)])
    store = EventStore(pool)
    route = {"thing": topic}.get
    writing = asyncio.create_task(append_events(store, 40, 50))
    relay = OutboxRelay(pool, route, name="r", bootstrap=stack.kafka_bootstrap, batch_size=100)
    for _ in range(3):
        task = asyncio.create_task(relay.run())

        async def some_published() -> bool:
            async with pool.acquire() as conn:
                return bool(await conn.fetchval("SELECT count(*) FROM eventkit.relay_positions"))

        await eventually(some_published)
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    committed = await writing
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def all_published() -> bool:
        messages = await read_topic(stack.kafka_bootstrap, topic)
        return {m.envelope.event_id for m in messages if m.envelope} >= committed

    await eventually(all_published, timeout=60, interval=0.5)
    stop.set()
    await task
    duplicates = check_delivery(await read_topic(stack.kafka_bootstrap, topic), committed)
    assert duplicates <= 3 * 100, "duplicates only across the three crashes, at most a batch each"


RELAY_SCRIPT = """
import asyncio, sys
from eventkit.db import create_pool
from eventkit.relay import OutboxRelay

async def main(dsn, bootstrap, topic):
    pool = await create_pool(dsn)
    relay = OutboxRelay(pool, {"thing": topic}.get, name="proc", bootstrap=bootstrap, batch_size=50)
    print("started", flush=True)
    await relay.run()

asyncio.run(main(*sys.argv[1:4]))
"""


async def test_relay_process_killed_loses_nothing(
    pool: asyncpg.Pool, database: str, stack, tmp_path: Path
) -> None:
    topic = unique_name("relay")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(topic, partitions=3)])
    store = EventStore(pool)
    script = tmp_path / "relay.py"
    script.write_text(RELAY_SCRIPT)
    writing = asyncio.create_task(append_events(store, 20, 60))

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(script), database, stack.kafka_bootstrap, topic],
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
        )

    async def published() -> int:
        async with pool.acquire() as conn:
            value = await conn.fetchval(
                "SELECT published FROM eventkit.relay_positions WHERE relay_name = 'proc'"
            )
        return int(value or 0)

    proc = start()
    try:
        await eventually(lambda: _gt(published(), 0), timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        committed = await writing
        proc = start()
        total = len(committed)

        async def done() -> bool:
            messages = await read_topic(stack.kafka_bootstrap, topic)
            return len({m.envelope.event_id for m in messages if m.envelope}) >= total

        await eventually(done, timeout=90, interval=0.5)
    finally:
        proc.kill()
        proc.wait(timeout=10)
    check_delivery(await read_topic(stack.kafka_bootstrap, topic), committed)


async def _gt(value: asyncio.Future[int] | object, bound: int) -> bool:
    return await value > bound  # type: ignore[misc,operator]
