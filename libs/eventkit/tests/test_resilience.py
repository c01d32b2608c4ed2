"""Consumers on real Kafka and PostgreSQL under transient failures and poison events.

A transient failure (serialization failure, deadlock, a dropped connection, even the consumer's
own backend terminated in the middle of applying) is retried, never dead-lettered; a permanent
one dead-letters the event and parks its stream (ADR 0018): later events of that stream are
held, other streams flow, and a retry of the head applies it and the held ones in order."""

from __future__ import annotations

import asyncio
import collections
import uuid

import asyncpg
import pytest
from prometheus_client import REGISTRY

from eventkit.backoff import Backoff
from eventkit.consumer import FeedProjectionRunner, KafkaProjectionRunner
from eventkit.db import Conn
from eventkit.deadletters import (
    DeadLetterError,
    discard,
    list_dead_letters,
    parked_streams,
    retry_letter,
)
from eventkit.envelope import Actor, EventEnvelope, Metadata, NewEvent
from eventkit.kafka import TopicSpec, ensure_topics
from eventkit.relay import OutboxRelay
from eventkit.replay import live_offsets
from eventkit.store import EventStore
from eventkit.testing import CountingProjection, eventually, unique_name

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor.system("test"))


class FlakyProjection(CountingProjection):
    """Raises `failure` the first `times` times it applies each event of type 'Flaky'."""

    def __init__(self, name: str, topics: tuple[str, ...], failure: type[Exception]) -> None:
        super().__init__(name, topics)
        self.failure = failure
        self.times = 3
        self.attempts: collections.Counter[uuid.UUID] = collections.Counter()

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        if envelope.event_type == "Flaky":
            self.attempts[envelope.event_id] += 1
            if self.attempts[envelope.event_id] <= self.times:
                raise self.failure("injected transient failure")
        await super().apply(conn, envelope)


class Fixed(CountingProjection):
    """The projection after a fix: only `poison_type` still fails."""

    def __init__(self, broken: CountingProjection, poison_type: str = "nothing") -> None:
        super().__init__(broken.name, broken.topics, poison_type=poison_type)


@pytest.fixture
async def topic(pool: asyncpg.Pool, stack):
    """A topic and a running relay publishing the 'thing' stream type to it."""
    name = unique_name("resil")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, partitions=3)])
    relay = OutboxRelay(pool, {"thing": name}.get, name="relay", bootstrap=stack.kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    yield name
    stop.set()
    await task


async def append(store: EventStore, stream: str, *types: str) -> list[uuid.UUID]:
    version = await store.version("thing", stream)
    events = [NewEvent(event_type=t, payload={"n": 1}) for t in types]
    for n, event in enumerate(events):
        await store.append("thing", stream, version + n, [event], META)
    return [e.event_id for e in events]


async def applied(pool: asyncpg.Pool, schema: str) -> dict[uuid.UUID, int]:
    try:
        rows = await pool.fetch(f'SELECT event_id, times FROM "{schema}".applied')
    except asyncpg.UndefinedTableError:
        return {}
    return {r["event_id"]: r["times"] for r in rows}


def fast(runner: KafkaProjectionRunner | FeedProjectionRunner) -> None:
    runner.retry_backoff = Backoff(initial=0.01, cap=0.05)


def retries(consumer: str) -> float:
    value = REGISTRY.get_sample_value(
        "eventkit_consumer_transient_retries_total", {"consumer": consumer}
    )
    return value or 0.0


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.exceptions.SerializationError,
        asyncpg.exceptions.DeadlockDetectedError,
        asyncpg.exceptions.ConnectionDoesNotExistError,
    ],
)
async def test_transient_handler_failures_are_retried_and_never_dead_lettered(
    pool: asyncpg.Pool, stack, topic: str, failure: type[Exception]
) -> None:
    store = EventStore(pool)
    ids = await append(store, "a", "Counted", "Flaky", "Counted")
    ids += await append(store, "b", "Counted", "Counted")
    projection = FlakyProjection(unique_name("flaky"), (topic,), failure)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    fast(runner)
    before = retries(runner.group_id)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _has(pool, projection.name, set(ids)), timeout=60)
    finally:
        stop.set()
        await task
    counts = await applied(pool, projection.name)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    assert projection.attempts[ids[1]] == 4  # three transient failures, then applied
    assert await list_dead_letters(pool, consumer=runner.group_id, status=None) == []
    assert runner.totals.dead_lettered == 0 and runner.totals.applied == 5
    assert retries(runner.group_id) - before >= 3
    async with pool.acquire() as conn:
        assert sum((await live_offsets(conn, projection)).values()) == 5  # every message, once


async def _has(pool: asyncpg.Pool, schema: str, expected: set[uuid.UUID]) -> bool:
    return set(await applied(pool, schema)) >= expected


class Terminated(CountingProjection):
    """On the first 'Slow' event: tells the test its backend pid and waits in PostgreSQL, so the
    test can terminate the consumer's connection in the middle of applying."""

    def __init__(self, name: str, topics: tuple[str, ...]) -> None:
        super().__init__(name, topics)
        self.backend: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.slow_attempts = 0

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        if envelope.event_type == "Slow":
            self.slow_attempts += 1
            if self.slow_attempts == 1:
                self.backend.set_result(await conn.fetchval("SELECT pg_backend_pid()"))
                await conn.execute("SELECT pg_sleep(30)")
        await super().apply(conn, envelope)


async def test_the_consumers_connection_terminated_mid_batch_is_retried_not_dead_lettered(
    pool: asyncpg.Pool, stack, topic: str
) -> None:
    store = EventStore(pool)
    ids = await append(store, "a", "Counted", "Slow", "Counted")
    projection = Terminated(unique_name("term"), (topic,))
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    fast(runner)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        pid = await asyncio.wait_for(projection.backend, timeout=60)
        async with pool.acquire() as other:
            assert await other.fetchval("SELECT pg_terminate_backend($1)", pid)
        ids += await append(store, "b", "Counted")
        await eventually(lambda: _has(pool, projection.name, set(ids)), timeout=60)
    finally:
        stop.set()
        await task
    counts = await applied(pool, projection.name)
    assert set(counts) == set(ids) and set(counts.values()) == {1}
    assert projection.slow_attempts >= 2
    assert await list_dead_letters(pool, consumer=runner.group_id, status=None) == []
    async with pool.acquire() as conn:
        assert sum((await live_offsets(conn, projection)).values()) == 4


async def test_a_dead_letter_parks_its_stream_and_a_retry_applies_the_held_events_in_order(
    pool: asyncpg.Pool, stack, topic: str
) -> None:
    store = EventStore(pool)
    p1, p2, p3, p4 = await append(store, "p", "Counted", "Poison", "Counted", "Later")
    q = await append(store, "q", "Counted", "Counted")
    projection = CountingProjection(unique_name("park"), (topic,))
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    consumer = runner.group_id
    try:
        await eventually(lambda: _has(pool, projection.name, {p1, *q}), timeout=60)

        async def held_two() -> bool:
            return len(await list_dead_letters(pool, consumer=consumer, status="held")) == 2

        await eventually(held_two, timeout=30)
        counts = await applied(pool, projection.name)
        assert p2 not in counts and p3 not in counts and p4 not in counts  # held, not applied
        [head] = await list_dead_letters(pool, consumer=consumer)  # open: the head only
        assert head.event_id == str(p2) and head.error_type == "ValueError" and head.parks_stream
        held = await list_dead_letters(pool, consumer=consumer, status="held")
        assert [h.event_id for h in held] == [str(p3), str(p4)]
        assert {(h.held_by, h.error_type, h.stream_id) for h in held} == {
            (head.id, "StreamParked", "p")
        }
        [parked] = await parked_streams(pool, consumer)
        assert (parked.stream_type, parked.stream_id, parked.head, parked.held) == (
            "thing", "p", head.id, 2
        )  # fmt: skip
        assert runner.totals.dead_lettered == 1 and runner.totals.held == 2

        # a held letter is not retried or discarded on its own
        with pytest.raises(DeadLetterError, match="held behind"):
            await retry_letter(pool, projection, held[0].id, "ops:li")
        with pytest.raises(DeadLetterError, match="held behind"):
            await discard(pool, held[0].id, "ops:li")
        # nor is the head discarded while it holds events, without saying what becomes of them
        with pytest.raises(DeadLetterError, match="apply-held"):
            await discard(pool, head.id, "ops:li")

        # a fix for 'Poison' but not 'Later': the head and p3 apply, p4 fails and is the new
        # head; an event arriving meanwhile is held behind it
        outcome = await retry_letter(pool, Fixed(projection, "Later"), head.id, "ops:li")
        assert outcome.applied and outcome.held_applied == 1
        assert outcome.parked_at == held[1].id and not outcome.unparked
        [p5] = await append(store, "p", "Counted")

        async def held_behind_new_head() -> bool:
            letters = await list_dead_letters(pool, consumer=consumer, status="held")
            return [(h.event_id, h.held_by) for h in letters] == [(str(p5), held[1].id)]

        await eventually(held_behind_new_head, timeout=30)
        [new_head] = await list_dead_letters(pool, consumer=consumer)
        assert new_head.id == held[1].id and new_head.error_type == "ValueError"

        # the full fix: p4 and then p5 apply, once each, in order; the stream is unparked
        outcome = await retry_letter(pool, Fixed(projection), new_head.id, "ops:li")
        assert outcome.applied and outcome.held_applied == 1 and outcome.unparked
        assert await parked_streams(pool, consumer) == []
        assert await list_dead_letters(pool, consumer=consumer, status="unresolved") == []

        # the stream flows again through the running consumer
        [p6] = await append(store, "p", "Counted")
        await eventually(lambda: _has(pool, projection.name, {p6}), timeout=30)
    finally:
        stop.set()
        await task
    counts = await applied(pool, projection.name)
    assert set(counts) == {p1, p2, p3, p4, p5, p6, *q} and set(counts.values()) == {1}
    totals = await pool.fetchrow(
        f'SELECT events, last_version FROM "{projection.name}".stream_totals'
        " WHERE stream_id = 'p'"
    )
    assert (totals["events"], totals["last_version"]) == (6, 6)  # CountingProjection checks order
    resolved = await list_dead_letters(pool, consumer=consumer, status="retried")
    assert len(resolved) == 4  # head, p3, p4 (a head in its turn), p5


async def test_discarding_a_head_with_apply_held_applies_the_held_events(
    pool: asyncpg.Pool,
) -> None:
    """The feed runner parks streams too (its letters under `feed.<schema>`)."""
    store = EventStore(pool)
    r1, r2, r3 = await append(store, "r", "Poison", "Counted", "Counted")
    [s1] = await append(store, "s", "Counted")
    projection = CountingProjection(unique_name("feedpark"), ("unused",))
    runner = FeedProjectionRunner(pool, projection, stream_types=["thing"])
    await runner.setup()
    await runner.catch_up()
    assert set(await applied(pool, projection.name)) == {s1}
    [head] = await list_dead_letters(pool, consumer=runner.consumer_name)
    assert head.event_id == str(r1)
    held = await list_dead_letters(pool, consumer=runner.consumer_name, status="held")
    assert [h.event_id for h in held] == [str(r2), str(r3)]

    outcome = await discard(pool, head.id, "ops:li", projection=projection, apply_held=True)
    assert outcome is not None and outcome.held_applied == 2 and outcome.unparked
    assert set(await applied(pool, projection.name)) == {s1, r2, r3}
    statuses = {
        letter.event_id: letter.status
        for letter in await list_dead_letters(pool, consumer=runner.consumer_name, status=None)
    }
    assert statuses == {str(r1): "discarded", str(r2): "retried", str(r3): "retried"}
    [r4] = await append(store, "r", "Counted")
    await runner.catch_up()
    assert r4 in await applied(pool, projection.name)


async def test_the_feed_runner_retries_a_transient_failure_of_its_batch(
    pool: asyncpg.Pool,
) -> None:
    store = EventStore(pool)
    ids = await append(store, "f", "Counted", "Flaky", "Counted")
    projection = FlakyProjection(
        unique_name("feedflaky"), ("unused",), asyncpg.exceptions.LockNotAvailableError
    )
    runner = FeedProjectionRunner(pool, projection, stream_types=["thing"])
    fast(runner)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        await eventually(lambda: _has(pool, projection.name, set(ids)), timeout=30)
    finally:
        stop.set()
        await task
    assert set((await applied(pool, projection.name)).values()) == {1}
    assert await list_dead_letters(pool, consumer=runner.consumer_name, status=None) == []


async def test_the_relay_survives_losing_the_connection_that_holds_its_leader_lock(
    pool: asyncpg.Pool, stack
) -> None:
    """Found by the fault lane (PostgreSQL immediate restarts): the lock connection lost under
    its pool proxy made every call on the proxy raise, and the relay crashed to its supervisor.
    Now it stands down, competes for the lock again and goes on publishing."""
    name = unique_name("leader")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(name, partitions=1)])
    relay = OutboxRelay(pool, {"thing": name}.get, name=name, bootstrap=stack.kafka_bootstrap)
    relay.max_backoff = 0.2
    store = EventStore(pool)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))

    async def published(n: int) -> bool:
        return bool(
            await pool.fetchval(
                "SELECT published >= $2 FROM eventkit.relay_positions WHERE relay_name = $1",
                name,
                n,
            )
        )

    async def lock_holder() -> int | None:
        return await pool.fetchval(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND objid = ($1::bigint & 4294967295)::oid",
            relay._lock_key,
        )

    try:
        await append(store, "s", "Counted")
        await eventually(lambda: published(1), timeout=60)
        for _ in range(2):  # twice: the second time after it took the lock again
            pid = await lock_holder()
            assert pid is not None
            assert await pool.fetchval("SELECT pg_terminate_backend($1)", pid)
            await append(store, "s", "Counted")
            await asyncio.sleep(0.5)
            assert not task.done(), task.exception() if task.done() else None
        await eventually(lambda: published(3), timeout=60)
        assert await lock_holder() is not None
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
