"""Transactional outbox relay: tails the commit-ordered feed and publishes to Kafka.

The store's own events table is the outbox: an append commits the event and its place in the feed
in one transaction. The relay publishes each event keyed by stream id (so one aggregate's events
stay in order in one partition) and saves its feed position only after the broker acknowledged
every event up to it. A crash therefore repeats at most the unacknowledged tail: duplicates only
across a crash, never a loss. One relay per store holds a PostgreSQL advisory lock; replicas wait.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Callable
from typing import Protocol

import asyncpg

from eventkit import metrics
from eventkit.db import Conn
from eventkit.feed import FeedEvent, Position, approximate_lag, read_feed
from eventkit.health import beat, pause
from eventkit.kafka import (
    KafkaConnection,
    idempotent_producer,
    kafka_connection,
    message_headers,
    start_or_explain,
)

log = logging.getLogger(__name__)

TopicRouter = Callable[[str], str | None]
"""Maps a stream type to its topic; None keeps that stream private (not published)."""


class Producer(Protocol):
    """The part of AIOKafkaProducer the relay uses."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[object]: ...


class OutboxRelay:
    """Publishes a service's committed events to Kafka, in feed order, at least once.

    `bootstrap` is a `KafkaConnection` or a PLAINTEXT bootstrap string.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        route: TopicRouter,
        *,
        name: str,
        bootstrap: KafkaConnection | str | None = None,
        producer_factory: Callable[[], Producer] | None = None,
        batch_size: int = 500,
        idle_sleep: float = 0.02,
        max_idle_sleep: float = 0.25,
    ) -> None:
        self._kafka = None if bootstrap is None else kafka_connection(bootstrap)
        if producer_factory is None:
            if self._kafka is None:
                raise ValueError("give bootstrap or producer_factory")
            producer_factory = _default_factory(self._kafka, name)
        self._pool = pool
        self._route = route
        self.name = name
        self._producer_factory = producer_factory
        self._batch_size = batch_size
        self._idle_sleep = idle_sleep
        self._max_idle_sleep = max_idle_sleep
        self._lock_key = zlib.crc32(f"eventkit.relay:{name}".encode())

    async def position(self) -> Position:
        """The saved position: everything up to it has been acknowledged by Kafka."""
        async with self._pool.acquire() as conn:
            return await self._load_position(conn)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until `stop` is set or the task is cancelled; waits for the leader lock first."""
        stop = stop or asyncio.Event()
        async with self._pool.acquire() as lock_conn:
            while not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                beat()  # standing by is progress too: another replica leads
                if await _wait(stop, 1.0):
                    return
            try:
                await self._run_as_leader(stop)
            finally:
                try:
                    await lock_conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
                except BaseException:
                    # The pool does not reset sessions: never hand back a connection that may
                    # still hold the leader lock.
                    lock_conn.terminate()
                    raise

    async def _run_as_leader(self, stop: asyncio.Event) -> None:
        producer = self._producer_factory()
        await self._start(producer)
        try:
            async with self._pool.acquire() as conn:
                position = await self._load_position(conn)
            sleep = self._idle_sleep
            while not stop.is_set():
                beat()  # a turn of the loop: the supervisor restarts a relay stuck in one
                try:
                    published, position = await self._relay_batch(producer, position)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception(
                        "relay batch failed; restarting the producer", extra={"relay": self.name}
                    )
                    await _stop_quietly(producer)
                    producer = self._producer_factory()
                    await _wait(stop, 1.0)
                    await self._start(producer)
                    async with self._pool.acquire() as conn:
                        position = await self._load_position(conn)
                    continue
                if published:
                    sleep = self._idle_sleep
                    continue
                sleep = min(sleep * 2, self._max_idle_sleep)
                await _wait(stop, sleep)
        finally:
            await _stop_quietly(producer)

    async def _start(self, producer: Producer) -> None:
        if self._kafka is None:
            await producer.start()
        else:
            await start_or_explain(producer.start, self._kafka)

    async def _relay_batch(self, producer: Producer, position: Position) -> tuple[int, Position]:
        async with self._pool.acquire() as conn:
            batch = await read_feed(conn, position, self._batch_size)
            metrics.RELAY_LAG.labels(self.name).set(await approximate_lag(conn, position))
        if not batch:
            return 0, position
        futures = [await self._send(producer, item) for item in batch]
        await asyncio.gather(*[f for f in futures if f is not None])
        new_position = batch[-1].position
        async with self._pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO eventkit.relay_positions (relay_name, tx_id, seq, published)
                VALUES ($1, $2::text::xid8, $3, $4)
                ON CONFLICT (relay_name) DO UPDATE
                SET tx_id = excluded.tx_id, seq = excluded.seq,
                    published = eventkit.relay_positions.published + excluded.published,
                    updated_at = now()
                """,
                self.name,
                str(new_position.tx_id),
                new_position.seq,
                len(batch),
            )
        metrics.RELAY_PUBLISHED.labels(self.name).inc(len(batch))
        return len(batch), new_position

    async def _send(self, producer: Producer, item: FeedEvent) -> asyncio.Future[object] | None:
        envelope = item.envelope
        topic = self._route(envelope.stream_type)
        if topic is None:
            return None
        return await producer.send(
            topic,
            value=envelope.to_json_bytes(),
            key=envelope.stream_id.encode(),
            headers=message_headers(envelope),
        )

    async def _load_position(self, conn: Conn) -> Position:
        row = await conn.fetchrow(
            "SELECT tx_id::text::bigint AS tx, seq FROM eventkit.relay_positions"
            " WHERE relay_name = $1",
            self.name,
        )
        return Position.ZERO if row is None else Position(row["tx"], row["seq"])


def _default_factory(kafka: KafkaConnection, name: str) -> Callable[[], Producer]:
    def make() -> Producer:
        producer: Producer = idempotent_producer(kafka, f"relay-{name}")
        return producer

    return make


async def _stop_quietly(producer: Producer) -> None:
    try:
        await producer.stop()
    except Exception:
        log.warning("producer did not stop cleanly", exc_info=True)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds` (a declared rest, never a stall); True when `stop` was set."""
    return await pause(stop, seconds)
