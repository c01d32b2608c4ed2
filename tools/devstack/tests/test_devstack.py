"""Integration: a real stack on free ports in a temp dir — PostgreSQL, Kafka (KRaft), SeaweedFS."""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack import DEFAULT_DATABASES, Endpoints, PartError, Stack, StackConfig
from devstack._proc import is_alive
from devstack.config import port_is_open
from devstack.health import kafka_sasl_kwargs

pytestmark = pytest.mark.integration


@dataclass
class Running:
    stack: Stack
    ep: Endpoints
    run_dir: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    run_dir = tmp_path_factory.mktemp("devstack")
    stack = Stack(StackConfig(run_dir=run_dir))
    t0 = time.monotonic()
    ep = stack.start()
    print(f"devstack started in {time.monotonic() - t0:.1f}s: {stack.part_seconds}")
    yield Running(stack, ep, run_dir)
    stack.stop()


def _s3(ep: Endpoints, secret: str | None = None) -> Any:
    kwargs = ep.s3_client_kwargs()
    if secret is not None:
        kwargs["aws_secret_access_key"] = secret
    return boto3.client(
        "s3",
        **kwargs,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


async def test_postgres_accepts_queries_in_every_database(running: Running) -> None:
    assert running.ep.databases == DEFAULT_DATABASES
    for db in DEFAULT_DATABASES:
        conn = await asyncpg.connect(running.ep.pg_dsn(db), timeout=10)
        try:
            assert await conn.fetchval("SELECT current_database()") == db
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    conn = await asyncpg.connect(running.ep.pg_dsn("identity"))
    try:
        assert await conn.fetchval("SHOW max_connections") == "300"
        assert await conn.fetchval("SHOW synchronous_commit") == "on"
        assert await conn.fetchval("SHOW fsync") == "on"
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
    finally:
        await conn.close()


async def test_postgres_requires_the_password(running: Running) -> None:
    ep = running.ep
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(
            host=ep.pg_host, port=ep.pg_port, user=ep.pg_user, password="wrong", database="media"
        )


def test_postgres_runs_unprivileged(running: Running) -> None:
    pid = running.stack.pids()["postgres"]
    uid = int(
        next(
            line.split()[1]
            for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )
    )
    if os.geteuid() == 0:
        assert uid != 0
        assert pwd.getpwuid(uid).pw_name == running.stack.config.pg_os_user
    else:
        assert uid == os.geteuid()


async def test_kafka_round_trip_idempotent_producer_and_group(running: Running) -> None:
    bootstrap = running.ep.kafka_bootstrap
    topic = f"devstack-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
        assert topic in await admin.list_topics()
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, b"hello devstack", key=b"k1")
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"g-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), timeout=30)
        assert (msg.key, msg.value) == (b"k1", b"hello devstack")
        assert (msg.partition, msg.offset) == (meta.partition, meta.offset)
        await consumer.commit()
        tp = TopicPartition(topic, msg.partition)
        assert await consumer.committed(tp) == msg.offset + 1
    finally:
        await consumer.stop()


async def test_kafka_does_not_auto_create_topics(running: Running) -> None:
    topic = f"never-created-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=running.ep.kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])  # a metadata request names it
        assert described["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
        assert topic not in await admin.list_topics()
    finally:
        await admin.close()


async def test_kafka_sasl_ssl_listener_takes_the_scram_user_over_verified_tls(
    running: Running,
) -> None:
    ep = running.ep
    assert ep.kafka_sasl_bootstrap != ep.kafka_bootstrap
    admin = AIOKafkaAdminClient(**kafka_sasl_kwargs(ep), request_timeout_ms=5000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        # the broker advertises this listener's own port to clients that came through it
        assert [b["port"] for b in cluster["brokers"]] == [
            int(ep.kafka_sasl_bootstrap.rsplit(":", 1)[1])
        ]
    finally:
        await admin.close()
    refused = AIOKafkaAdminClient(
        **{**kafka_sasl_kwargs(ep), "sasl_plain_password": "not-the-password"},
        request_timeout_ms=5000,
    )
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(refused.start(), 20)
    await refused.close()


def test_s3_put_get_and_signature_checked(running: Running) -> None:
    s3 = _s3(running.ep)
    bucket = f"devstack-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    body = "免考申请材料".encode() * 1000
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=body)
    got = s3.get_object(Bucket=bucket, Key="a/b.txt")
    assert got["Body"].read() == body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a/b.txt"]
    with pytest.raises(ClientError):
        _s3(running.ep, secret="not-the-secret").list_buckets()


def test_state_env_and_cli_status(running: Running) -> None:
    run_dir = running.run_dir
    state = json.loads((run_dir / "stack.json").read_text())
    assert state["state"] == "up"
    assert set(state["parts"]) == {"postgres", "kafka", "s3"}
    assert Endpoints.load(run_dir) == running.ep
    for name in ("postgres", "kafka", "s3"):
        assert (run_dir / "logs" / f"{name}.log").is_file()
    env_text = (run_dir / "stack.env").read_text()
    assert f"export DEVSTACK_PG_PORT={running.ep.pg_port}" in env_text
    assert f"export DEVSTACK_KAFKA_SASL_BOOTSTRAP={running.ep.kafka_sasl_bootstrap}" in env_text
    assert f"export DEVSTACK_KAFKA_CA_FILE={running.ep.kafka_ca_file}" in env_text
    assert Path(running.ep.kafka_ca_file).is_file()
    assert (run_dir / "kafka" / "scram-user").is_file()  # formatted with the SCRAM user
    # another process sees the same stack
    proc = subprocess.run(
        [sys.executable, "-m", "devstack.cli", "status", "--run-dir", str(run_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads(proc.stdout)
    assert [p["healthy"] for p in status["parts"]] == [True, True, True]
    assert {p["name"]: p["pid"] for p in status["parts"]} == running.stack.pids()


def test_crashed_part_reported_with_log_tail(running: Running) -> None:
    stack = running.stack
    pid = stack.pids()["s3"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.crashed() == ["s3"]
    by_name = {s.name: s for s in stack.status()}
    assert not by_name["s3"].alive
    assert "is gone" in by_name["s3"].detail
    assert "weed" in by_name["s3"].detail.lower() or "seaweed" in by_name["s3"].detail.lower()
    assert by_name["postgres"].healthy
    assert by_name["kafka"].healthy


def test_stop_ends_every_process(running: Running) -> None:
    stack = running.stack
    pids = stack.pids()
    refs = {name: r.ref for name, r in stack.running.items()}
    assert set(pids) == {"postgres", "kafka", "s3"}
    result = stack.stop()
    assert result["postgres"] == "stopped"
    assert result["kafka"] == "stopped"
    assert result["s3"] == "not running"  # killed by the previous test
    for name, ref in refs.items():
        assert not ref.alive(), name
        assert not is_alive(ref.pid), name
    for port in (running.ep.pg_port, int(running.ep.kafka_bootstrap.rsplit(":", 1)[1])):
        assert not port_is_open(port)
    assert not (running.run_dir / "stack.json").exists()
    assert not (running.run_dir / "stack.env").exists()
    assert _processes_mentioning(running.run_dir) == []  # watchdog included


def _processes_mentioning(path: Path) -> list[str]:
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [line for line in ps.stdout.splitlines() if str(path) in line]


def test_failed_part_stops_the_rest_and_reports_its_log(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    run_dir = tmp_path_factory.mktemp("devstack-broken")
    stack = Stack(StackConfig(run_dir=run_dir, kafka_properties={"num.partitions": "not-a-number"}))
    with pytest.raises(PartError) as info:
        stack.start()
    err = info.value
    assert err.part == "kafka"
    assert "num.partitions" in err.log_tail
    assert stack.running == {}
    assert _processes_mentioning(run_dir) == []
    assert not (run_dir / "stack.json").exists()
