"""Kafka over TLS with SCRAM-SHA-512 (as Strimzi runs it), on the local broker's SASL_SSL
listener: the whole path store → relay → topic → projection, and clear, bounded failures for a
wrong password and for a client that does not trust the broker's CA."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import asyncpg
import pytest
from aiokafka import TopicPartition

from devstack import Endpoints
from eventkit.consumer import KafkaProjectionRunner
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.kafka import (
    KafkaConnection,
    KafkaUnavailable,
    TopicsNotCreated,
    TopicSpec,
    connection_problem,
    ensure_topics,
    topic_partitions,
)
from eventkit.relay import OutboxRelay
from eventkit.store import EventStore
from eventkit.testing import CountingProjection, eventually, read_topic, unique_name

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor.system("test"))
FAIL_WITHIN = 15.0  # seconds: a refused client must give up, never hang


@pytest.fixture
def wrong_password(secured_kafka: KafkaConnection) -> KafkaConnection:
    return dataclasses.replace(secured_kafka, password="not-the-password-7f3a")


async def test_an_event_goes_from_the_store_through_the_relay_to_a_projection_over_sasl_ssl(
    pool: asyncpg.Pool,
    stack: Endpoints,
    secured_kafka: KafkaConnection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    topic = unique_name("secured")
    assert await ensure_topics(secured_kafka, [TopicSpec(topic, partitions=3)]) == [topic]
    assert len(await topic_partitions(secured_kafka, [topic])) == 3
    store = EventStore(pool)
    events = [NewEvent(event_type="Counted", payload={"n": n}) for n in range(3)]
    await store.append("thing", "s-1", 0, events, META)

    relay = OutboxRelay(pool, {"thing": topic}.get, name="secured", bootstrap=secured_kafka)
    projection = CountingProjection(unique_name("proj"), (topic,))
    runner = KafkaProjectionRunner(pool, projection, bootstrap=secured_kafka)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(runner.run(stop))]

    async def applied() -> bool:
        try:
            async with pool.acquire() as conn:
                rows = await conn.fetch(f'SELECT event_id, times FROM "{projection.name}".applied')
        except asyncpg.UndefinedTableError:
            return False
        return {r["event_id"]: r["times"] for r in rows} == {e.event_id: 1 for e in events}

    try:
        await eventually(applied, timeout=60)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    messages = await read_topic(secured_kafka, topic)
    assert sorted(m.envelope.event_id for m in messages if m.envelope) == sorted(
        e.event_id for e in events
    )
    # the same broker, seen through its PLAINTEXT listener: one log, two listeners
    assert len(await read_topic(stack.kafka_bootstrap, topic)) == 3
    assert await connection_problem(secured_kafka) is None
    assert secured_kafka.password and secured_kafka.password not in caplog.text


async def test_a_wrong_password_fails_fast_with_an_authentication_error(
    pool: asyncpg.Pool, wrong_password: KafkaConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match="authentication failed for user") as caught:
        await asyncio.wait_for(ensure_topics(wrong_password, [TopicSpec("never")]), FAIL_WITHIN)
    assert "SCRAM-SHA-512" in str(caught.value)
    assert time.monotonic() - started < FAIL_WITHIN

    # the worker's parts fail the same way (the supervisor logs it and restarts them)
    relay = OutboxRelay(pool, {"thing": "never"}.get, name="bad", bootstrap=wrong_password)
    with pytest.raises(KafkaUnavailable, match="authentication failed"):
        await asyncio.wait_for(relay.run(asyncio.Event()), FAIL_WITHIN)
    runner = KafkaProjectionRunner(
        pool, CountingProjection(unique_name("proj"), ("never",)), bootstrap=wrong_password
    )
    with pytest.raises(KafkaUnavailable, match="authentication failed"):
        await asyncio.wait_for(runner.run(asyncio.Event()), FAIL_WITHIN)
    assert wrong_password.password not in caplog.text
    assert wrong_password.password not in str(caught.value)


async def test_a_client_that_does_not_trust_the_ca_is_refused(
    secured_kafka: KafkaConnection,
) -> None:
    system_cas_only = dataclasses.replace(secured_kafka, ca_file=None)
    with pytest.raises(KafkaUnavailable, match="certificate verif") as caught:
        await asyncio.wait_for(topic_partitions(system_cas_only, ["any"]), FAIL_WITHIN)
    assert "TLS" in str(caught.value)


async def test_a_plaintext_client_on_the_secured_port_gives_up_in_bounded_time(
    secured_kafka: KafkaConnection,
) -> None:
    plaintext = KafkaConnection(secured_kafka.bootstrap)
    problem = await asyncio.wait_for(connection_problem(plaintext, timeout=3.0), FAIL_WITHIN)
    assert problem is not None and secured_kafka.bootstrap in problem


async def test_a_topic_the_brokers_refuse_to_create_is_an_error_not_a_success(
    stack: Endpoints,
) -> None:
    ok, bad = unique_name("created"), unique_name("refused")
    with pytest.raises(TopicsNotCreated) as refused:
        # one broker cannot hold three replicas: Kafka refuses that topic, creates the other
        await ensure_topics(
            stack.kafka_bootstrap,
            [TopicSpec(ok, partitions=1), TopicSpec(bad, partitions=1, replication_factor=3)],
        )
    assert refused.value.refusals == {bad: "InvalidReplicationFactorError"}
    assert bad in str(refused.value)
    assert await topic_partitions(stack.kafka_bootstrap, [ok, bad]) == [TopicPartition(ok, 0)]
    assert await ensure_topics(stack.kafka_bootstrap, [TopicSpec(ok, partitions=1)]) == []
