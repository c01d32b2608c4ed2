"""Replay: rebuild a projection into a shadow schema from the store or from Kafka, compare, swap.

The live projection keeps serving while a rebuild runs. `compare` reports rows that differ,
table by table. `swap` blocks the live consumer for an instant, brings the shadow up to date with
the feed, carries the live Kafka checkpoint over when the shadow was built from the store, and
renames the schemas in one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from aiokafka import AIOKafkaConsumer

from eventkit.consumer import Delivery, FeedProjectionRunner, apply_batch
from eventkit.db import Conn
from eventkit.kafka import KafkaConnection, kafka_connection, start_or_explain, topic_partitions
from eventkit.projection import (
    SHADOW_SUFFIX,
    Projection,
    check_identifier,
    create_schema,
    user_tables,
)

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
"""Called with the number of events applied so far."""


def shadow_name(projection: Projection) -> str:
    """The shadow schema of a projection."""
    return check_identifier(projection.name + SHADOW_SUFFIX)


async def _fresh_shadow(pool: asyncpg.Pool, projection: Projection) -> str:
    shadow = shadow_name(projection)
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{shadow}" CASCADE')
        await create_schema(conn, projection, shadow)
        # A new rebuild starts with no stream parked by an earlier one (ADR 0018); the events
        # that one held are closed with it.
        async with conn.transaction():
            consumers = [f"rebuild.{projection.name}", f"feed.{shadow}"]
            await conn.execute(
                "DELETE FROM eventkit.parked_streams WHERE consumer = ANY($1::text[])", consumers
            )
            await conn.execute(
                "UPDATE eventkit.dead_letters SET status = 'discarded', resolved_at = now(),"
                " resolved_by = 'eventkit:new-rebuild'"
                " WHERE consumer = ANY($1::text[]) AND status = 'held'",
                consumers,
            )
    return shadow


async def rebuild_from_store(
    pool: asyncpg.Pool,
    projection: Projection,
    stream_types: Sequence[str],
    *,
    progress: Progress | None = None,
    batch_size: int = 1000,
) -> int:
    """Rebuild the shadow of `projection` from this service's own store; returns events applied."""
    shadow = await _fresh_shadow(pool, projection)
    runner = FeedProjectionRunner(
        pool, projection, stream_types=stream_types, batch_size=batch_size, schema=shadow
    )
    total = 0
    while True:
        applied = await runner.catch_up_once()
        if applied is None:
            return total
        total += applied
        if progress is not None:
            progress(total)


Offsets = dict[tuple[str, int], int]
"""Next offset per (topic, partition): where a consumer has got to, or where to stop."""


async def live_offsets(conn: Conn, projection: Projection) -> Offsets:
    """The live projection's checkpoint: the next offset of every partition it has read."""
    rows = await conn.fetch(
        f'SELECT topic, kafka_partition, next_offset FROM "{check_identifier(projection.name)}"'
        "._checkpoint"
    )
    return {(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows}


async def _consume_into(
    conn: Conn,
    projection: Projection,
    schema: str,
    kafka: KafkaConnection | str,
    until: Offsets | None,
    *,
    progress: Progress | None = None,
    max_records: int = 1000,
) -> int:
    """Apply the projection's topics into `schema`, from its checkpoint up to `until` (default:
    the topics' current end), a transaction (or savepoint) per batch."""
    connection = kafka_connection(kafka)
    partitions = await topic_partitions(connection, projection.topics)
    if not partitions:
        return 0
    consumer = AIOKafkaConsumer(
        **connection.client_kwargs(), group_id=None, enable_auto_commit=False
    )
    total = 0
    try:
        await start_or_explain(consumer.start, connection)
        consumer.assign(partitions)
        end = await consumer.end_offsets(partitions)
        start = {
            (r["topic"], r["kafka_partition"]): r["next_offset"]
            for r in await conn.fetch(f'SELECT * FROM "{schema}"._checkpoint')
        }
        first = await consumer.beginning_offsets(partitions)
        stop_at, next_offset = {}, {}
        for tp in partitions:
            key = (tp.topic, tp.partition)
            stop_at[tp] = end[tp] if until is None else min(end[tp], until.get(key, 0))
            next_offset[tp] = start.get(key, first[tp])
            consumer.seek(tp, next_offset[tp])
        remaining = {tp for tp in partitions if next_offset[tp] < stop_at[tp]}
        while remaining:
            records = await consumer.getmany(*remaining, timeout_ms=500, max_records=max_records)
            batch = {}
            for tp, recs in records.items():
                if recs:
                    next_offset[tp] = max(next_offset[tp], recs[-1].offset + 1)
                wanted = [
                    Delivery.from_kafka(tp.topic, tp.partition, r.offset, r.value)
                    for r in recs
                    if r.offset < stop_at[tp]
                ]
                if wanted:
                    batch[(tp.topic, tp.partition)] = wanted
            if batch:
                name = f"rebuild.{projection.name}"
                outcome = await apply_batch(conn, projection, schema, name, batch)
                total += outcome.applied
                if progress is not None:
                    progress(total)
            remaining = {tp for tp in remaining if next_offset[tp] < stop_at[tp]}
        return total
    finally:
        await consumer.stop()


async def rebuild_from_kafka(
    pool: asyncpg.Pool,
    projection: Projection,
    bootstrap: KafkaConnection | str,
    *,
    until: Offsets | None = None,
    progress: Progress | None = None,
    max_records: int = 1000,
) -> int:
    """Rebuild the shadow from the beginning of the projection's topics up to `until` (by
    default their current end; `live_offsets` makes the shadow match the live projection)."""
    shadow = await _fresh_shadow(pool, projection)
    async with pool.acquire() as conn:
        return await _consume_into(
            conn,
            projection,
            shadow,
            bootstrap,
            until,
            progress=progress,
            max_records=max_records,
        )


async def compare_with_live(
    pool: asyncpg.Pool, projection: Projection, bootstrap: KafkaConnection | str, samples: int = 5
) -> Comparison:
    """Compare a shadow rebuilt from Kafka with the live projection at the same offsets.

    The live projection's checkpoint is locked for the comparison (its consumer waits, it does
    not fail), the shadow is brought up to exactly the live offsets, and then both are compared
    in the same transaction, so events arriving meanwhile cannot show up as differences.
    """
    live, shadow = check_identifier(projection.name), shadow_name(projection)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f'LOCK TABLE "{live}"._checkpoint IN EXCLUSIVE MODE')
        offsets = await live_offsets(conn, projection)
        await _consume_into(conn, projection, shadow, bootstrap, offsets)
        return await _compare(conn, live, shadow, samples)


async def drop_shadow(pool: asyncpg.Pool, projection: Projection) -> None:
    """Remove a shadow that is not going to be swapped in."""
    async with pool.acquire() as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{shadow_name(projection)}" CASCADE')


@dataclass
class TableDifference:
    """Rows of one table present on one side only (counted with multiplicity)."""

    table: str
    only_live: int
    only_shadow: int
    samples_live: list[dict[str, object]] = field(default_factory=list)
    samples_shadow: list[dict[str, object]] = field(default_factory=list)


@dataclass
class Comparison:
    """The outcome of comparing two schemas of the same projection."""

    tables: list[str]
    differences: list[TableDifference]

    @property
    def equal(self) -> bool:
        """True when every table holds the same rows on both sides."""
        return not self.differences


async def compare(pool: asyncpg.Pool, live: str, shadow: str, samples: int = 5) -> Comparison:
    """Compare every projection table of `live` with `shadow`, row for row."""
    async with pool.acquire() as conn:
        return await _compare(conn, live, shadow, samples)


async def _compare(conn: Conn, live: str, shadow: str, samples: int) -> Comparison:
    check_identifier(live)
    check_identifier(shadow)
    tables_live = await user_tables(conn, live)
    tables_shadow = await user_tables(conn, shadow)
    if tables_live != tables_shadow:
        missing = sorted(set(tables_live) ^ set(tables_shadow))
        return Comparison(
            tables_live,
            [TableDifference(t, int(t in tables_live), int(t in tables_shadow)) for t in missing],
        )
    differences = []
    for table in tables_live:
        a, b = f'"{live}"."{table}"', f'"{shadow}"."{table}"'
        only_a = await conn.fetch(f"SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}")
        only_b = await conn.fetch(f"SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}")
        if only_a or only_b:
            differences.append(
                TableDifference(
                    table,
                    len(only_a),
                    len(only_b),
                    [dict(r) for r in only_a[:samples]],
                    [dict(r) for r in only_b[:samples]],
                )
            )
    return Comparison(tables_live, differences)


async def swap(
    pool: asyncpg.Pool, projection: Projection, stream_types: Sequence[str] | None = None
) -> None:
    """Make the rebuilt shadow the live projection, atomically; the old live schema is dropped."""
    live, shadow = check_identifier(projection.name), shadow_name(projection)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f'LOCK TABLE "{live}"._checkpoint, "{live}"._feed_position IN ACCESS EXCLUSIVE MODE'
        )
        built_from_store = await conn.fetchval(f'SELECT count(*) FROM "{shadow}"._feed_position')
        if built_from_store and stream_types is not None:
            runner = FeedProjectionRunner(
                pool, projection, stream_types=stream_types, schema=shadow
            )
            while await runner.catch_up_once(conn) is not None:
                pass
        shadow_has_offsets = await conn.fetchval(f'SELECT count(*) FROM "{shadow}"._checkpoint')
        if not shadow_has_offsets:
            await conn.execute(
                f'INSERT INTO "{shadow}"._checkpoint SELECT * FROM "{live}"._checkpoint'
            )
        retired = check_identifier(projection.name + "__retired")
        await conn.execute(f'DROP SCHEMA IF EXISTS "{retired}" CASCADE')
        await conn.execute(f'ALTER SCHEMA "{live}" RENAME TO "{retired}"')
        await conn.execute(f'ALTER SCHEMA "{shadow}" RENAME TO "{live}"')
        await conn.execute(f'DROP SCHEMA "{retired}" CASCADE')
    log.info("projection swapped", extra={"projection": projection.name})
