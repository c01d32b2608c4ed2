"""Event store: append with optimistic concurrency, load streams, snapshots."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from eventkit import metrics
from eventkit.db import Conn, dumps
from eventkit.envelope import (
    EventEnvelope,
    Metadata,
    NewEvent,
    trusted_actor,
    trusted_envelope,
)
from eventkit.errors import ConcurrencyError, DuplicateEventError

# One statement, so an append outside an explicit transaction is one round trip and commits
# alone; inside a caller's transaction it joins it. The WHERE makes a stale or future
# expected_version insert nothing; the unique index makes two racing writers collide.
_APPEND = """
INSERT INTO eventkit.events (
    event_id, stream_type, stream_id, stream_version, event_type, schema_version,
    occurred_at, correlation_id, causation_id, actor_kind, actor_id, payload)
SELECT e.event_id, $1, $2, $3 + e.ord::int, e.event_type, e.schema_version,
       e.occurred_at, $4, $5, $6, $7, e.payload::jsonb
FROM unnest($8::uuid[], $9::text[], $10::int[], $11::timestamptz[], $12::text[])
     WITH ORDINALITY AS e(event_id, event_type, schema_version, occurred_at, payload, ord)
WHERE (SELECT coalesce(max(stream_version), 0) FROM eventkit.events
       WHERE stream_type = $1 AND stream_id = $2) = $3
RETURNING recorded_at
"""

# The common case, one event per command, without the array round trip through unnest.
_APPEND_ONE = """
INSERT INTO eventkit.events (
    event_id, stream_type, stream_id, stream_version, event_type, schema_version,
    occurred_at, correlation_id, causation_id, actor_kind, actor_id, payload)
SELECT $8, $1, $2, $3 + 1, $9, $10, $11, $4, $5, $6, $7, $12::text::jsonb
WHERE (SELECT coalesce(max(stream_version), 0) FROM eventkit.events
       WHERE stream_type = $1 AND stream_id = $2) = $3
RETURNING recorded_at
"""

ENVELOPE_COLUMNS = """
    event_id, event_type, schema_version, stream_type, stream_id, stream_version,
    occurred_at, recorded_at, correlation_id, causation_id, actor_kind, actor_id, payload
"""

_LOAD = f"""
SELECT {ENVELOPE_COLUMNS} FROM eventkit.events
WHERE stream_type = $1 AND stream_id = $2 AND stream_version > $3
ORDER BY stream_version
"""


def envelope_from_row(row: asyncpg.Record) -> EventEnvelope:
    """Build an envelope from a row of eventkit.events; rows are trusted, so no re-validation."""
    return trusted_envelope(
        event_id=row["event_id"],
        event_type=row["event_type"],
        schema_version=row["schema_version"],
        stream_type=row["stream_type"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        actor=trusted_actor(row["actor_kind"], row["actor_id"]),
        payload=row["payload"],
    )


@dataclass(frozen=True)
class Snapshot:
    """Folded aggregate state at a stream version; `state_version` is the state schema's version."""

    stream_version: int
    state_version: int
    state: dict[str, Any]


class EventStore:
    """Appends to and reads from one service's event store."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def append(
        self,
        stream_type: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: Metadata,
        *,
        conn: Conn | None = None,
    ) -> list[EventEnvelope]:
        """Append events after `expected_version` (0 for a new stream), atomically.

        Raises ConcurrencyError when the stream is not at `expected_version`, and
        DuplicateEventError when one of the event ids is already stored. With `conn` the append
        joins that connection's transaction (so it commits or rolls back with the caller's work).
        """
        if not events:
            return []
        if expected_version < 0:
            raise ValueError("expected_version must be >= 0")
        head = (
            stream_type,
            stream_id,
            expected_version,
            metadata.correlation_id,
            metadata.causation_id,
            metadata.actor.kind,
            metadata.actor.id,
        )
        if len(events) == 1:
            (one,) = events
            sql = _APPEND_ONE
            args: tuple[Any, ...] = (
                *head,
                one.event_id,
                one.event_type,
                one.schema_version,
                one.occurred_at,
                dumps(one.payload),
            )
        else:
            sql = _APPEND
            args = (
                *head,
                [e.event_id for e in events],
                [e.event_type for e in events],
                [e.schema_version for e in events],
                [e.occurred_at for e in events],
                [dumps(e.payload) for e in events],
            )
        started = time.perf_counter()
        try:
            if conn is None:
                async with self._pool.acquire() as own:
                    rows = await own.fetch(sql, *args)
            else:
                rows = await conn.fetch(sql, *args)
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "events_pkey":
                raise DuplicateEventError(str(exc)) from exc
            raise ConcurrencyError(stream_type, stream_id, expected_version) from exc
        if not rows:
            raise ConcurrencyError(stream_type, stream_id, expected_version)
        metrics.APPEND_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_APPENDED.inc(len(events))
        return [
            trusted_envelope(
                event_id=e.event_id,
                event_type=e.event_type,
                schema_version=e.schema_version,
                stream_type=stream_type,
                stream_id=stream_id,
                stream_version=expected_version + i + 1,
                occurred_at=e.occurred_at,
                recorded_at=rows[i]["recorded_at"],
                correlation_id=metadata.correlation_id,
                causation_id=metadata.causation_id,
                actor=metadata.actor,
                payload=e.payload,
            )
            for i, e in enumerate(events)
        ]

    async def load(
        self,
        stream_type: str,
        stream_id: str,
        *,
        after_version: int = 0,
        conn: Conn | None = None,
    ) -> list[EventEnvelope]:
        """The stream's events after `after_version`, in order (empty for an unknown stream)."""
        if conn is None:
            async with self._pool.acquire() as own:
                rows = await own.fetch(_LOAD, stream_type, stream_id, after_version)
        else:
            rows = await conn.fetch(_LOAD, stream_type, stream_id, after_version)
        return [envelope_from_row(r) for r in rows]

    async def version(self, stream_type: str, stream_id: str, *, conn: Conn | None = None) -> int:
        """The stream's current version: its last event's number, 0 for an unknown stream."""
        query = (
            "SELECT coalesce(max(stream_version), 0) FROM eventkit.events"
            " WHERE stream_type = $1 AND stream_id = $2"
        )
        if conn is None:
            async with self._pool.acquire() as own:
                value = await own.fetchval(query, stream_type, stream_id)
        else:
            value = await conn.fetchval(query, stream_type, stream_id)
        return int(value)

    async def event(self, event_id: uuid.UUID) -> EventEnvelope | None:
        """One event by id."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT {ENVELOPE_COLUMNS} FROM eventkit.events WHERE event_id = $1", event_id
            )
        return None if row is None else envelope_from_row(row)

    async def save_snapshot(self, stream_type: str, stream_id: str, snapshot: Snapshot) -> None:
        """Keep the newest snapshot of a stream (an older one never replaces a newer one)."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                """
                INSERT INTO eventkit.snapshots
                    (stream_type, stream_id, stream_version, state_version, state)
                VALUES ($1, $2, $3, $4, $5::jsonb)
                ON CONFLICT (stream_type, stream_id) DO UPDATE
                SET stream_version = excluded.stream_version,
                    state_version = excluded.state_version,
                    state = excluded.state, taken_at = now()
                WHERE eventkit.snapshots.stream_version < excluded.stream_version
                """,
                stream_type,
                stream_id,
                snapshot.stream_version,
                snapshot.state_version,
                snapshot.state,
            )

    async def load_snapshot(self, stream_type: str, stream_id: str) -> Snapshot | None:
        """The newest snapshot of a stream, if any."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT stream_version, state_version, state FROM eventkit.snapshots"
                " WHERE stream_type = $1 AND stream_id = $2",
                stream_type,
                stream_id,
            )
        if row is None:
            return None
        return Snapshot(row["stream_version"], row["state_version"], row["state"])
