"""The commit-ordered feed under concurrent writers: nothing skipped, nothing twice."""

from __future__ import annotations

import asyncio
import random
import uuid

import asyncpg
import pytest

from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.feed import Position, read_feed
from eventkit.store import EventStore

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor.system("test"))


class Rollback(Exception):
    """Raised inside a writer's transaction to roll it back."""


async def test_reader_sees_exactly_the_committed_set_under_concurrent_writers(
    pool: asyncpg.Pool,
) -> None:
    store = EventStore(pool)
    rng = random.Random(20261128)
    committed: set[uuid.UUID] = set()
    rolled_back: set[uuid.UUID] = set()
    writers_done = asyncio.Event()
    long_tx_open = asyncio.Event()
    seen_while_long_tx_open: list[Position] = []
    long_xid: list[int] = []

    async def writer(index: int, transactions: int) -> None:
        version = 0
        for _ in range(transactions):
            events = [
                NewEvent(event_type="Tick", payload={"w": index}) for _ in range(rng.randint(1, 3))
            ]
            async with pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        await store.append("w", f"writer-{index}", version, events, META, conn=conn)
                        await asyncio.sleep(rng.uniform(0, 0.02))
                        if rng.random() < 0.05:
                            raise Rollback
                except Rollback:
                    rolled_back.update(e.event_id for e in events)
                    continue
            version += len(events)
            committed.update(e.event_id for e in events)

    async def long_writer() -> None:
        await asyncio.sleep(0.1)
        events = [NewEvent(event_type="Slow", payload={}) for _ in range(2)]
        async with pool.acquire() as conn, conn.transaction():
            await store.append("slow", "held", 0, events, META, conn=conn)
            long_xid.append(int(await conn.fetchval("SELECT pg_current_xact_id()::text")))
            long_tx_open.set()
            await asyncio.sleep(3.0)
            long_tx_open.clear()
        committed.update(e.event_id for e in events)

    delivered: list[uuid.UUID] = []
    positions: list[Position] = []

    async def reader() -> None:
        position = Position.ZERO
        idle_after_done = 0
        while idle_after_done < 3:
            async with pool.acquire() as conn:
                batch = await read_feed(conn, position, 50)
            for item in batch:
                delivered.append(item.envelope.event_id)
                positions.append(item.position)
                if long_tx_open.is_set():
                    seen_while_long_tx_open.append(item.position)
            if batch:
                position = batch[-1].position
            elif writers_done.is_set():
                idle_after_done += 1
            await asyncio.sleep(0.005)

    reader_task = asyncio.create_task(reader())
    await asyncio.gather(*(writer(i, 40) for i in range(16)), long_writer())
    writers_done.set()
    await asyncio.wait_for(reader_task, timeout=60)

    assert len(delivered) == len(set(delivered)), "an event was delivered twice"
    assert set(delivered) == committed, (
        f"missing {len(committed - set(delivered))}, extra {len(set(delivered) - committed)}"
    )
    assert not (set(delivered) & rolled_back)
    assert positions == sorted(positions)
    assert rolled_back, "the test should have rolled back some transactions"
    assert len(committed) > 16 * 40 * 0.9
    # while the transaction was held open, nothing written after it was delivered (delayed) ...
    assert seen_while_long_tx_open, "the reader kept delivering older commits meanwhile"
    assert all(p.tx_id < long_xid[0] for p in seen_while_long_tx_open)
    # ... and everything written after it arrived once it committed (not skipped)
    later = [p for p in positions if p.tx_id > long_xid[0]]
    assert len(later) > 100


async def test_feed_filters_by_stream_type(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    await store.append("a", "1", 0, [NewEvent(event_type="A", payload={})], META)
    await store.append("b", "1", 0, [NewEvent(event_type="B", payload={})], META)
    async with pool.acquire() as conn:
        only_b = await read_feed(conn, Position.ZERO, 10, ["b"])
        everything = await read_feed(conn, Position.ZERO, 10)
    assert [i.envelope.event_type for i in only_b] == ["B"]
    assert len(everything) == 2
    assert everything[0].position < everything[1].position
