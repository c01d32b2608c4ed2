"""Projection consumers on real Kafka and PostgreSQL: exactly-once effect, dead letters, replay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import asyncpg
import pytest
from aiokafka import TopicPartition

from eventkit.consumer import KafkaProjectionRunner
from eventkit.deadletters import DeadLetterError, discard, list_dead_letters, retry
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.kafka import TopicSpec, ensure_topics, idempotent_producer
from eventkit.relay import OutboxRelay
from eventkit.replay import (
    compare,
    compare_with_live,
    drop_shadow,
    live_offsets,
    rebuild_from_kafka,
    rebuild_from_store,
    shadow_name,
    swap,
)
from eventkit.store import EventStore
from eventkit.testing import CountingProjection, eventually, unique_name

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor.system("test"))


class Crash(Exception):
    """Stands for the process dying at a chosen point."""


class CrashAfterDatabaseCommit(KafkaProjectionRunner):
    """Dies right after its first database commit, before committing to Kafka."""

    async def after_database_commit(self) -> None:
        raise Crash


async def fill(store: EventStore, streams: int, per_stream: int, start: int = 0) -> set[uuid.UUID]:
    ids = set()
    for n in range(start, start + per_stream):
        for s in range(streams):
            event = NewEvent(event_type="Counted", payload={"n": n})
            await store.append("thing", f"s-{s}", n, [event], META)
            ids.add(event.event_id)
    return ids


async def applied_counts(pool: asyncpg.Pool, schema: str) -> dict[uuid.UUID, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(f'SELECT event_id, times FROM "{schema}".applied')
    return {r["event_id"]: r["times"] for r in rows}


@pytest.fixture
async def wired(pool: asyncpg.Pool, stack):
    """A topic, a running relay publishing the 'thing' stream type to it, and a projection."""
    topic = unique_name("cons")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(topic, partitions=3)])
    relay = OutboxRelay(pool, {"thing": topic}.get, name="relay", bootstrap=stack.kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    projection = CountingProjection(unique_name("proj"), (topic,))
    yield topic, projection
    stop.set()
    await task


async def run_until(
    runner: KafkaProjectionRunner, pool: asyncpg.Pool, expected: set[uuid.UUID]
) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def done() -> bool:
        try:
            return set(await applied_counts(pool, runner.schema)) >= expected
        except asyncpg.UndefinedTableError:
            return False

    try:
        await eventually(done, timeout=60)
    finally:
        stop.set()
        await task


async def test_killed_between_database_and_kafka_commit_applies_nothing_twice(
    pool: asyncpg.Pool, stack, wired
) -> None:
    _topic, projection = wired
    store = EventStore(pool)
    committed = await fill(store, 6, 30)
    crashing = CrashAfterDatabaseCommit(pool, projection, bootstrap=stack.kafka_bootstrap)
    with pytest.raises(Crash):
        await asyncio.wait_for(crashing.run(), timeout=60)
    first_batch = await applied_counts(pool, projection.name)
    assert first_batch, "the crashed consumer committed its first batch to the database"

    committed |= await fill(store, 6, 10, start=30)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    await run_until(runner, pool, committed)
    counts = await applied_counts(pool, projection.name)
    assert set(counts) == committed
    assert set(counts.values()) == {1}, "an event was applied twice"
    assert runner.totals.duplicates == 0, "the restart re-read what the database already had"
    async with pool.acquire() as conn:
        totals = await conn.fetch(f'SELECT * FROM "{projection.name}".stream_totals')
    assert {r["events"] for r in totals} == {40}


async def test_a_fresh_projection_reads_from_the_beginning_whatever_its_group_committed(
    pool: asyncpg.Pool, stack, wired
) -> None:
    _topic, projection = wired
    store = EventStore(pool)
    committed = await fill(store, 3, 10)
    # an earlier database's consumer, same group id, read everything and committed its offsets
    await run_until(KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap),
                    pool, committed)  # fmt: skip
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA "{projection.name}" CASCADE')
    later = await fill(store, 3, 2, start=10)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    await run_until(runner, pool, committed | later)
    counts = await applied_counts(pool, projection.name)
    assert set(counts) == committed | later and set(counts.values()) == {1}
    async with pool.acquire() as conn:
        offsets = await live_offsets(conn, projection)
    assert sum(offsets.values()) == 36


class PlacedMidway(KafkaProjectionRunner):
    """Starts every partition it has no checkpoint for at offset 3, as a consumer does that
    picks up offsets its group committed for another database."""

    async def seek_from_database(self, partitions: Sequence[TopicPartition]) -> None:
        assert self._consumer is not None
        for tp in partitions:
            self._consumer.seek(tp, 3)


async def test_a_consumer_placed_past_the_beginning_re_seeks_instead_of_skipping(
    pool: asyncpg.Pool, stack, wired
) -> None:
    _topic, projection = wired
    store = EventStore(pool)
    committed = await fill(store, 3, 8)
    runner = PlacedMidway(pool, projection, bootstrap=stack.kafka_bootstrap)
    await run_until(runner, pool, committed)
    counts = await applied_counts(pool, projection.name)
    assert set(counts) == committed and set(counts.values()) == {1}


async def test_poison_events_are_dead_lettered_and_the_consumer_goes_on(
    pool: asyncpg.Pool, stack, wired
) -> None:
    topic, projection = wired
    store = EventStore(pool)
    good = await fill(store, 3, 5)
    poison = NewEvent(event_type="Poison", payload={})
    await store.append("thing", "bad", 0, [poison], META)
    producer = idempotent_producer(stack.kafka_bootstrap, "garbage")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"\xff not json", key=b"s-0")
        await producer.send_and_wait(topic, b'{"event_id": "nope"}', key=b"s-1")
    finally:
        await producer.stop()
    good |= await fill(store, 3, 5, start=5)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    await run_until(runner, pool, good)

    async with pool.acquire() as conn:
        letters = await conn.fetch(
            "SELECT * FROM eventkit.dead_letters WHERE consumer = $1 ORDER BY id", runner.group_id
        )
    assert len(letters) == 3
    by_type = {r["error_type"] for r in letters}
    assert by_type == {"UnreadableMessage", "ValueError"}
    poisoned = next(r for r in letters if r["error_type"] == "ValueError")
    assert poisoned["event_id"] == poison.event_id
    assert "poison event" in poisoned["error"]
    assert all(r["raw_value"] for r in letters)
    counts = await applied_counts(pool, projection.name)
    assert set(counts) == good and set(counts.values()) == {1}


async def test_rebuilt_from_store_and_from_topic_equal_the_live_projection(
    pool: asyncpg.Pool, stack, wired
) -> None:
    _topic, projection = wired
    store = EventStore(pool)
    committed = await fill(store, 8, 25)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    await run_until(runner, pool, committed)
    live = projection.name

    seen: list[int] = []
    assert await rebuild_from_store(pool, projection, ["thing"], progress=seen.append) == 200
    assert seen and seen[-1] == 200
    comparison = await compare(pool, live, shadow_name(projection))
    assert comparison.equal, comparison.differences
    assert comparison.tables == ["applied", "stream_totals"]

    assert await rebuild_from_kafka(pool, projection, stack.kafka_bootstrap) == 200
    comparison = await compare(pool, live, shadow_name(projection))
    assert comparison.equal, comparison.differences

    # a difference is reported, table by table, with samples
    async with pool.acquire() as conn:
        await conn.execute(
            f'UPDATE "{shadow_name(projection)}".stream_totals SET total = -1 WHERE stream_id = $1',
            "s-0",
        )
    comparison = await compare(pool, live, shadow_name(projection))
    assert not comparison.equal
    [diff] = comparison.differences
    assert (diff.table, diff.only_live, diff.only_shadow) == ("stream_totals", 1, 1)
    assert diff.samples_shadow[0]["total"] == -1


async def test_a_shadow_is_compared_with_the_live_projection_at_the_same_offsets(
    pool: asyncpg.Pool, stack, wired
) -> None:
    _topic, projection = wired
    store = EventStore(pool)
    committed = await fill(store, 3, 10)
    await run_until(KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap),
                    pool, committed)  # fmt: skip
    # the live projection now lags: these reach Kafka but not the (stopped) consumer
    later = await fill(store, 3, 5, start=10)
    async with pool.acquire() as conn:
        offsets = await live_offsets(conn, projection)
    assert sum(offsets.values()) == 30

    assert await rebuild_from_kafka(pool, projection, stack.kafka_bootstrap, until=offsets) == 30
    assert (await compare_with_live(pool, projection, stack.kafka_bootstrap)).equal

    # the consumer runs on while the shadow waits; the comparison brings it to the same offsets
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    await run_until(runner, pool, committed | later)
    comparison = await compare_with_live(pool, projection, stack.kafka_bootstrap)
    assert comparison.equal, comparison.differences
    async with pool.acquire() as conn:
        shadow_applied = await conn.fetchval(
            f'SELECT count(*) FROM "{shadow_name(projection)}".applied'
        )
    assert shadow_applied == 45

    # a live row that events do not explain is reported
    async with pool.acquire() as conn:
        await conn.execute(
            f'UPDATE "{projection.name}".stream_totals SET total = total + 1 WHERE stream_id = $1',
            "s-1",
        )
    comparison = await compare_with_live(pool, projection, stack.kafka_bootstrap)
    [diff] = comparison.differences
    assert (diff.table, diff.only_live, diff.only_shadow) == ("stream_totals", 1, 1)
    await drop_shadow(pool, projection)
    async with pool.acquire() as conn:
        assert not await conn.fetchval(
            "SELECT count(*) FROM pg_namespace WHERE nspname = $1", shadow_name(projection)
        )


async def test_swap_makes_the_shadow_live_and_the_consumer_continues(
    pool: asyncpg.Pool, stack, wired
) -> None:
    _topic, projection = wired
    store = EventStore(pool)
    committed = await fill(store, 4, 10)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))

    async def has(expected: set[uuid.UUID]) -> bool:
        try:
            return set(await applied_counts(pool, projection.name)) >= expected
        except asyncpg.UndefinedTableError:
            return False

    try:
        await eventually(lambda: has(committed), timeout=60)
        await rebuild_from_store(pool, projection, ["thing"])
        committed |= await fill(store, 4, 5, start=10)
        await swap(pool, projection, ["thing"])
        committed |= await fill(store, 4, 5, start=15)
        await eventually(lambda: has(committed), timeout=60)
    finally:
        stop.set()
        await task
    counts = await applied_counts(pool, projection.name)
    assert set(counts) == committed and set(counts.values()) == {1}
    async with pool.acquire() as conn:
        schemas = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", projection.name + "%"
        )
    assert [r["nspname"] for r in schemas] == [projection.name]


class FixedProjection(CountingProjection):
    """The same projection after the bug that poisoned an event was fixed."""

    def __init__(self, broken: CountingProjection) -> None:
        super().__init__(broken.name, broken.topics, poison_type="nothing is poison now")


async def test_dead_letters_are_listed_retried_after_a_fix_and_discarded(
    pool: asyncpg.Pool, stack, wired
) -> None:
    topic, projection = wired
    store = EventStore(pool)
    good = await fill(store, 2, 3)
    poison = NewEvent(event_type="Poison", payload={"n": 7})
    await store.append("thing", "bad", 0, [poison], META)
    producer = idempotent_producer(stack.kafka_bootstrap, "garbage")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"garbage", key=b"x")
    finally:
        await producer.stop()
    good |= await fill(store, 2, 3, start=3)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    await run_until(runner, pool, good)

    letters = await list_dead_letters(pool, consumer=runner.group_id)
    assert sorted(letter.error_type for letter in letters) == ["UnreadableMessage", "ValueError"]
    poisoned = next(letter for letter in letters if letter.error_type == "ValueError")
    garbage = next(letter for letter in letters if letter.error_type == "UnreadableMessage")

    with pytest.raises(DeadLetterError, match="failed"):
        await retry(pool, projection, poisoned.id, actor="ops:li")
    with pytest.raises(DeadLetterError, match="not a readable event"):
        await retry(pool, projection, garbage.id, actor="ops:li")

    assert await retry(pool, FixedProjection(projection), poisoned.id, actor="ops:li")
    assert (await applied_counts(pool, projection.name))[poison.event_id] == 1
    await discard(pool, garbage.id, actor="ops:li")
    assert await list_dead_letters(pool, consumer=runner.group_id) == []
    resolved = await list_dead_letters(pool, consumer=runner.group_id, status=None)
    assert {letter.status for letter in resolved} == {"retried", "discarded"}
    with pytest.raises(DeadLetterError, match="not open"):
        await retry(pool, FixedProjection(projection), poisoned.id, actor="ops:li")
    with pytest.raises(DeadLetterError, match="no dead letter"):
        await discard(pool, 999_999, actor="ops:li")
