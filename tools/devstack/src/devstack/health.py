"""Health checks: one real protocol round trip per part. Each raises when the part is not
healthy and returns None when it is; ``timeout`` bounds a single attempt."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import asyncpg

from ._async import run_sync
from .endpoints import Endpoints


async def _pg_select_1(ep: Endpoints, db: str, timeout: float) -> None:
    conn = await asyncpg.connect(
        host=ep.pg_host,
        port=ep.pg_port,
        user=ep.pg_user,
        password=ep.pg_password,
        database=db,
        timeout=timeout,
    )
    try:
        value = await conn.fetchval("SELECT 1", timeout=timeout)
    finally:
        await conn.close(timeout=timeout)
    if value != 1:
        raise RuntimeError(f"SELECT 1 returned {value!r}")


def check_postgres(ep: Endpoints, timeout: float = 3.0, db: str = "postgres") -> None:
    """Connect over TCP with the password and run ``SELECT 1``."""
    run_sync(lambda: _pg_select_1(ep, db, timeout))


async def _pg_ensure_databases(
    ep: Endpoints, databases: tuple[str, ...], timeout: float
) -> list[str]:
    conn = await asyncpg.connect(
        host=ep.pg_host,
        port=ep.pg_port,
        user=ep.pg_user,
        password=ep.pg_password,
        database="postgres",
        timeout=timeout,
    )
    try:
        rows = await conn.fetch("SELECT datname FROM pg_database")
        existing = {r["datname"] for r in rows}
        created = [db for db in databases if db not in existing]
        for db in created:
            # names are validated by StackConfig ([a-z_][a-z0-9_]*), quoting is belt and braces
            await conn.execute(f'CREATE DATABASE "{db}"', timeout=timeout)
    finally:
        await conn.close(timeout=timeout)
    return created


def ensure_databases(ep: Endpoints, databases: tuple[str, ...], timeout: float = 30.0) -> list[str]:
    """Create the missing databases; returns the names created."""
    return run_sync(lambda: _pg_ensure_databases(ep, databases, timeout))


def kafka_sasl_kwargs(ep: Endpoints) -> dict[str, Any]:
    """aiokafka keyword arguments for the broker's SASL_SSL listener (SCRAM-SHA-512, the
    stack's CA, host name checked)."""
    from aiokafka.helpers import create_ssl_context

    if not ep.kafka_sasl_bootstrap:
        raise RuntimeError("this stack was recorded without a SASL_SSL listener")
    return {
        "bootstrap_servers": ep.kafka_sasl_bootstrap,
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": ep.kafka_username,
        "sasl_plain_password": ep.kafka_password,
        "ssl_context": create_ssl_context(cafile=ep.kafka_ca_file),
    }


async def _kafka_describe(ep: Endpoints, timeout: float, *, sasl: bool = False) -> dict[str, Any]:
    from aiokafka.admin import AIOKafkaAdminClient

    connection = kafka_sasl_kwargs(ep) if sasl else {"bootstrap_servers": ep.kafka_bootstrap}
    admin = AIOKafkaAdminClient(
        **connection,
        request_timeout_ms=max(1000, int(timeout * 1000)),
        client_id="devstack-health",
    )
    try:
        await asyncio.wait_for(admin.start(), timeout)
        info: dict[str, Any] = await asyncio.wait_for(admin.describe_cluster(), timeout)
    finally:
        await admin.close()
    return info


def check_kafka(ep: Endpoints, timeout: float = 3.0, node_id: int | None = None) -> None:
    """Admin client bootstraps and the metadata response lists a broker (with ``node_id``:
    that broker, i.e. it is registered and unfenced)."""
    info = run_sync(lambda: _kafka_describe(ep, timeout))
    brokers = info.get("brokers") or []
    if not brokers:
        raise RuntimeError("metadata lists no brokers yet")
    if node_id is not None and node_id not in {b["node_id"] for b in brokers}:
        raise RuntimeError(f"metadata does not list broker {node_id} yet")


def check_kafka_sasl(ep: Endpoints, timeout: float = 3.0) -> None:
    """The same over the SASL_SSL listener: TLS verified against the stack's CA, the SCRAM
    user accepted."""
    info = run_sync(lambda: _kafka_describe(ep, timeout, sasl=True))
    if not info.get("brokers"):
        raise RuntimeError("metadata over SASL_SSL lists no brokers yet")


def s3_client(ep: Endpoints, timeout: float = 10.0, attempts: int = 1) -> Any:
    """A boto3 S3 client for the stack's endpoint (path-style addressing, SigV4)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=ep.s3_endpoint,
        aws_access_key_id=ep.s3_access_key,
        aws_secret_access_key=ep.s3_secret_key,
        region_name=ep.s3_region,
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": attempts, "mode": "standard"},
            s3={"addressing_style": "path"},
            signature_version="s3v4",
        ),
    )


def check_s3(ep: Endpoints, timeout: float = 3.0) -> None:
    """A signed ``ListBuckets`` succeeds (wrong keys would be rejected)."""
    s3_client(ep, timeout).list_buckets()


def s3_write_probe(ep: Endpoints, timeout: float = 10.0) -> None:
    """Create a bucket, put/get/delete an object, delete the bucket: the volume server is
    registered with the master and writes work."""
    s3 = s3_client(ep, timeout)
    bucket = f"devstack-probe-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    try:
        s3.put_object(Bucket=bucket, Key="probe", Body=b"ok")
        body = s3.get_object(Bucket=bucket, Key="probe")["Body"].read()
        if body != b"ok":
            raise RuntimeError(f"S3 read back {body!r}")
        s3.delete_object(Bucket=bucket, Key="probe")
    finally:
        s3.delete_bucket(Bucket=bucket)


def check_kafka_listeners(ep: Endpoints, timeout: float = 3.0) -> None:
    """Both of the broker's listeners: PLAINTEXT, and SASL_SSL when the stack has one."""
    check_kafka(ep, timeout)
    if ep.kafka_sasl_bootstrap:
        check_kafka_sasl(ep, timeout)


def check_kafka_node(ep: Endpoints, index: int, timeout: float = 3.0) -> None:
    """Node ``index`` (part ``kafka-<index>``) of a cluster: it answers on its own address and
    the metadata lists it."""
    address = ep.kafka_bootstrap.split(",")[index]
    check_kafka(replace(ep, kafka_bootstrap=address), timeout, node_id=index)


CHECKS: dict[str, Callable[[Endpoints, float], None]] = {
    "postgres": check_postgres,
    "kafka": check_kafka_listeners,
    "s3": check_s3,
}


def check_for(part: str) -> Callable[[Endpoints, float], None] | None:
    """The health check of a part (``kafka-<i>`` too); None for a process without one."""
    if part in CHECKS:
        return CHECKS[part]
    if part.startswith("kafka-") and part.removeprefix("kafka-").isdigit():
        index = int(part.removeprefix("kafka-"))
        return lambda ep, timeout: check_kafka_node(ep, index, timeout)
    return None
