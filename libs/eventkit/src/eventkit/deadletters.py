"""Dead letters: poison events kept with their error, for ops to inspect, retry or discard.

A permanent failure of an event parks its stream for that consumer (ADR 0018): the letter is the
stream's head (status 'open'), and the stream's later events reaching that consumer are held
behind it, in order (status 'held', `held_by` = the head, error type `StreamParked`). Held
letters are not errors and cannot be retried or discarded on their own:

- `retry` of the head applies it (through the inbox: exactly once) and then the held events of
  its stream in the order they arrived, each exactly once; when all applied, the stream is
  unparked. When one of them fails permanently, the stream stays parked at that one: it becomes
  the open head (with its error), the rest stay held behind it.
- `discard` of a head with held events is refused unless `apply_held=True`: then the head is
  closed without applying it and the held events are applied as after a retry. A head with
  nothing held behind it is simply discarded, and its stream unparked.

A transient failure during a retry or discard (a dropped connection, a deadlock, a timeout)
rolls everything back and raises `RetryLater`: nothing changed, try again.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from eventkit.consumer import Delivery
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope
from eventkit.projection import Projection, mark_applied, use_schema
from eventkit.transient import describe, is_transient

Status = Literal["open", "held", "retried", "discarded"]


@dataclass(frozen=True)
class DeadLetter:
    """One event a consumer could not apply, or held behind one (status 'held')."""

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
    stream_type: str | None = None
    stream_id: str | None = None
    held_by: int | None = None  # a held letter: the head letter its stream waits for
    parks_stream: bool = False  # an open letter its stream is parked behind


class DeadLetterError(Exception):
    """A dead letter cannot be retried or discarded as asked (unknown, not open, unreadable)."""


class RetryLater(DeadLetterError):
    """A transient failure (database or connection) stopped the retry; nothing changed."""


@dataclass(frozen=True)
class RetryOutcome:
    """What a retry (or a discard with `apply_held`) did."""

    applied: bool  # the letter's own event applied now (False: it had been applied before)
    held_applied: int = 0  # held events of its stream applied now
    held_duplicates: int = 0  # held events that had been applied before (inbox)
    parked_at: int | None = None  # the stream is still parked, behind this letter
    unparked: bool = False  # the stream was parked and is no longer


_COLUMNS = """d.id, d.consumer, d.topic, d.kafka_partition, d.kafka_offset,
    d.event_id::text AS event_id, d.event_type, d.error_type, d.error, d.failed_at, d.status,
    d.raw_value, d.stream_type, d.stream_id, d.held_by,
    EXISTS (SELECT 1 FROM eventkit.parked_streams p WHERE p.first_dead_letter_id = d.id)
        AS parks_stream"""


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
        stream_type=row["stream_type"],
        stream_id=row["stream_id"],
        held_by=row["held_by"],
        parks_stream=row["parks_stream"],
    )


async def list_dead_letters(
    pool: asyncpg.Pool,
    *,
    consumer: str | None = None,
    status: Status | Literal["unresolved"] | None = "open",
) -> list[DeadLetter]:
    """Dead letters, oldest first, optionally of one consumer and one status ('unresolved':
    open and held; None: all)."""
    statuses: list[str] | None
    if status is None:
        statuses = None
    elif status == "unresolved":
        statuses = ["open", "held"]
    else:
        statuses = [status]
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {_COLUMNS} FROM eventkit.dead_letters d"
            " WHERE ($1::text IS NULL OR d.consumer = $1)"
            " AND ($2::text[] IS NULL OR d.status = ANY($2::text[]))"
            " ORDER BY d.id",
            consumer,
            statuses,
        )
    return [_from_row(r) for r in rows]


async def parked_streams(pool: asyncpg.Pool, consumer: str | None = None) -> list[ParkedStream]:
    """The streams parked behind a dead letter, oldest first, with how many events each holds."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT p.consumer, p.stream_type, p.stream_id, p.parked_at, p.first_dead_letter_id,"
            " (SELECT count(*) FROM eventkit.dead_letters d"
            "   WHERE d.held_by = p.first_dead_letter_id AND d.status = 'held') AS held"
            " FROM eventkit.parked_streams p WHERE ($1::text IS NULL OR p.consumer = $1)"
            " ORDER BY p.parked_at, p.first_dead_letter_id",
            consumer,
        )
    return [
        ParkedStream(
            r["consumer"], r["stream_type"], r["stream_id"], r["parked_at"],
            r["first_dead_letter_id"], r["held"],
        )
        for r in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class ParkedStream:
    """A stream one consumer applies nothing more of until its head letter is resolved."""

    consumer: str
    stream_type: str
    stream_id: str
    parked_at: datetime
    head: int  # the dead letter it is parked behind
    held: int  # events held behind it


async def retry(pool: asyncpg.Pool, projection: Projection, letter_id: int, actor: str) -> bool:
    """Apply a dead letter again into the projection (after a fix); True when it applied now.

    The event goes through the projection's inbox, so an event that meanwhile arrived again and
    was applied is not applied twice. Then the events held behind it apply (`retry_letter`). A
    failure of the letter itself leaves it open and raises.
    """
    return (await retry_letter(pool, projection, letter_id, actor)).applied


async def retry_letter(
    pool: asyncpg.Pool, projection: Projection, letter_id: int, actor: str
) -> RetryOutcome:
    """`retry`, saying what happened to the events held behind the letter too."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            letter = await _lock_open(conn, letter_id)
            await use_schema(conn, projection.name)
            try:
                applied = await _apply_one(conn, projection, _envelope_of(letter))
            except Exception as exc:
                if is_transient(exc):
                    raise
                raise DeadLetterError(f"retry of {letter_id} failed: {exc}") from exc
            await _resolve(conn, letter_id, "retried", actor)
            rest = await _release_held(conn, projection, letter, actor)
            return RetryOutcome(applied, *rest)
    except DeadLetterError:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise RetryLater(
                f"retry of {letter_id} met a transient failure ({describe(exc)}): nothing"
                " changed, try again"
            ) from exc
        raise


async def discard(
    pool: asyncpg.Pool,
    letter_id: int,
    actor: str,
    *,
    projection: Projection | None = None,
    apply_held: bool = False,
) -> RetryOutcome | None:
    """Close a dead letter without applying it (ops decided it must not apply).

    A head letter with events held behind it is refused unless `apply_held` (with the
    `projection` to apply them into): then the held events apply as after a retry. Returns what
    happened to the held events (None when the letter parked no stream)."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            letter = await _lock_open(conn, letter_id, readable=False)
            held = await conn.fetchval(
                "SELECT count(*) FROM eventkit.dead_letters WHERE held_by = $1 AND status = 'held'",
                letter_id,
            )
            if held and not apply_held:
                raise DeadLetterError(
                    f"dead letter {letter_id} holds {held} later event(s) of stream"
                    f" {letter.stream_type}/{letter.stream_id}; retry it, or discard it"
                    " and apply them (--apply-held)"
                )
            if held and projection is None:
                raise DeadLetterError("applying the held events needs the projection")
            await _resolve(conn, letter_id, "discarded", actor)
            if not letter.parks_stream:
                return None
            if projection is not None:
                await use_schema(conn, projection.name)
            rest = await _release_held(conn, projection, letter, actor)
            return RetryOutcome(False, *rest)
    except DeadLetterError:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise RetryLater(
                f"discard of {letter_id} met a transient failure ({describe(exc)}): nothing"
                " changed, try again"
            ) from exc
        raise


async def _lock_open(conn: Conn, letter_id: int, *, readable: bool = True) -> DeadLetter:
    row = await conn.fetchrow(
        # NO KEY UPDATE: a consumer holding another event behind this letter (its foreign key
        # takes KEY SHARE) is not blocked by it, so the two cannot deadlock on the letter.
        f"SELECT {_COLUMNS} FROM eventkit.dead_letters d WHERE d.id = $1 FOR NO KEY UPDATE",
        letter_id,
    )
    if row is None:
        raise DeadLetterError(f"no dead letter {letter_id}")
    letter = _from_row(row)
    if letter.status == "held":
        raise DeadLetterError(
            f"dead letter {letter_id} is held behind #{letter.held_by} (its stream is parked"
            f" there): retry or discard #{letter.held_by}"
        )
    if letter.status != "open":
        raise DeadLetterError(f"dead letter {letter_id} is {letter.status}, not open")
    if readable:
        _envelope_of(letter)
    return letter


def _envelope_of(letter: DeadLetter) -> EventEnvelope:
    delivery = Delivery.from_kafka(letter.topic, letter.partition, letter.offset, letter.raw_value)
    if delivery.envelope is None:
        raise DeadLetterError(
            f"dead letter {letter.id} is not a readable event: {delivery.parse_error}"
        )
    return delivery.envelope


async def _release_held(
    conn: Conn,
    projection: Projection | None,
    head: DeadLetter,
    actor: str,
) -> tuple[int, int, int | None, bool]:
    """Apply the events held behind `head`, in order; unpark its stream when all applied.

    Returns (applied, duplicates, the letter the stream is still parked at, unparked)."""
    parked = await conn.fetchrow(
        "SELECT consumer, stream_type, stream_id FROM eventkit.parked_streams"
        " WHERE first_dead_letter_id = $1 FOR UPDATE",
        head.id,
    )
    if parked is None:
        return 0, 0, None, False
    # The parked row is locked: a consumer batch that holds more events of this stream either
    # committed before (they are read here) or waits and then finds the stream unparked.
    held = [
        _from_row(r)
        for r in await conn.fetch(
            f"SELECT {_COLUMNS} FROM eventkit.dead_letters d"
            " WHERE d.held_by = $1 AND d.status = 'held' ORDER BY d.id FOR NO KEY UPDATE",
            head.id,
        )
    ]
    applied = duplicates = 0
    for number, letter in enumerate(held):
        try:
            assert projection is not None
            if await _apply_one(conn, projection, _envelope_of(letter)):
                applied += 1
            else:
                duplicates += 1
        except Exception as exc:
            if is_transient(exc):
                raise
            # the stream stays parked, now at this one: its error, the rest behind it
            detail = "".join(traceback.format_exception(exc))[-8000:]
            await conn.execute(
                "UPDATE eventkit.dead_letters SET status = 'open', held_by = NULL,"
                " error_type = $2, error = $3, failed_at = now() WHERE id = $1",
                letter.id,
                type(exc).__name__,
                detail,
            )
            await conn.execute(
                "UPDATE eventkit.dead_letters SET held_by = $2 WHERE id = ANY($1::bigint[])",
                [later.id for later in held[number + 1 :]],
                letter.id,
            )
            await conn.execute(
                "UPDATE eventkit.parked_streams SET first_dead_letter_id = $2, parked_at = now()"
                " WHERE first_dead_letter_id = $1",
                head.id,
                letter.id,
            )
            return applied, duplicates, letter.id, False
        await _resolve(conn, letter.id, "retried", actor)
    await conn.execute(
        "DELETE FROM eventkit.parked_streams WHERE first_dead_letter_id = $1", head.id
    )
    return applied, duplicates, None, True


async def _apply_one(conn: Conn, projection: Projection, envelope: EventEnvelope) -> bool:
    """Apply one event through the inbox, in a savepoint; False when it was applied before."""
    async with conn.transaction():
        if not await mark_applied(conn, envelope):
            return False
        await projection.apply(conn, envelope)
    return True


async def _resolve(conn: Conn, letter_id: int, status: Status, actor: str) -> None:
    await conn.execute(
        "UPDATE eventkit.dead_letters SET status = $2, resolved_at = now(), resolved_by = $3"
        " WHERE id = $1",
        letter_id,
        status,
        actor,
    )
