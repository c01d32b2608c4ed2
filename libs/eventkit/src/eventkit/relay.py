"""Transactional outbox relay: tails the commit-ordered feed and publishes to Kafka.

The store's own events table is the outbox: an append commits the event and its place in the feed
in one transaction. The relay publishes each event keyed by stream id (so one aggregate's events
stay in order in one partition) and saves its feed position only after the broker acknowledged
every event up to it. A crash therefore repeats at most the unacknowledged tail: duplicates only
across a crash, never a loss. One relay per store holds a PostgreSQL advisory lock; replicas wait.

Failures never end the relay: a failed send or acknowledgement (Kafka away), a failed read or
save (PostgreSQL away) drops the producer, rests with exponential backoff (0.1 s to 5 s, jitter;
a declared rest, `eventkit.health.pause`), and starts over from the saved position with a new
producer. The idempotent producer never lets a later event of a partition land after one that
failed, so starting over repeats events (duplicates, which consumers' inboxes absorb) and never
reorders first deliveries. When the connection holding the leader lock dies, the lock is gone
with it: the relay stops leading and competes for the lock again. Only a producer Kafka refuses
for good at start (credentials, an untrusted CA: `eventkit.transient`) raises, for the
supervisor to log and restart it as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable
from typing import Protocol

import asyncpg

from eventkit import metrics
from eventkit.backoff import Backoff, rest_after
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
from eventkit.transient import describe, is_transient

log = logging.getLogger(__name__)


class LeadershipLost(ConnectionError):
    """The connection holding the relay's leader lock is gone, and the lock with it."""


def _lost(conn: Conn) -> bool:
    """Whether a held connection is gone: closed, or its pool proxy detached because the
    connection was lost under it (asyncpg then refuses every call on the proxy)."""
    try:
        return conn.is_closed()
    except asyncpg.exceptions.InterfaceError:
        return True


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
        self.max_backoff = 5.0

    async def position(self) -> Position:
        """The saved position: everything up to it has been acknowledged by Kafka."""
        async with self._pool.acquire() as conn:
            return await self._load_position(conn)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Relay until `stop` is set or the task is cancelled; waits for the leader lock first.

        PostgreSQL going away (the lock's connection included) is waited out with backoff,
        then the relay competes for the lock again; it never returns before `stop`."""
        stop = stop or asyncio.Event()
        backoff = Backoff(cap=self.max_backoff)
        while not stop.is_set():
            try:
                await self._lead_when_possible(stop)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    raise
                metrics.RELAY_RETRIES.labels(self.name).inc()
                if await rest_after(
                    exc, backoff, stop, "relay lost PostgreSQL; retrying", relay=self.name
                ):
                    return

    async def _lead_when_possible(self, stop: asyncio.Event) -> None:
        async with self._pool.acquire() as lock_conn:
            while not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                beat()  # standing by is progress too: another replica leads
                if await _wait(stop, 1.0):
                    return
            try:
                await self._run_as_leader(stop, lock_conn)
            finally:
                try:
                    await lock_conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)
                except BaseException:
                    # The pool does not reset sessions: never hand back a connection that may
                    # still hold the leader lock. (A connection lost under its proxy is already
                    # gone, and its lock with it.)
                    with contextlib.suppress(asyncpg.exceptions.InterfaceError):
                        lock_conn.terminate()
                    raise

    async def _run_as_leader(self, stop: asyncio.Event, lock_conn: Conn) -> None:
        producer: Producer | None = None
        position: Position | None = None
        backoff = Backoff(cap=self.max_backoff)
        sleep = self._idle_sleep
        try:
            while not stop.is_set():
                beat()  # a turn of the loop: the supervisor restarts a relay stuck in one
                if _lost(lock_conn):
                    raise LeadershipLost("the connection holding the leader lock is gone")
                starting = producer is None
                try:
                    if producer is None:
                        producer = self._producer_factory()
                        await self._start(producer)
                    starting = False
                    if position is None:
                        async with self._pool.acquire() as conn:
                            position = await self._load_position(conn)
                    published, position = await self._relay_batch(producer, position)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Start over from the saved position with a new producer: nothing after
                    # it was acknowledged for sure, and the old producer's failures must not
                    # let a later event overtake an earlier one.
                    if starting and not is_transient(exc):
                        raise  # Kafka refuses this client (credentials, CA): the supervisor's
                    metrics.RELAY_RETRIES.labels(self.name).inc()
                    if not is_transient(exc):
                        log.error(
                            "relay batch failed; starting over from the saved position",
                            extra={"relay": self.name, "cause": describe(exc)},
                            exc_info=True,
                        )
                    if producer is not None:
                        await _stop_quietly(producer)
                    producer, position = None, None
                    if await rest_after(
                        exc, backoff, stop, "relay batch failed; retrying", relay=self.name
                    ):
                        return
                    continue
                backoff.reset()
                if published:
                    sleep = self._idle_sleep
                    continue
                sleep = min(sleep * 2, self._max_idle_sleep)
                await _wait(stop, sleep)
        finally:
            if producer is not None:
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
