"""Dead letters: poison events kept with their error, for ops to inspect, retry or discard."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from eventkit.consumer import Delivery, apply_deliveries
from eventkit.db import Conn
from eventkit.projection import Projection, use_schema

Status = Literal["open", "retried", "discarded"]


@dataclass(frozen=True)
class DeadLetter:
    """One event a consumer could not apply."""

    id: int
    consumer: str
    topic: str
    partition: int
    offset: int
    event_id: str | None
    event_type: str | None
    error_type: str
    error: str
    failed_at: datetime
    status: Status
    raw_value: bytes | None


class DeadLetterError(Exception):
    """A dead letter cannot be retried or discarded as asked (unknown, not open, unreadable)."""


_COLUMNS = """id, consumer, topic, kafka_partition, kafka_offset, event_id::text AS event_id,
    event_type, error_type, error, failed_at, status, raw_value"""


def _from_row(row: asyncpg.Record) -> DeadLetter:
    return DeadLetter(
        id=row["id"],
        consumer=row["consumer"],
        topic=row["topic"],
        partition=row["kafka_partition"],
        offset=row["kafka_offset"],
        event_id=row["event_id"],
        event_type=row["event_type"],
        error_type=row["error_type"],
        error=row["error"],
        failed_at=row["failed_at"],
        status=row["status"],
        raw_value=row["raw_value"],
    )


async def list_dead_letters(
    pool: asyncpg.Pool, *, consumer: str | None = None, status: Status | None = "open"
) -> list[DeadLetter]:
    """Dead letters, oldest first, optionally of one consumer and one status."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM eventkit.dead_letters"
            " WHERE ($1::text IS NULL OR consumer = $1) AND ($2::text IS NULL OR status = $2)"
            " ORDER BY id",
            consumer,
            status,
        )
    return [_from_row(r) for r in rows]


async def retry(pool: asyncpg.Pool, projection: Projection, letter_id: int, actor: str) -> bool:
    """Apply a dead letter again into the projection (after a fix); True when it applied now.

    The event goes through the projection's inbox, so an event that meanwhile arrived again and
    was applied is not applied twice. A failure leaves the letter open and raises.
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM eventkit.dead_letters WHERE id = $1 FOR UPDATE", letter_id
        )
        if row is None:
            raise DeadLetterError(f"no dead letter {letter_id}")
        letter = _from_row(row)
        if letter.status != "open":
            raise DeadLetterError(f"dead letter {letter_id} is {letter.status}, not open")
        delivery = Delivery.from_kafka(
            letter.topic, letter.partition, letter.offset, letter.raw_value
        )
        if delivery.envelope is None:
            raise DeadLetterError(
                f"dead letter {letter_id} is not a readable event: {delivery.parse_error}"
            )
        await use_schema(conn, projection.name)
        try:
            outcome = await apply_deliveries(
                conn, projection, letter.consumer, [delivery], isolate=False
            )
        except Exception as exc:
            cause = exc.__cause__ or exc
            raise DeadLetterError(f"retry of {letter_id} failed: {cause}") from cause
        await _resolve(conn, letter_id, "retried", actor)
        return outcome.applied == 1


async def discard(pool: asyncpg.Pool, letter_id: int, actor: str) -> None:
    """Close a dead letter without applying it (ops decided it must not apply)."""
    async with pool.acquire() as conn, conn.transaction():
        status = await conn.fetchval(
            "SELECT status FROM eventkit.dead_letters WHERE id = $1 FOR UPDATE", letter_id
        )
        if status is None:
            raise DeadLetterError(f"no dead letter {letter_id}")
        if status != "open":
            raise DeadLetterError(f"dead letter {letter_id} is {status}, not open")
        await _resolve(conn, letter_id, "discarded", actor)


async def _resolve(conn: Conn, letter_id: int, status: Status, actor: str) -> None:
    await conn.execute(
        "UPDATE eventkit.dead_letters SET status = $2, resolved_at = now(), resolved_by = $3"
        " WHERE id = $1",
        letter_id,
        status,
        actor,
    )
