"""The commit-ordered global feed of a service's event store, with no gaps.

Rows are ordered by (transaction id, seq). A reader only reads rows whose transaction id is below
pg_snapshot_xmin of its snapshot: every transaction below that has finished, and every transaction
still running or yet to write has an id at or above it, so nothing can later appear behind the
reader's position. A long-open writer delays the feed; it never makes a reader skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from eventkit.db import Conn
from eventkit.envelope import EventEnvelope
from eventkit.store import ENVELOPE_COLUMNS, envelope_from_row


@dataclass(frozen=True, order=True)
class Position:
    """A place in the feed: after the event with this (transaction id, seq)."""

    tx_id: int
    seq: int

    ZERO: ClassVar[Position]


Position.ZERO = Position(0, 0)


@dataclass(frozen=True)
class FeedEvent:
    """An event with its place in the feed."""

    position: Position
    envelope: EventEnvelope


_READ = f"""
SELECT tx_id::text::bigint AS tx, seq, {ENVELOPE_COLUMNS}
FROM eventkit.events
WHERE (tx_id, seq) > ($1::text::xid8, $2)
  AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
ORDER BY tx_id, seq
LIMIT $3
"""

_READ_TYPES = f"""
SELECT tx_id::text::bigint AS tx, seq, {ENVELOPE_COLUMNS}
FROM eventkit.events
WHERE (tx_id, seq) > ($1::text::xid8, $2)
  AND tx_id < (SELECT pg_snapshot_xmin(pg_current_snapshot()))
  AND stream_type = ANY($4::text[])
ORDER BY tx_id, seq
LIMIT $3
"""


async def read_feed(
    conn: Conn,
    after: Position,
    limit: int = 500,
    stream_types: Sequence[str] | None = None,
) -> list[FeedEvent]:
    """Up to `limit` committed events after `after`, in commit order."""
    if stream_types:
        rows = await conn.fetch(_READ_TYPES, str(after.tx_id), after.seq, limit, list(stream_types))
    else:
        rows = await conn.fetch(_READ, str(after.tx_id), after.seq, limit)
    return [FeedEvent(Position(r["tx"], r["seq"]), envelope_from_row(r)) for r in rows]


async def approximate_lag(conn: Conn, after: Position) -> int:
    """Roughly how many events were stored after `after`: O(1), from the seq generator.

    Rolled-back appends leave holes in seq, so this over-counts a little; it is for dashboards.
    """
    last = await conn.fetchval(
        "SELECT last_value FROM pg_sequences"
        " WHERE schemaname = 'eventkit' AND sequencename = 'events_seq_seq'"
    )
    return max(int(last or 0) - after.seq, 0)
