"""The manifests' Kafka ACLs, granted on a real broker and exercised by eventkit's real clients.

The local broker authorizes like Strimzi's `simple` authorization (devstack: `StandardAuthorizer`)
and has a SCRAM user named after each KafkaUser of the prod overlay. For each service, the ACLs
its KafkaUser carries are granted to that user, on topics and groups renamed with a prefix of
this run (the contract topics are shared with other tests); then, logged in as the service over
TLS and SCRAM, as in production:

- its worker's start (`ensure_topics` of what it publishes and reads) creates nothing;
- its outbox relay publishes to each topic it owns;
- a projection consumer per projection reads each of its topics in the projection's group;
- and it is refused everything else: another service's topic, another group, creating a topic.

The ops user reads every topic with manual offsets and may write none.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    TopicAuthorizationFailedError,
)
from aiokafka.protocol.admin import CreateAclsRequest

from devstack.endpoints import Endpoints
from devstack.kafka import KAFKA_DEPLOYMENT_USERS, KAFKA_DEV_PASSWORD
from eventkit.consumer import KafkaProjectionRunner
from eventkit.envelope import Actor, EventEnvelope, Metadata, NewEvent
from eventkit.kafka import (
    KafkaConnection,
    TopicsNotCreated,
    TopicSpec,
    ensure_topics,
    idempotent_producer,
)
from eventkit.operations import discover, service_key
from eventkit.relay import OutboxRelay
from eventkit.store import EventStore
from eventkit.testing import CountingProjection, eventually, publish, read_topic

from .test_deploy_manifests import DECLARED_TOPICS, by_name, render

pytestmark = pytest.mark.integration

# Kafka's enums (org.apache.kafka.common.acl / resource)
RESOURCE = {"topic": 2, "group": 3, "cluster": 4}
OPERATION = {"Read": 3, "Write": 4, "Create": 5, "Describe": 8, "IdempotentWrite": 12}
LITERAL, ALLOW = 3, 3
META = Metadata(actor=Actor.system("acl-check"))
REFUSED_WITHIN = 30.0


@dataclasses.dataclass(frozen=True)
class Renamed:
    """The run's own names for the manifests' topics and groups."""

    prefix: str

    def topic(self, name: str) -> str:
        return name if name == "*" else f"{self.prefix}.{name}"

    def group(self, name: str) -> str:
        return f"projection.{self.prefix}_{name.removeprefix('projection.')}"

    def projection(self, name: str) -> str:
        return f"{self.prefix}_{name}"


@pytest.fixture(scope="module")
def users() -> dict[str, dict[str, Any]]:
    return dict(by_name(render("prod"), "KafkaUser"))


@pytest.fixture(scope="module")
def names() -> Renamed:
    return Renamed(f"acl{uuid.uuid4().hex[:8]}")


def as_user(secured_kafka: KafkaConnection, user: str) -> KafkaConnection:
    return dataclasses.replace(secured_kafka, username=user, password=KAFKA_DEV_PASSWORD)


async def grant(
    stack: Endpoints, principal: str, acls: list[dict[str, Any]], names: Renamed
) -> None:
    """The KafkaUser's ACLs, as Strimzi's user operator would create them (on renamed resources)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)  # a super user
    await admin.start()
    try:
        for acl in acls:
            resource = acl["resource"]
            kind = resource["type"]
            name = (
                names.topic(resource["name"]) if kind == "topic" else names.group(resource["name"])
            )
            for operation in acl["operations"]:
                request = CreateAclsRequest(
                    RESOURCE[kind], name, LITERAL, f"User:{principal}", acl["host"],
                    OPERATION[operation], ALLOW,
                )  # fmt: skip
                response = await admin._send_request(request)
                [result] = response.creation_responses
                assert result[0] == 0, f"CreateAcls {principal} {kind}:{name}: {result}"
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def topics(stack: Endpoints, names: Renamed) -> list[str]:
    """Every contract topic under this run's names, created by a super user (as the KafkaTopics
    are in the cluster), with one message each for the readers."""

    async def create() -> list[str]:
        renamed = sorted(names.topic(t) for t in DECLARED_TOPICS)
        await ensure_topics(stack.kafka_bootstrap, [TopicSpec(t, partitions=2) for t in renamed])
        for topic in renamed:
            envelope = EventEnvelope(
                event_id=uuid.uuid4(), event_type="Seeded", schema_version=1,
                stream_type="seed", stream_id=uuid.uuid4().hex, stream_version=1,
                occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
                actor=Actor.system("acl-check"), payload={},
            )  # fmt: skip
            await publish(stack.kafka_bootstrap, topic, [envelope])
        return renamed

    return asyncio.run(create())


async def refused(coro: Any, *errors: type[BaseException]) -> BaseException:
    with pytest.raises(errors) as caught:
        await asyncio.wait_for(coro, REFUSED_WITHIN)
    return caught.value


def test_every_deployment_user_exists_on_the_local_broker(users: dict[str, Any]) -> None:
    assert set(users) == set(KAFKA_DEPLOYMENT_USERS)


@pytest.mark.parametrize(
    "service", ["identity", "credential-verify", "media", "application", "review"]
)
async def test_a_service_can_publish_and_consume_what_its_code_does_and_nothing_else(
    service: str,
    users: dict[str, Any],
    names: Renamed,
    topics: list[str],
    stack: Endpoints,
    secured_kafka: KafkaConnection,
    pool: asyncpg.Pool,
) -> None:
    user = users[service]
    await grant(stack, service, user["spec"]["authorization"]["acls"], names)
    kafka = as_user(secured_kafka, service)
    acls = user["spec"]["authorization"]["acls"]
    writes = sorted(names.topic(a["resource"]["name"]) for a in acls if "Write" in a["operations"])
    specs = discover()[service_key(service)].described()
    reads = sorted({names.topic(t) for spec in specs for t in spec.projection.topics})

    # the worker's start: its topics exist (KafkaTopics), so it creates none
    assert await ensure_topics(kafka, [TopicSpec(t) for t in [*writes, *reads]]) == []

    # the outbox relay publishes each of its own topics' streams
    if writes:
        routes = {f"stream-{i}": topic for i, topic in enumerate(writes)}
        store = EventStore(pool)
        for stream_type in routes:
            await store.append(
                stream_type, uuid.uuid4().hex, 0, [NewEvent(event_type="E", payload={})], META
            )
        relay = OutboxRelay(pool, routes.get, name=service, bootstrap=kafka)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        try:

            async def all_published() -> bool:
                return await relay_published(pool) >= len(routes)

            await eventually(all_published, timeout=30)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    # each projection reads its topics in its own group (and commits there)
    for spec in specs:
        projection = CountingProjection(
            names.projection(spec.name), tuple(names.topic(t) for t in spec.projection.topics)
        )
        assert f"projection.{projection.name}" == names.group(spec.consumer)
        runner = KafkaProjectionRunner(pool, projection, bootstrap=kafka)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))

        async def read_them_all(
            runner: KafkaProjectionRunner = runner, wanted: int = len(projection.topics)
        ) -> bool:
            return runner.totals.applied >= wanted

        try:
            await eventually(read_them_all, timeout=60)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    # and nothing else
    foreign = sorted(set(topics) - set(writes))
    producer = idempotent_producer(kafka, f"{service}-refused")
    await producer.start()
    try:
        await refused(producer.send_and_wait(foreign[0], b"x"), TopicAuthorizationFailedError)
    finally:
        await producer.stop()
    stranger = AIOKafkaConsumer(
        *(reads or writes)[:1], **kafka.client_kwargs(), group_id=f"{names.prefix}-not-mine",
        enable_auto_commit=False, auto_offset_reset="earliest",
    )  # fmt: skip

    async def join_another_group() -> None:
        await stranger.start()  # joining the group is what is refused
        await stranger.getone()

    try:
        await refused(join_another_group(), GroupAuthorizationFailedError)
    finally:
        await stranger.stop()
    created = await refused(
        ensure_topics(kafka, [TopicSpec(f"{names.prefix}.{service}.new")]), TopicsNotCreated
    )
    assert isinstance(created, TopicsNotCreated)
    assert set(created.refusals.values()) == {"TopicAuthorizationFailedError"}


async def relay_published(pool: asyncpg.Pool) -> int:
    return int(
        await pool.fetchval("SELECT coalesce(sum(published), 0) FROM eventkit.relay_positions")
    )


async def test_ops_reads_every_topic_without_a_group_and_writes_none(
    users: dict[str, Any],
    names: Renamed,
    topics: list[str],
    stack: Endpoints,
    secured_kafka: KafkaConnection,
) -> None:
    await grant(stack, "ops", users["ops"]["spec"]["authorization"]["acls"], names)
    kafka = as_user(secured_kafka, "ops")
    for topic in topics:
        messages = await read_topic(kafka, topic, timeout=30)
        assert len(messages) >= 1, topic
    # an idempotent producer is refused its producer id (no Write anywhere), a plain one the topic
    idempotent = idempotent_producer(kafka, "ops-refused")
    try:
        await refused(idempotent.start(), ClusterAuthorizationFailedError)
    finally:
        await idempotent.stop()
    plain = AIOKafkaProducer(**kafka.client_kwargs(), client_id="ops-refused")
    await plain.start()
    try:
        await refused(plain.send_and_wait(topics[0], b"x"), TopicAuthorizationFailedError)
    finally:
        await plain.stop()
