"""Projections: read models that live in their own PostgreSQL schema and can be rebuilt.

A projection's tables, its checkpoint (Kafka offsets or feed position) and its inbox (event ids
already applied) all live in one schema named after the projection. Every batch runs with
`search_path` set to that schema, so the projection's SQL uses unqualified table names and the very
same code can fill a shadow schema during a replay. Because the checkpoint travels with the
tables, swapping a rebuilt shadow in also swaps the position it was built to.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from typing import Protocol

from eventkit.db import Conn
from eventkit.envelope import EventEnvelope

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
SHADOW_SUFFIX = "__shadow"

_BOOKKEEPING_DDL = """
CREATE TABLE IF NOT EXISTS _checkpoint (
    topic           text NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset     bigint NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, kafka_partition)
);
CREATE TABLE IF NOT EXISTS _feed_position (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    tx_id      xid8 NOT NULL,
    seq        bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS _inbox (
    event_id   uuid PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""
BOOKKEEPING_TABLES = frozenset({"_checkpoint", "_feed_position", "_inbox"})


class Projection(Protocol):
    """A read model: its schema name, the topics it reads, its tables, and how an event applies."""

    @property
    def name(self) -> str:
        """Schema name: lowercase identifier, unique within the service's database."""
        ...

    @property
    def topics(self) -> tuple[str, ...]:
        """Kafka topics this projection consumes."""
        ...

    @property
    def ddl(self) -> str:
        """CREATE TABLE statements with unqualified names, safe to run repeatedly."""
        ...

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Apply one event inside the caller's transaction (search_path is set for you)."""
        ...


def check_identifier(name: str) -> str:
    """A schema name eventkit will quote into SQL: refuse anything but a plain identifier."""
    if not _IDENT.match(name):
        raise ValueError(f"not a valid projection name: {name!r}")
    return name


async def create_schema(conn: Conn, projection: Projection, schema: str) -> None:
    """Create the projection's schema, its bookkeeping tables and its own tables if missing."""
    check_identifier(schema)
    async with conn.transaction():
        # Two processes (an API and its worker) may create the same schema at once; IF NOT EXISTS
        # alone races on the catalog's unique index, so creation is serialised per schema.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"eventkit.schema:{schema}"
        )
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await use_schema(conn, schema)
        await conn.execute(_BOOKKEEPING_DDL)
        await conn.execute(projection.ddl)


async def use_schema(conn: Conn, schema: str) -> None:
    """Point unqualified names at `schema` for the rest of the current transaction."""
    check_identifier(schema)
    await conn.execute(f'SET LOCAL search_path TO "{schema}", public')


async def mark_applied(conn: Conn, envelope: EventEnvelope) -> bool:
    """Record the event in the inbox; False when it was applied before (a duplicate)."""
    inserted = await conn.fetchval(
        "INSERT INTO _inbox (event_id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING true",
        envelope.event_id,
    )
    return bool(inserted)


async def mark_all_applied(conn: Conn, event_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Record many events in the inbox in one statement; the ids that were not there before."""
    if not event_ids:
        return set()
    rows = await conn.fetch(
        "INSERT INTO _inbox (event_id) SELECT unnest($1::uuid[])"
        " ON CONFLICT DO NOTHING RETURNING event_id",
        list(event_ids),
    )
    return {r["event_id"] for r in rows}


async def user_tables(conn: Conn, schema: str) -> list[str]:
    """The projection's own tables in `schema` (bookkeeping excluded), sorted."""
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name",
        schema,
    )
    return [r["table_name"] for r in rows if r["table_name"] not in BOOKKEEPING_TABLES]
