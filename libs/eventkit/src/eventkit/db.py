"""asyncpg pools with eventkit's type codecs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

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
            typename, encoder=dumps, decoder=json.loads, schema="pg_catalog", format="text"
        )


def dumps(value: Any) -> str:
    """Compact JSON text, UTF-8 kept as is."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: Any
) -> asyncpg.Pool:
    """A pool whose connections speak JSON for json/jsonb columns."""
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, **kwargs
    )
    assert pool is not None
    return pool
