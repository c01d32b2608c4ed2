"""Event store against a real PostgreSQL: append, optimistic concurrency, load, snapshots."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.errors import ConcurrencyError, DuplicateEventError
from eventkit.store import EventStore, Snapshot

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor(kind="candidate", id="c-1"))


def ev(n: int, kind: str = "Thing") -> NewEvent:
    return NewEvent(event_type=kind, payload={"n": n, "名称": "免考"})


async def test_append_and_load_round_trip(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    written = await store.append("app", "s-1", 0, [ev(1), ev(2)], META)
    assert [e.stream_version for e in written] == [1, 2]
    more = await store.append("app", "s-1", 2, [ev(3)], META)
    assert more[0].stream_version == 3
    loaded = await store.load("app", "s-1")
    assert [e.payload["n"] for e in loaded] == [1, 2, 3]
    assert loaded[0].payload["名称"] == "免考"
    assert loaded[0].actor == META.actor
    assert loaded[0].correlation_id == META.correlation_id
    assert loaded[2].recorded_at is not None
    assert [e.event_id for e in loaded] == [e.event_id for e in [*written, *more]]
    assert await store.load("app", "s-1", after_version=2) == loaded[2:]
    assert await store.load("app", "missing") == []


async def test_stale_and_future_expected_versions_are_refused(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    await store.append("app", "s-1", 0, [ev(1), ev(2)], META)
    with pytest.raises(ConcurrencyError):
        await store.append("app", "s-1", 1, [ev(3)], META)
    with pytest.raises(ConcurrencyError):
        await store.append("app", "s-1", 5, [ev(3)], META)
    with pytest.raises(ConcurrencyError):
        await store.append("app", "s-1", 0, [ev(3)], META)
    assert len(await store.load("app", "s-1")) == 2


async def test_same_stream_id_in_two_stream_types_is_two_streams(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    await store.append("a", "x", 0, [ev(1)], META)
    await store.append("b", "x", 0, [ev(1)], META)
    assert len(await store.load("a", "x")) == 1


async def test_two_concurrent_appends_exactly_one_wins(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    head = 0
    for round_ in range(25):
        batch_a = [ev(round_ * 10 + 1), ev(round_ * 10 + 2)]
        batch_b = [ev(round_ * 10 + 5), ev(round_ * 10 + 6)]
        results = await asyncio.gather(
            store.append("app", "race", head, batch_a, META),
            store.append("app", "race", head, batch_b, META),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1, results
        assert len(losers) == 1 and isinstance(losers[0], ConcurrencyError), results
        loaded = await store.load("app", "race")
        assert len(loaded) == head + 2
        won = batch_a if results[0] is winners[0] else batch_b
        assert [e.event_id for e in loaded[head:]] == [e.event_id for e in won]
        head += 2


async def test_duplicate_event_id_is_refused_without_half_write(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    first = ev(1)
    await store.append("app", "s", 0, [first], META)
    with pytest.raises(DuplicateEventError):
        await store.append("app", "other", 0, [ev(2), first], META)
    assert await store.load("app", "other") == []


async def test_append_joins_the_callers_transaction(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)

    async def append_then_fail() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await store.append("app", "tx", 0, [ev(1)], META, conn=conn)
            raise RuntimeError("handler failed after the append")

    with pytest.raises(RuntimeError):
        await append_then_fail()
    assert await store.load("app", "tx") == []


async def test_snapshots_keep_the_newest(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    assert await store.load_snapshot("app", "s") is None
    await store.save_snapshot("app", "s", Snapshot(10, 1, {"count": 10}))
    await store.save_snapshot("app", "s", Snapshot(5, 1, {"count": 5}))
    snap = await store.load_snapshot("app", "s")
    assert snap == Snapshot(10, 1, {"count": 10})


async def test_event_by_id(pool: asyncpg.Pool) -> None:
    store = EventStore(pool)
    [written] = await store.append("app", "s", 0, [ev(1)], META)
    assert await store.event(written.event_id) == written
    assert await store.event(uuid.uuid4()) is None
