"""EndedSessions on a real database: an API and its worker prepare it at the same moment."""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg
import pytest

from servicekit.web import EndedSessions, Session

pytestmark = pytest.mark.integration


async def test_concurrent_creation_of_the_schema_does_not_fail(pool: asyncpg.Pool) -> None:
    async def prepare(schema: str, ready: asyncio.Barrier) -> None:
        async with pool.acquire() as conn:
            await ready.wait()
            await EndedSessions(None, schema=schema, max_age=0).create(conn)

    for _ in range(10):
        schema = f"web_{uuid.uuid4().hex[:10]}"
        ready = asyncio.Barrier(8)
        await asyncio.gather(*(prepare(schema, ready) for _ in range(8)))
    ended = EndedSessions(pool, schema=schema, max_age=600)
    session = Session(data={"user": "s"}, csrf_secret="c" * 32, issued_at=int(time.time()))
    assert not await ended.ended(session)
    await ended.end(session)
    assert await ended.ended(session)
