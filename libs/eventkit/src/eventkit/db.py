"""asyncpg pools with eventkit's type codecs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import orjson

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Conn: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    """A connection, whether owned or borrowed from a pool."""
else:
    Conn = asyncpg.Connection


async def init_connection(conn: Conn) -> None:
    """Decode json/jsonb to Python values and encode Python values to JSON text."""
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=dumps, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


def dumps(value: Any) -> str:
    """Compact JSON text, UTF-8 kept as is."""
    return orjson.dumps(value).decode()


async def _keep_session(conn: Conn) -> None:
    """Release without asyncpg's reset round trip (open transactions are still rolled back)."""


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    reset_session: bool = False,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool whose connections speak JSON for json/jsonb columns.

    By default a released connection is not reset (asyncpg would spend a round trip on
    `RESET ALL; UNLISTEN *; pg_advisory_unlock_all()` at every release). Code on these pools
    must therefore leave no session state behind: `SET LOCAL` instead of `SET`, transaction-level
    advisory locks, no LISTEN. Pass `reset_session=True` for a pool that needs the full reset.
    """
    if not reset_session:
        kwargs.setdefault("reset", _keep_session)
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, **kwargs
    )
    assert pool is not None
    return pool
