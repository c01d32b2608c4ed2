"""Consumers that keep projections: exactly-once effect over at-least-once delivery.

Each batch from Kafka is applied in one PostgreSQL transaction together with the projection's
checkpoint (next offset per partition) and its inbox (event ids applied). On start, and whenever
the database disagrees with the consumer's in-memory position, the consumer seeks to the offsets
stored in the database: the database, not Kafka's group offsets, decides what was applied. The
Kafka commit that follows is only for lag dashboards. A poison event goes to the dead-letter table
with its error and the batch goes on without it; its stream is parked for that consumer: later
events of the same stream are held (dead letters with status 'held'), not applied, until ops
retry the letter (ADR 0018). A transient failure (`eventkit.transient`) is not poison: the whole
batch is rolled back and tried again with backoff, as long as it takes.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from eventkit import metrics
from eventkit.backoff import Backoff, rest_after
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope
from eventkit.feed import FeedEvent, Position, read_feed
from eventkit.health import beat, pause
from eventkit.kafka import KafkaConnection, kafka_connection, start_or_explain
from eventkit.projection import (
    Projection,
    create_schema,
    mark_all_applied,
    mark_applied,
    use_schema,
)
from eventkit.transient import is_transient

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    """One message to apply: where it came from, its raw bytes and its parsed envelope."""

    topic: str
    partition: int
    offset: int
    raw: bytes | None
    envelope: EventEnvelope | None = None
    parse_error: str | None = None

    @classmethod
    def from_kafka(cls, topic: str, partition: int, offset: int, raw: bytes | None) -> Delivery:
        """Parse a Kafka record; a record that is not an envelope becomes a poison delivery."""
        try:
            if raw is None:
                raise ValueError("message has no value")
            envelope = EventEnvelope.from_json_bytes(raw)
        except (ValidationError, ValueError) as exc:
            return cls(topic, partition, offset, raw, None, f"{type(exc).__name__}: {exc}")
        return cls(topic, partition, offset, raw, envelope)

    @classmethod
    def from_feed(cls, item: FeedEvent) -> Delivery:
        """An event read straight from the store's feed (topic 'feed', offset = seq)."""
        return cls("feed", 0, item.position.seq, None, item.envelope)


class _HandlerFailed(Exception):
    """A handler raised in the fast path; the batch is redone with one savepoint per event."""


StreamKey = tuple[str, str]
"""(stream_type, stream_id): one aggregate's stream."""


@dataclass
class BatchOutcome:
    """What one batch did: applied, skipped as duplicates, dead-lettered, held behind a parked
    stream's dead letter, partitions to re-seek."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    reseek: dict[tuple[str, int], int] = field(default_factory=dict)
    held: int = 0

    def add(self, other: BatchOutcome) -> None:
        """Count another outcome's events into this one (not its re-seeks)."""
        self.applied += other.applied
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered
        self.held += other.held


async def apply_deliveries(
    conn: Conn,
    projection: Projection,
    consumer_name: str,
    deliveries: Sequence[Delivery],
    *,
    isolate: bool,
) -> BatchOutcome:
    """Apply deliveries inside the caller's transaction, with inbox dedupe and dead letters.

    Without `isolate`, a handler error aborts the batch (raises _HandlerFailed) so the caller
    can retry it with `isolate=True`, where each event runs in its own savepoint and a failing one
    is dead-lettered instead, and its stream parked: later events of that stream are held (kept
    as dead letters with status 'held', not applied) until ops retry or discard the letter.

    A transient failure (`eventkit.transient`: a dropped connection, a serialization failure,
    a deadlock, a lock or statement timeout) is never the event's fault: in either pass it
    propagates as it is, out of the caller's transaction, for the caller to try the whole batch
    again later. Nothing is dead-lettered for it.
    """
    outcome = BatchOutcome()
    parked = await _parked_heads(conn, consumer_name, deliveries)
    fresh: set[uuid.UUID] = set()
    if not isolate:
        # One round trip records the whole batch in the inbox; an error later aborts the batch
        # (and these rows with it) before it is redone event by event. Held events stay out.
        fresh = await mark_all_applied(
            conn,
            [
                d.envelope.event_id
                for d in deliveries
                if d.envelope is not None and _stream(d.envelope) not in parked
            ],
        )
    for delivery in deliveries:
        envelope = delivery.envelope
        if envelope is None:
            # No envelope, no stream: an unreadable message parks nothing.
            await _dead_letter(
                conn, consumer_name, delivery, "UnreadableMessage", delivery.parse_error or ""
            )
            outcome.dead_lettered += 1
            continue
        head = parked.get(_stream(envelope))
        if head is not None:
            await _hold(conn, consumer_name, delivery, head)
            outcome.held += 1
            continue
        if not isolate:
            try:
                if envelope.event_id not in fresh:
                    outcome.duplicates += 1
                    continue
                fresh.discard(envelope.event_id)  # the same event twice in one batch: once
                await projection.apply(conn, envelope)
            except Exception as exc:
                if is_transient(exc):
                    raise
                raise _HandlerFailed from exc
            outcome.applied += 1
            continue
        try:
            async with conn.transaction():
                if not await mark_applied(conn, envelope):
                    outcome.duplicates += 1
                    continue
                await projection.apply(conn, envelope)
            outcome.applied += 1
        except Exception as exc:
            if is_transient(exc):
                raise
            log.warning(
                "event dead-lettered; its stream is parked",
                extra={
                    "consumer": consumer_name,
                    "event_id": str(envelope.event_id),
                    "stream_type": envelope.stream_type,
                    "stream_id": envelope.stream_id,
                },
                exc_info=True,
            )
            detail = "".join(traceback.format_exception(exc))[-8000:]
            letter = await _dead_letter(conn, consumer_name, delivery, type(exc).__name__, detail)
            parked[_stream(envelope)] = letter
            await _park(conn, consumer_name, envelope, letter)
            outcome.dead_lettered += 1
    return outcome


def _stream(envelope: EventEnvelope) -> StreamKey:
    return (envelope.stream_type, envelope.stream_id)


async def _parked_heads(
    conn: Conn, consumer: str, deliveries: Sequence[Delivery]
) -> dict[StreamKey, int]:
    """The streams of these deliveries this consumer has parked, with their head letter's id.

    The rows are locked (FOR SHARE) for the batch's transaction, so an ops retry that unparks a
    stream either waits for this batch (and then sees the events it held) or went first (and the
    batch sees the stream unparked)."""
    keys = sorted({_stream(d.envelope) for d in deliveries if d.envelope is not None})
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT stream_type, stream_id, first_dead_letter_id FROM eventkit.parked_streams"
        " WHERE consumer = $1 AND (stream_type, stream_id) IN"
        " (SELECT * FROM unnest($2::text[], $3::text[])) FOR SHARE",
        consumer,
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["stream_type"], r["stream_id"]): r["first_dead_letter_id"] for r in rows}


async def _park(conn: Conn, consumer: str, envelope: EventEnvelope, letter: int) -> None:
    await conn.execute(
        "INSERT INTO eventkit.parked_streams (consumer, stream_type, stream_id,"
        " first_dead_letter_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        consumer,
        envelope.stream_type,
        envelope.stream_id,
        letter,
    )
    metrics.STREAMS_PARKED.labels(consumer).inc()


async def _hold(conn: Conn, consumer: str, delivery: Delivery, head: int) -> None:
    """Keep an event of a parked stream, in order, behind the letter its stream waits for."""
    envelope = delivery.envelope
    assert envelope is not None
    await _insert_letter(
        conn,
        consumer,
        delivery,
        "StreamParked",
        f"held: stream {envelope.stream_type}/{envelope.stream_id} is parked behind dead"
        f" letter #{head}; it applies when that letter is retried",
        status="held",
        held_by=head,
    )
    metrics.EVENTS_HELD.labels(consumer).inc()


async def _dead_letter(
    conn: Conn, consumer: str, delivery: Delivery, error_type: str, error: str
) -> int:
    """File a dead letter; its id (the existing one's when this offset was filed before)."""
    letter = await _insert_letter(conn, consumer, delivery, error_type, error)
    metrics.DEAD_LETTERS.labels(consumer).inc()
    return letter


async def _insert_letter(
    conn: Conn,
    consumer: str,
    delivery: Delivery,
    error_type: str,
    error: str,
    *,
    status: str = "open",
    held_by: int | None = None,
) -> int:
    envelope = delivery.envelope
    raw = (
        delivery.raw
        if delivery.raw is not None
        else (envelope.to_json_bytes() if envelope else None)
    )
    letter: int | None = await conn.fetchval(
        """
        INSERT INTO eventkit.dead_letters (consumer, topic, kafka_partition, kafka_offset,
            event_id, event_type, raw_value, error_type, error, status, held_by,
            stream_type, stream_id, stream_version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        ON CONFLICT (consumer, topic, kafka_partition, kafka_offset) DO NOTHING
        RETURNING id
        """,
        consumer,
        delivery.topic,
        delivery.partition,
        delivery.offset,
        envelope.event_id if envelope else None,
        envelope.event_type if envelope else None,
        raw,
        error_type,
        error,
        status,
        held_by,
        envelope.stream_type if envelope else None,
        envelope.stream_id if envelope else None,
        envelope.stream_version if envelope else None,
    )
    if letter is None:  # filed before (the same offset read again after a reset): that one
        letter = await conn.fetchval(
            "SELECT id FROM eventkit.dead_letters WHERE consumer = $1 AND topic = $2"
            " AND kafka_partition = $3 AND kafka_offset = $4",
            consumer,
            delivery.topic,
            delivery.partition,
            delivery.offset,
        )
    assert letter is not None
    return letter


async def apply_kafka_batch(
    conn: Conn,
    projection: Projection,
    schema: str,
    consumer_name: str,
    batch: Mapping[tuple[str, int], Sequence[Delivery]],
    *,
    isolate: bool,
    floors: Mapping[tuple[str, int], int] | None = None,
) -> BatchOutcome:
    """Apply a batch of Kafka deliveries and advance the checkpoint, in the caller's transaction.

    Records before the stored offset were applied already and are skipped; a partition whose
    first record lies beyond the stored offset is not applied at all and is reported for re-seek.
    A partition with no stored offset must start at its floor (the log's beginning) when one is
    given, so a consumer placed elsewhere (offsets its group committed for another database)
    re-seeks instead of silently skipping the events before.
    """
    await use_schema(conn, schema)
    keys = list(batch)
    rows = await conn.fetch(
        "SELECT topic, kafka_partition, next_offset FROM _checkpoint"
        " WHERE (topic, kafka_partition) IN (SELECT * FROM unnest($1::text[], $2::int[]))"
        " FOR UPDATE",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    stored = {(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows}
    total = BatchOutcome()
    for key, deliveries in batch.items():
        expected = stored.get(key)
        if expected is None and floors is not None:
            expected = floors.get(key)
        if expected is not None:
            if deliveries and deliveries[0].offset > expected:
                total.reseek[key] = expected
                continue
            deliveries = [d for d in deliveries if d.offset >= expected]
        if not deliveries:
            continue
        outcome = await apply_deliveries(
            conn, projection, consumer_name, deliveries, isolate=isolate
        )
        total.add(outcome)
        await conn.execute(
            """
            INSERT INTO _checkpoint (topic, kafka_partition, next_offset) VALUES ($1, $2, $3)
            ON CONFLICT (topic, kafka_partition)
            DO UPDATE SET next_offset = excluded.next_offset, updated_at = now()
            """,
            key[0],
            key[1],
            deliveries[-1].offset + 1,
        )
    return total


async def apply_in_transaction(
    pool: asyncpg.Pool,
    projection: Projection,
    schema: str,
    consumer_name: str,
    batch: Mapping[tuple[str, int], Sequence[Delivery]],
    floors: Mapping[tuple[str, int], int] | None = None,
) -> BatchOutcome:
    """One transaction for the batch; on a handler error, redo it with per-event isolation."""
    async with pool.acquire() as conn:
        return await apply_batch(conn, projection, schema, consumer_name, batch, floors)


async def apply_batch(
    conn: Conn,
    projection: Projection,
    schema: str,
    consumer_name: str,
    batch: Mapping[tuple[str, int], Sequence[Delivery]],
    floors: Mapping[tuple[str, int], int] | None = None,
) -> BatchOutcome:
    """`apply_kafka_batch` in a transaction (a savepoint inside the caller's), fast path first;
    on a handler error the batch is redone with one savepoint per event and poison dead-lettered."""
    try:
        async with conn.transaction():
            return await apply_kafka_batch(
                conn, projection, schema, consumer_name, batch, isolate=False, floors=floors
            )
    except _HandlerFailed:
        async with conn.transaction():
            return await apply_kafka_batch(
                conn, projection, schema, consumer_name, batch, isolate=True, floors=floors
            )


async def stored_offsets(
    pool: asyncpg.Pool, schema: str, partitions: Sequence[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """The next offsets a projection's checkpoint holds for these partitions."""
    async with pool.acquire() as conn, conn.transaction():
        await use_schema(conn, schema)
        rows = await conn.fetch("SELECT topic, kafka_partition, next_offset FROM _checkpoint")
    wanted = set(partitions)
    return {
        (r["topic"], r["kafka_partition"]): r["next_offset"]
        for r in rows
        if (r["topic"], r["kafka_partition"]) in wanted
    }


class _SeekFromDatabase(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: KafkaProjectionRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self._runner.seek_from_database(list(assigned))


class KafkaProjectionRunner:
    """Keeps one projection up to date from its Kafka topics."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        *,
        bootstrap: KafkaConnection | str,
        group_id: str | None = None,
        max_records: int = 500,
        poll_timeout_ms: int = 200,
    ) -> None:
        self._pool = pool
        self.projection = projection
        self._kafka = kafka_connection(bootstrap)
        self.group_id = group_id or f"projection.{projection.name}"
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._consumer: AIOKafkaConsumer | None = None
        self._placed: set[tuple[str, int]] = set()  # partitions whose checkpoint row exists
        self._stop = asyncio.Event()
        self.totals = BatchOutcome()
        self.retry_backoff = Backoff()

    @property
    def schema(self) -> str:
        """The live schema of the projection."""
        return self.projection.name

    async def setup(self) -> None:
        """Create the projection's schema and tables if missing."""
        async with self._pool.acquire() as conn:
            await create_schema(conn, self.projection, self.schema)

    async def seek_from_database(self, partitions: Sequence[TopicPartition]) -> None:
        """Point the consumer at the database's next offsets; earliest where none is stored."""
        consumer = self._consumer
        assert consumer is not None
        keys = [(tp.topic, tp.partition) for tp in partitions]
        backoff = Backoff(self.retry_backoff.initial, self.retry_backoff.cap)
        while True:
            try:
                stored = await stored_offsets(self._pool, self.schema, keys)
                break
            except Exception as exc:
                if not is_transient(exc):
                    raise
                metrics.CONSUMER_TRANSIENT_RETRIES.labels(self.group_id).inc()
                if await rest_after(
                    exc, backoff, self._stop, "checkpoint unreadable; retrying",
                    consumer=self.group_id,
                ):  # fmt: skip
                    return  # stopping: the next start seeks from the database again
        fresh = []
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, offset)
        if fresh:
            # Whatever position the consumer ends up at for these (a reset to the beginning, or
            # offsets its group committed from another database), the first batch is checked
            # against the log's beginning before anything is applied (the floors in `_process`).
            await consumer.seek_to_beginning(*fresh)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until `stop` is set or the task is cancelled."""
        stop = stop or asyncio.Event()
        self._stop = stop
        await self.setup()
        consumer = AIOKafkaConsumer(
            **self._kafka.client_kwargs(),
            group_id=self.group_id,
            client_id=f"{self.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self._max_records,
        )
        self._consumer = consumer
        consumer.subscribe(list(self.projection.topics), listener=_SeekFromDatabase(self))
        try:
            await start_or_explain(consumer.start, self._kafka)
            while not stop.is_set():
                beat()  # a turn of the loop: the supervisor restarts a consumer stuck in one
                records = await consumer.getmany(
                    timeout_ms=self._poll_timeout_ms, max_records=self._max_records
                )
                if not records:
                    continue
                await self._process(consumer, records, stop)
        finally:
            self._consumer = None
            try:
                await consumer.stop()
            except Exception:
                log.warning("consumer did not stop cleanly", exc_info=True)

    async def _process(
        self,
        consumer: AIOKafkaConsumer,
        records: Mapping[Any, Sequence[Any]],
        stop: asyncio.Event | None = None,
    ) -> None:
        batch = {
            (tp.topic, tp.partition): [
                Delivery.from_kafka(tp.topic, tp.partition, r.offset, r.value) for r in recs
            ]
            for tp, recs in records.items()
            if recs
        }
        outcome = await self._apply_until_done(consumer, batch, stop or self._stop)
        if outcome is None:
            return  # stopped while PostgreSQL or Kafka was away: nothing applied, nothing lost
        self._placed.update(key for key in batch if key not in outcome.reseek)
        self.totals.add(outcome)
        await self.after_database_commit()
        for (topic, partition), offset in outcome.reseek.items():
            log.info("re-seeking from the database", extra={"topic": topic, "partition": partition})
            consumer.seek(TopicPartition(topic, partition), offset)
        metrics.CONSUMER_APPLIED.labels(self.group_id).inc(outcome.applied)
        commits = {
            tp: OffsetAndMetadata(recs[-1].offset + 1, "")
            for tp, recs in records.items()
            if recs and (tp.topic, tp.partition) not in outcome.reseek
        }
        for tp, recs in records.items():
            high = consumer.highwater(tp)
            if recs and high is not None:
                metrics.CONSUMER_LAG.labels(self.group_id, tp.topic, tp.partition).set(
                    max(high - recs[-1].offset - 1, 0)
                )
        try:
            await consumer.commit(commits)
        except Exception:
            log.warning("Kafka offset commit failed (the database holds the truth)", exc_info=True)

    async def _apply_until_done(
        self,
        consumer: AIOKafkaConsumer,
        batch: Mapping[tuple[str, int], Sequence[Delivery]],
        stop: asyncio.Event,
    ) -> BatchOutcome | None:
        """Apply the batch; after a transient failure the same batch again, with backoff, until
        it applies (None: `stop` was set first). A permanent failure outside any handler (a
        bug in the consumer itself) raises, for the supervisor to restart the consumer."""
        backoff = self.retry_backoff
        backoff.reset()
        while True:
            try:
                unplaced = [TopicPartition(*key) for key in batch if key not in self._placed]
                floors = None
                if unplaced:
                    first = await consumer.beginning_offsets(unplaced)
                    floors = {(tp.topic, tp.partition): offset for tp, offset in first.items()}
                return await apply_in_transaction(
                    self._pool, self.projection, self.schema, self.group_id, batch, floors
                )
            except Exception as exc:
                if not is_transient(exc):
                    raise
                metrics.CONSUMER_TRANSIENT_RETRIES.labels(self.group_id).inc()
                if await rest_after(
                    exc, backoff, stop, "transient failure; retrying the batch",
                    consumer=self.group_id,
                ):  # fmt: skip
                    return None
            beat()  # waiting out an outage is progress too: the supervisor must not restart

    async def after_database_commit(self) -> None:
        """Runs between the database commit and the Kafka commit (a seam for crash tests)."""


class FeedProjectionRunner:
    """Keeps a projection of the service's own events straight from its store's feed."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: Projection,
        *,
        stream_types: Sequence[str] | None = None,
        batch_size: int = 500,
        idle_sleep: float = 0.02,
        max_idle_sleep: float = 0.25,
        schema: str | None = None,
    ) -> None:
        self._pool = pool
        self.projection = projection
        self._stream_types = list(stream_types) if stream_types else None
        self._batch_size = batch_size
        self._idle_sleep = idle_sleep
        self._max_idle_sleep = max_idle_sleep
        self.schema = schema or projection.name
        self.retry_backoff = Backoff()

    @property
    def consumer_name(self) -> str:
        """Its dead letters and parked streams are filed under this name: `feed.<schema>`, so a
        rebuild into a shadow never mixes its letters with the live runner's."""
        return f"feed.{self.schema}"

    async def setup(self) -> None:
        """Create the projection's schema and tables if missing."""
        async with self._pool.acquire() as conn:
            await create_schema(conn, self.projection, self.schema)

    async def catch_up(self) -> int:
        """Apply every visible event not yet applied; returns how many were applied."""
        total = 0
        while (applied := await self.catch_up_once()) is not None:
            total += applied
        return total

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Follow the feed until `stop` is set or the task is cancelled."""
        stop = stop or asyncio.Event()
        await self.setup()
        sleep = self._idle_sleep
        backoff = self.retry_backoff
        while not stop.is_set():
            beat()
            try:
                applied = await self.catch_up_once()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                # the batch rolled back as a whole: the same batch again, after a rest
                metrics.CONSUMER_TRANSIENT_RETRIES.labels(self.consumer_name).inc()
                await rest_after(
                    exc, backoff, stop, "transient failure; retrying the batch",
                    consumer=self.consumer_name,
                )  # fmt: skip
                continue
            backoff.reset()
            if applied is not None:
                sleep = self._idle_sleep
                continue
            sleep = min(sleep * 2, self._max_idle_sleep)
            await pause(stop, sleep)  # a declared rest: never judged a stall

    async def catch_up_once(self, conn: Conn | None = None) -> int | None:
        """Apply one batch of the feed; None when there was nothing new to read.

        With `conn`, the batch runs in a savepoint of that connection's transaction. A transient
        failure raises (the batch rolled back); `run` tries it again with backoff.
        """
        if conn is None:
            async with self._pool.acquire() as own:
                return await self._batch(own)
        return await self._batch(conn)

    async def _batch(self, conn: Conn) -> int | None:
        for isolate in (False, True):
            try:
                async with conn.transaction():
                    await use_schema(conn, self.schema)
                    position = await _feed_position(conn)
                    items = await read_feed(conn, position, self._batch_size, self._stream_types)
                    if not items:
                        return None
                    outcome = await apply_deliveries(
                        conn,
                        self.projection,
                        self.consumer_name,
                        [Delivery.from_feed(i) for i in items],
                        isolate=isolate,
                    )
                    await _save_feed_position(conn, items[-1].position)
                    metrics.CONSUMER_APPLIED.labels(self.consumer_name).inc(outcome.applied)
                    return outcome.applied
            except _HandlerFailed:
                continue
        raise AssertionError("unreachable: the isolated pass never raises _HandlerFailed")


async def _feed_position(conn: Conn) -> Position:
    row = await conn.fetchrow(
        "SELECT tx_id::text::bigint AS tx, seq FROM _feed_position FOR UPDATE"
    )
    return Position.ZERO if row is None else Position(row["tx"], row["seq"])


async def _save_feed_position(conn: Conn, position: Position) -> None:
    await conn.execute(
        """
        INSERT INTO _feed_position (singleton, tx_id, seq) VALUES (true, $1::text::xid8, $2)
        ON CONFLICT (singleton) DO UPDATE SET tx_id = excluded.tx_id, seq = excluded.seq,
            updated_at = now()
        """,
        str(position.tx_id),
        position.seq,
    )
