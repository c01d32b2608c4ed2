"""`ops lag`: the outbox relay's unpublished events and their age, each projection's lag per
partition on a real Kafka topic (end offset − checkpoint, a partition without a checkpoint from
its beginning), open dead letters per consumer, `--max-lag` for alerts, relay lag only without
Kafka; bad input refused; each run recorded in the touched store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest
from ops import lag
from ops.cli import run

from devstack.endpoints import Endpoints
from eventkit.db import create_pool
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.kafka import TopicSpec, ensure_topics, idempotent_producer
from eventkit.operations import ProjectionSpec, recorded_actions
from eventkit.projection import create_schema
from eventkit.store import EventStore
from eventkit.testing import CountingProjection, unique_name

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor.system("test"))


@pytest.fixture
async def review_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database, min_size=1, max_size=4)
    yield p
    await p.close()


@pytest.fixture
async def setup(
    review_pool: asyncpg.Pool, stack: Endpoints
) -> tuple[ProjectionSpec, ProjectionSpec, str]:
    """A topic with 5 + 3 messages, a projection checkpointed at 2 on partition 0 only, one
    projection without a schema, a relay 2 events behind, and dead letters."""
    topic = unique_name("lag")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(topic, partitions=2)])
    producer = idempotent_producer(stack.kafka_bootstrap, "test-lag")
    await producer.start()
    try:
        for partition, count in ((0, 5), (1, 3)):
            for n in range(count):
                await producer.send_and_wait(topic, f"m{n}".encode(), partition=partition)
    finally:
        await producer.stop()
    projection = CountingProjection(unique_name("proj"), (topic,))
    async with review_pool.acquire() as conn:
        await create_schema(conn, projection, projection.name)
        await conn.execute(
            f'INSERT INTO "{projection.name}"._checkpoint (topic, kafka_partition, next_offset)'
            " VALUES ($1, 0, 2)",
            topic,
        )
    store = EventStore(review_pool)
    for n in range(3):
        await store.append("thing", f"s-{n}", 0, [NewEvent(event_type="T", payload={})], META)
    async with review_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO eventkit.relay_positions (relay_name, tx_id, seq, published)"
            " SELECT 'review', tx_id, seq, 1 FROM eventkit.events ORDER BY tx_id, seq LIMIT 1"
        )
        for offset, consumer, status in (
            (0, f"projection.{projection.name}", "open"),
            (1, f"projection.{projection.name}", "open"),
            (2, f"projection.{projection.name}", "discarded"),
            (3, "policy.something", "open"),
        ):
            await conn.execute(
                "INSERT INTO eventkit.dead_letters (consumer, topic, kafka_partition,"
                " kafka_offset, error_type, error, status) VALUES ($1, $2, 0, $3, 'E', 'e', $4)",
                consumer, topic, offset, status,
            )  # fmt: skip
    missing = CountingProjection(unique_name("gone"), (topic,))
    return ProjectionSpec(projection), ProjectionSpec(missing), topic


async def test_relay_and_consumer_lag(
    review_pool: asyncpg.Pool,
    stack: Endpoints,
    setup: tuple[ProjectionSpec, ProjectionSpec, str],
) -> None:
    spec, missing, topic = setup
    report = await lag.measure_lag(
        {"review": review_pool}, {"review": [spec, missing]}, stack.kafka_bootstrap
    )
    assert report.kafka == "measured"
    [service] = report.services
    [relay] = service.relays
    assert relay.relay == "review" and relay.pending == 2 and relay.published == 1
    assert relay.oldest_pending_age_s is not None and relay.oldest_pending_age_s >= 0
    live, gone = service.projections
    assert live.status == "ok" and live.open_dead_letters == 2 and live.consumer == spec.consumer
    offsets = [(p.topic, p.partition, p.end_offset, p.next_offset, p.lag) for p in live.partitions]
    assert offsets == [(topic, 0, 5, 2, 3), (topic, 1, 3, None, 3)]
    assert live.partitions[0].checkpoint_age_s is not None and live.lag == 6
    assert gone.status == "no_schema" and gone.open_dead_letters == 0
    assert service.other_dead_letters == {"policy.something": 1}
    assert report.max_lag() == 3
    assert "policy.something" in lag.render_table(report)

    blind = await lag.measure_lag({"review": review_pool}, {"review": [spec]}, None)
    assert blind.kafka == "not_configured" and blind.services[0].relays[0].pending == 2
    assert blind.services[0].projections[0].status == "kafka_unknown"
    assert "consumer lag unknown" in lag.render_table(blind)


@pytest.fixture
def review_command(
    database: str,
    setup: tuple[ProjectionSpec, ProjectionSpec, str],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[ProjectionSpec, ProjectionSpec, str]:
    """`ops lag` run as a command sees the review database with `setup`'s live projection."""
    spec = setup[0]

    async def source(service: str, pool: asyncpg.Pool) -> Sequence[ProjectionSpec]:
        return [spec] if service == "review" else []

    monkeypatch.setattr(lag, "projection_source", source)
    monkeypatch.setenv("OPS_PG_DSN_REVIEW", database)
    return setup


async def test_the_command(
    review_pool: asyncpg.Pool,
    review_command: tuple[ProjectionSpec, ProjectionSpec, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = review_command[2]

    async def actions() -> list[tuple[str, str]]:
        return [
            (e.payload["command"], e.payload["outcome"])
            for e in await recorded_actions(review_pool)
        ]

    assert await run(["--operator", "tester", "lag", "--service", "review", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [service] = doc["services"]
    assert service["relays"][0]["pending"] == 2
    assert [p["lag"] for p in service["projections"][0]["partitions"]] == [3, 3]
    assert await actions() == [("lag", "ok")]

    # each run records itself in the store: the relay now has 3 events to publish
    assert await run(["lag", "--service", "review", "--max-lag", "2"]) == 1
    captured = capsys.readouterr()
    assert f"{topic}[0]" in captured.out and "[lag]" in captured.err
    assert await run(["lag", "--service", "review", "--max-lag", "100"]) == 0
    assert "出站中继" in capsys.readouterr().out
    assert await run(["lag", "--service", "review", "--max-lag", "-1"]) == 2
    assert "[bad_max_lag]" in capsys.readouterr().err
    assert await run(["lag", "--service", "nope"]) == 2
    assert "[unknown_service]" in capsys.readouterr().err

    monkeypatch.setattr("ops.cli.kafka_connection", lambda: None)
    assert await run(["lag", "--service", "review", "--max-lag", "100"]) == 0
    out = capsys.readouterr().out
    assert "consumer lag unknown" in out and "review" in out

    assert await actions() == [  # newest first
        ("lag", "ok"), ("lag", "refused"), ("lag", "ok"), ("lag", "failed"), ("lag", "ok")
    ]  # fmt: skip


async def test_max_stall_tells_stuck_from_behind(
    review_pool: asyncpg.Pool,
    review_command: tuple[ProjectionSpec, ProjectionSpec, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, _, topic = review_command
    # behind, but both the checkpoint and the oldest unpublished event are fresh: not stuck
    async with review_pool.acquire() as conn:
        await conn.execute("UPDATE eventkit.relay_positions SET tx_id = pg_current_xact_id()")
    assert await run(["lag", "--service", "review", "--max-stall", "600"]) == 0
    capsys.readouterr()

    # the checkpoint of partition 0 (lag 3) has not moved for an hour: stuck
    async with review_pool.acquire() as conn:
        await conn.execute(
            f"UPDATE \"{spec.name}\"._checkpoint SET updated_at = now() - interval '1 hour'"
        )
    assert await run(["lag", "--service", "review", "--max-stall", "600", "--json"]) == 1
    err = capsys.readouterr().err
    assert f"{topic}[0]" in err and "checkpoint still for 3600s" in err
    assert f"{topic}[1]" not in err  # no checkpoint yet: its age is unknown, not an alarm

    # a relay whose oldest unpublished event is an hour old
    report = await lag.measure_lag({"review": review_pool}, {"review": [spec]}, None)
    assert report.stalls(600) == [s for s in report.stalls(600) if "relay" not in s]
    async with review_pool.acquire() as conn:
        await conn.execute("UPDATE eventkit.relay_positions SET tx_id = '1'::xid8, seq = 0")
        await conn.execute("UPDATE eventkit.events SET recorded_at = now() - interval '1 hour'")
    report = await lag.measure_lag({"review": review_pool}, {"review": [spec]}, None)
    [relay_stall] = report.stalls(600)
    assert "oldest unpublished event 3600s old" in relay_stall
    assert report.stalls(7200) == []

    for bad in ("0", "-5", "nan"):
        assert await run(["lag", "--service", "review", "--max-stall", bad]) == 2
        assert "[bad_max_stall]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # not a number: argparse's usage error
        await run(["lag", "--service", "review", "--max-stall", "soon"])
    assert usage.value.code == 2
