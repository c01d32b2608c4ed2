"""Integration: what the fault-injection lane (tests/faults) builds on — the three-broker KRaft
cluster, Toxiproxy in front of PostgreSQL / S3 / each broker, and part faults on a running
Stack (kill, immediate restart, stop and start again)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import boto3
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from botocore.config import Config

from devstack import Endpoints, Stack, StackConfig
from devstack._proc import is_alive
from devstack.config import port_is_open
from devstack.toxiproxy import Toxiproxy, ToxiproxyError, proxy_stack

pytestmark = pytest.mark.integration


@dataclass
class Cluster:
    stack: Stack
    ep: Endpoints  # direct
    proxied: Endpoints  # through toxiproxy
    toxiproxy: Toxiproxy
    run_dir: Path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    run_dir = tmp_path_factory.mktemp("devstack-cluster")
    stack = Stack(StackConfig(run_dir=run_dir, kafka_brokers=3, kafka_fault_listeners=True))
    t0 = time.monotonic()
    ep = stack.start()
    print(f"3-broker stack started in {time.monotonic() - t0:.1f}s: {stack.part_seconds}")
    try:
        t0 = time.monotonic()
        tp = Toxiproxy.start(stack.config.logs_dir, stack=stack)
        proxied = proxy_stack(ep, tp)
        print(f"toxiproxy + proxies in {time.monotonic() - t0:.2f}s")
        yield Cluster(stack, ep, proxied, tp, run_dir)
    finally:
        stack.stop()


@pytest.fixture
def clean_proxies(cluster: Cluster) -> Iterator[Toxiproxy]:
    cluster.toxiproxy.reset()
    yield cluster.toxiproxy
    cluster.toxiproxy.reset()


# --- the cluster ------------------------------------------------------------------------------


async def _admin(bootstrap: str, timeout_ms: int = 10000) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=timeout_ms)
    await admin.start()
    return admin


@pytest.fixture
async def admin(cluster: Cluster) -> AsyncIterator[AIOKafkaAdminClient]:
    client = await _admin(cluster.ep.kafka_bootstrap)
    yield client
    await client.close()


async def _isr(admin: AIOKafkaAdminClient, topic: str) -> list[int]:
    (described,) = await admin.describe_topics([topic])
    partitions = described["partitions"]  # none yet on a broker whose metadata lags
    return sorted(partitions[0]["isr"]) if partitions else []


async def _wait_isr(
    admin: AIOKafkaAdminClient, topic: str, want: list[int], timeout: float
) -> float:
    t0 = time.monotonic()
    isr: list[int] = []
    while time.monotonic() - t0 < timeout:
        with_error = False
        try:
            isr = await _isr(admin, topic)
        except KafkaError:
            with_error = True
        if not with_error and isr == want:
            return time.monotonic() - t0
        await asyncio.sleep(0.2)
    raise AssertionError(f"ISR of {topic} is {isr}, not {want}, after {timeout}s")


async def _send(bootstrap: str, topic: str, value: bytes, timeout_ms: int = 20000) -> Any:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=timeout_ms
    )
    await producer.start()
    try:
        return await producer.send_and_wait(topic, value)
    finally:
        await producer.stop()


async def test_cluster_runs_three_brokers(cluster: Cluster, admin: AIOKafkaAdminClient) -> None:
    ep = cluster.ep
    assert len(ep.kafka_brokers) == 3
    assert ep.kafka_sasl_bootstrap == ""  # SASL_SSL is on the single-node broker only
    info = await admin.describe_cluster()
    assert sorted(b["node_id"] for b in info["brokers"]) == [0, 1, 2]
    assert sorted(f"{b['host']}:{b['port']}" for b in info["brokers"]) == sorted(ep.kafka_brokers)
    state = json.loads((cluster.run_dir / "stack.json").read_text())
    assert set(state["parts"]) >= {"postgres", "kafka-0", "kafka-1", "kafka-2", "s3"}
    assert "toxiproxy" in state["parts"]
    for i in range(3):
        props = (cluster.run_dir / f"kafka-{i}" / "server.properties").read_text()
        assert f"node.id={i}\n" in props
        assert "min.insync.replicas=2\n" in props
        assert "default.replication.factor=3\n" in props
        meta = (cluster.run_dir / f"kafka-{i}" / "data" / "meta.properties").read_text()
        assert f"node.id={i}\n" in meta
    cluster_ids = {
        line
        for i in range(3)
        for line in (cluster.run_dir / f"kafka-{i}" / "data" / "meta.properties")
        .read_text()
        .splitlines()
        if line.startswith(("cluster.id=", "directory.id="))
    }
    assert len(cluster_ids) == 1 + 3  # one cluster id, a directory id per node
    assert {s.name: s.healthy for s in cluster.stack.status()} == {
        "postgres": True,
        "kafka-0": True,
        "kafka-1": True,
        "kafka-2": True,
        "s3": True,
        "toxiproxy": True,
    }


async def test_acks_all_with_one_broker_down_not_with_two_then_recovers(
    cluster: Cluster, admin: AIOKafkaAdminClient, caplog: pytest.LogCaptureFixture
) -> None:
    stack, bootstrap = cluster.stack, cluster.ep.kafka_bootstrap
    topic = f"rf3-{uuid.uuid4().hex[:8]}"
    await admin.create_topics(
        [
            NewTopic(
                topic,
                num_partitions=1,
                replication_factor=3,
                topic_configs={"min.insync.replicas": "2"},
            )
        ]
    )
    await _wait_isr(admin, topic, [0, 1, 2], 30)
    await _send(bootstrap, topic, b"all three up")

    try:
        stack.kill("kafka-1")
        assert not port_is_open(int(cluster.ep.kafka_brokers[1].rsplit(":", 1)[1]))
        t0 = time.monotonic()
        await _send(bootstrap, topic, b"one broker down")  # waits until kafka-1 is out of the ISR
        print(f"acks=all with kafka-1 killed: {time.monotonic() - t0:.1f}s")
        await _wait_isr(admin, topic, [0, 2], 10)  # (the admin client may first ask kafka-1)

        # The second broker goes with a controlled shutdown: with two of the three combined nodes
        # SIGKILLed the controller quorum is gone and the ISR cannot shrink (the write then times
        # out instead); a controlled shutdown leaves the ISR first, while there is still a quorum.
        assert stack.stop_part("kafka-2") == "stopped"
        caplog.set_level(logging.WARNING, logger="aiokafka")
        with pytest.raises(KafkaError):
            await _send(bootstrap, topic, b"two brokers down", timeout_ms=4000)
        assert "NotEnoughReplicas" in caplog.text

    finally:  # whatever happened, the next tests get three brokers
        restarted = {
            name: stack.start_part(name)
            for name in ("kafka-1", "kafka-2")
            if not stack.running[name].ref.alive()
        }
    print(f"brokers restarted: {restarted}")
    t0 = time.monotonic()
    await _send(bootstrap, topic, b"recovered")
    catch_up = await _wait_isr(admin, topic, [0, 1, 2], 60)
    print(f"recovered in {time.monotonic() - t0:.1f}s (ISR full {catch_up:.1f}s after)")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        got = await asyncio.wait_for(consumer.getmany(timeout_ms=10000, max_records=10), 20)
        values = [m.value for batch in got.values() for m in batch]
    finally:
        await consumer.stop()
    assert values == [b"all three up", b"one broker down", b"recovered"]


# --- toxiproxy --------------------------------------------------------------------------------


def test_toxiproxy_api(clean_proxies: Toxiproxy) -> None:
    tp = clean_proxies
    assert set(tp.proxies()) == {"postgres", "s3", "kafka-0", "kafka-1", "kafka-2"}
    for kind, attributes in (
        ("latency", {"latency": 10, "jitter": 1}),
        ("bandwidth", {"rate": 1000}),
        ("reset_peer", {"timeout": 100}),
        ("timeout", {"timeout": 100}),
        ("limit_data", {"bytes": 1000}),
        ("slicer", {"average_size": 64, "size_variation": 8, "delay": 10}),
    ):
        toxic = tp.add_toxic("s3", kind, attributes, stream="upstream")  # type: ignore[arg-type]
        assert (toxic.name, toxic.type, dict(toxic.attributes)) == (
            f"{kind}_upstream",
            kind,
            attributes,
        )
    assert len(tp.proxy("s3").toxics) == 6
    tp.remove_toxic("s3", "latency_upstream")
    assert len(tp.toxics("s3")) == 5
    tp.disable("s3")
    assert not tp.proxy("s3").enabled
    tp.reset()
    assert tp.proxy("s3").enabled
    assert tp.toxics("s3") == []
    with pytest.raises(ToxiproxyError) as info:
        tp.create_proxy("s3", 1)
    assert info.value.status == 409
    with pytest.raises(ToxiproxyError) as info:
        tp.remove_toxic("s3", "no-such-toxic")
    assert info.value.status == 404


async def _select_1(ep: Endpoints, timeout: float = 5) -> float:
    t0 = time.monotonic()
    conn = await asyncpg.connect(ep.pg_dsn("identity"), timeout=timeout)
    try:
        assert await conn.fetchval("SELECT 1", timeout=timeout) == 1
    finally:
        await conn.close()
    return time.monotonic() - t0


async def test_postgres_through_the_proxy_and_partitioned(
    cluster: Cluster, clean_proxies: Toxiproxy
) -> None:
    proxied = cluster.proxied
    assert proxied.pg_port != cluster.ep.pg_port
    await _select_1(proxied)
    open_conn = await asyncpg.connect(proxied.pg_dsn("identity"), timeout=5)
    try:
        with clean_proxies.disabled("postgres"):
            with pytest.raises(ConnectionRefusedError):
                await _select_1(proxied)
            with pytest.raises((asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError)):
                await open_conn.fetchval("SELECT 1", timeout=5)  # the open one is cut
            await _select_1(cluster.ep)  # the database itself is fine
        await _select_1(proxied)
    finally:
        open_conn.terminate()


async def test_latency_toxic_delays_queries(cluster: Cluster, clean_proxies: Toxiproxy) -> None:
    conn = await asyncpg.connect(cluster.proxied.pg_dsn("identity"), timeout=5)
    try:

        async def query() -> float:
            t0 = time.monotonic()
            assert await conn.fetchval("SELECT 1") == 1
            return time.monotonic() - t0

        before = min([await query() for _ in range(3)])
        with clean_proxies.toxic("postgres", "latency", {"latency": 300}):
            delayed = await query()
        after = min([await query() for _ in range(3)])
    finally:
        await conn.close()
    print(f"SELECT 1: {before * 1000:.1f} ms, with 300 ms latency {delayed * 1000:.0f} ms")
    assert before < 0.1
    assert delayed >= 0.3
    assert after < 0.1


def test_s3_through_the_proxy(cluster: Cluster, clean_proxies: Toxiproxy) -> None:
    s3 = _s3(cluster.proxied)
    bucket = f"proxied-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"through toxiproxy")
    assert _s3(cluster.ep).get_object(Bucket=bucket, Key="k")["Body"].read() == b"through toxiproxy"


async def test_kafka_through_the_proxied_bootstrap(
    cluster: Cluster, clean_proxies: Toxiproxy
) -> None:
    proxied = cluster.proxied
    assert proxied.kafka_bootstrap == cluster.ep.kafka_proxied_bootstrap
    advertised = proxied.kafka_brokers
    admin = await _admin(proxied.kafka_bootstrap)
    try:
        info = await admin.describe_cluster()
        # clients that came in through the FAULT listeners are sent to the proxies
        assert sorted(f"{b['host']}:{b['port']}" for b in info["brokers"]) == sorted(advertised)
        topic = f"proxied-{uuid.uuid4().hex[:8]}"
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])
    finally:
        await admin.close()
    await _send(proxied.kafka_bootstrap, topic, b"via toxiproxy")
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=proxied.kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    assert msg.value == b"via toxiproxy"

    with clean_proxies.disabled("kafka-1"):
        assert not port_is_open(int(advertised[1].rsplit(":", 1)[1]))
        unreachable = AIOKafkaAdminClient(bootstrap_servers=advertised[1], request_timeout_ms=2000)
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(unreachable.start(), 20)
        await unreachable.close()
        assert port_is_open(int(cluster.ep.kafka_brokers[1].rsplit(":", 1)[1]))  # broker is up
    reachable = await _admin(advertised[1])
    await reachable.close()


# --- part faults ------------------------------------------------------------------------------


async def test_postgres_immediate_restart_keeps_committed_data(cluster: Cluster) -> None:
    stack, ep = cluster.stack, cluster.ep
    conn = await asyncpg.connect(ep.pg_dsn("eventkit_test"))
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS fault_t (v text)")
        await conn.execute("INSERT INTO fault_t VALUES ('committed before the crash')")
    finally:
        await conn.close()
    old_pid = stack.pids()["postgres"]
    seconds = stack.restart("postgres", mode="immediate")
    print(f"postgres immediate restart: {seconds:.1f}s")
    new_pid = stack.pids()["postgres"]
    assert new_pid != old_pid
    assert not is_alive(old_pid)
    log_text = (cluster.run_dir / "logs" / "postgres.log").read_text()
    assert "immediate shutdown request" in log_text
    assert "automatic recovery in progress" in log_text  # crash recovery, no initdb
    conn = await asyncpg.connect(ep.pg_dsn("eventkit_test"))
    try:
        assert await conn.fetchval("SELECT v FROM fault_t") == "committed before the crash"
    finally:
        await conn.close()
    # recorded: another process sees the new pid and a healthy stack
    attached = Stack.attach(cluster.run_dir)
    assert attached.pids() == stack.pids()
    assert all(s.healthy for s in attached.status())


async def test_postgres_killed_and_started_again(cluster: Cluster) -> None:
    stack = cluster.stack
    stack.kill("postgres")
    assert not port_is_open(cluster.ep.pg_port)
    assert {s.name: s.alive for s in stack.status()}["postgres"] is False
    stack.start_part("postgres")
    conn = await asyncpg.connect(cluster.ep.pg_dsn("eventkit_test"))
    try:
        assert await conn.fetchval("SELECT count(*) FROM fault_t") == 1
    finally:
        await conn.close()


def _s3(ep: Endpoints) -> Any:
    return boto3.client(
        "s3",
        **ep.s3_client_kwargs(),
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def test_s3_stop_and_start_keeps_objects(cluster: Cluster) -> None:
    stack = cluster.stack
    s3 = _s3(cluster.ep)
    bucket = f"fault-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"kept")
    assert stack.stop_part("s3") in ("stopped", "killed")  # weed takes ~15 s on SIGTERM
    assert not port_is_open(int(cluster.ep.s3_endpoint.rsplit(":", 1)[1]))
    seconds = stack.start_part("s3")
    print(f"s3 started again in {seconds:.1f}s")
    assert _s3(cluster.ep).get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"kept"
    stack.restart("s3", mode="kill")
    assert _s3(cluster.ep).get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"kept"


def test_unknown_part_is_refused(cluster: Cluster) -> None:
    from devstack import DevstackError

    for name in ("kafka", "toxiproxy", "nope"):
        with pytest.raises(DevstackError, match="no part"):
            cluster.stack.kill(name)


def test_stop_ends_everything_after_restarts(cluster: Cluster) -> None:
    stack = cluster.stack
    refs = {name: r.ref for name, r in stack.running.items()}
    assert set(refs) == {"postgres", "kafka-0", "kafka-1", "kafka-2", "s3", "toxiproxy"}
    result = stack.stop()
    assert result["toxiproxy"] == "stopped"
    for name, ref in refs.items():
        assert not ref.alive(), name
    assert not (cluster.run_dir / "stack.json").exists()


# --- the watchdog after a restart -------------------------------------------------------------

OWNER = textwrap.dedent(
    """
    import json, os, signal, sys
    from pathlib import Path
    from devstack import Stack, StackConfig
    stack = Stack(StackConfig(run_dir=Path(sys.argv[1])))
    stack.start()
    stack.restart("kafka", mode="kill")
    stack.restart("postgres", mode="immediate")
    print(json.dumps(stack.pids()), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no atexit: the watchdog must stop the stack
    """
)


def test_watchdog_stops_restarted_parts(tmp_path_factory: pytest.TempPathFactory) -> None:
    run_dir = tmp_path_factory.mktemp("devstack-watchdog")
    proc = subprocess.run(
        [sys.executable, "-c", OWNER, str(run_dir)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    pids: dict[str, int] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(pids) == {"postgres", "kafka", "s3"}
    deadline = time.monotonic() + 90
    while any(is_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [n for n, p in pids.items() if is_alive(p)]
    assert not (run_dir / "stack.json").exists()
    assert "stopping the stack" in (run_dir / "logs" / "watchdog.log").read_text()
    assert os.path.exists(run_dir / "kafka" / "data" / "meta.properties")
