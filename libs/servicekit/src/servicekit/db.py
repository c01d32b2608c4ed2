"""The database pool of an API: it fails fast while PostgreSQL is away, and comes back by itself.

`eventkit.db.create_pool` makes the pool (json/jsonb codecs, no session reset on release); an API
wants two more things from it, so that a request while the database is down or restarting is a
quick 503 (`servicekit.errors`) rather than a request that hangs:

- a connect timeout (asyncpg's default is 60 s): a connection attempt to a database that does
  not answer gives up after `connect_timeout`;
- a default `acquire` timeout (asyncpg waits for ever): every `pool.acquire()`, and the pool's
  own `fetch`/`fetchval`/`execute`, gives up after `acquire_timeout` (TimeoutError: transient).

Connections that the database dropped are replaced on the next acquire, and asyncpg restores the
pool's floor (`min_size`) in the background; nothing has to be restarted when PostgreSQL returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import asyncpg

from eventkit.db import init_connection

if TYPE_CHECKING:
    from asyncpg.pool import PoolAcquireContext

    from eventkit.db import Conn

    _Pool = asyncpg.Pool[asyncpg.Record]
else:
    _Pool = asyncpg.Pool

__all__ = ["ACQUIRE_TIMEOUT", "CONNECT_TIMEOUT", "ServicePool", "service_pool"]

CONNECT_TIMEOUT = 5.0  # seconds
ACQUIRE_TIMEOUT = 10.0  # seconds: waiting for a free connection, and connecting it


async def _keep_session(conn: Conn) -> None:
    """Release without asyncpg's reset round trip, as `eventkit.db.create_pool` does."""


class ServicePool(_Pool):
    """An asyncpg pool whose `acquire()` has a default timeout."""

    def __init__(self, *args: Any, acquire_timeout: float = ACQUIRE_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout = acquire_timeout

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext[asyncpg.Record]:
        """A connection from the pool, waiting at most `timeout` (default `acquire_timeout`)."""
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)


async def service_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT,
    acquire_timeout: float = ACQUIRE_TIMEOUT,
    **kwargs: Any,
) -> asyncpg.Pool:
    """A pool like `eventkit.db.create_pool`'s (JSON codecs, no reset on release: leave no
    session state behind), with a connect timeout and a default acquire timeout. Opening it
    connects `min_size` connections: it fails (transiently) while the database is away."""
    kwargs.setdefault("reset", _keep_session)
    pool = ServicePool(
        dsn,
        acquire_timeout=acquire_timeout,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        init=init_connection,
        loop=None,
        timeout=connect_timeout,
        **kwargs,
    )
    try:
        await pool
    except BaseException:
        pool.terminate()
        raise
    return pool
