"""What every ops command runs with: the services' databases, the operator, and the record.

Each command gets an `OpsContext`. It opens pools to the services' databases on demand, and
`record` appends the command's `OpsActionRecorded` event to the store of every service whose
data the command read or changed, so each service's own history says who touched it, when,
with which arguments, and how it ended.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import asyncpg

from eventkit.db import create_pool
from eventkit.kafka import KafkaConfigError, KafkaConnection
from eventkit.operations import Outcome, record_action, service_key

SERVICES = ("identity", "application", "credential_verify", "media", "review")
CHINA = timezone(timedelta(hours=8))  # times shown to operators are Beijing time
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class OpsError(Exception):
    """A command cannot do what was asked; `code` is stable, the message is for the operator."""

    def __init__(self, code: str, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code
        self.exit_code = exit_code


def service_dsns(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each service's DSN from OPS_PG_DSN_<SERVICE>, else from the local stack's variables."""
    env = dict(os.environ if environ is None else environ)
    dsns = {s: env[f"OPS_PG_DSN_{s.upper()}"] for s in SERVICES if f"OPS_PG_DSN_{s.upper()}" in env}
    if len(dsns) < len(SERVICES) and "DEVSTACK_PG_HOST" in env:
        from devstack.endpoints import Endpoints

        endpoints = Endpoints.from_env(env)
        for service in SERVICES:
            dsns.setdefault(service, endpoints.pg_dsn(service))
    return dsns


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """One query on its own connection, JSON columns decoded (for commands reading event stores
    by DSN, outside the command's pools)."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def kafka_connection(environ: Mapping[str, str] | None = None) -> KafkaConnection | None:
    """How to reach Kafka: OPS_KAFKA_BOOTSTRAP with OPS_KAFKA_SECURITY_PROTOCOL,
    OPS_KAFKA_SASL_MECHANISM, OPS_KAFKA_USERNAME, OPS_KAFKA_PASSWORD, OPS_KAFKA_CA_FILE; else
    the same EVENTKIT_KAFKA_* variables a service has; else the local stack's (PLAINTEXT)."""
    env = dict(os.environ if environ is None else environ)
    for prefix in ("OPS_KAFKA_", "EVENTKIT_KAFKA_"):
        if env.get(f"{prefix}BOOTSTRAP"):
            return _connection_from(env, prefix)
    if "DEVSTACK_PG_HOST" in env:
        from devstack.endpoints import Endpoints

        return KafkaConnection(Endpoints.from_env(env).kafka_bootstrap)
    return None


def _connection_from(env: Mapping[str, str], prefix: str) -> KafkaConnection:
    def value(name: str) -> str | None:
        return (env.get(f"{prefix}{name}") or "").strip() or None

    protocol = (value("SECURITY_PROTOCOL") or "PLAINTEXT").upper()
    mechanism = value("SASL_MECHANISM")
    ca_file = value("CA_FILE")
    try:
        return KafkaConnection(
            bootstrap=env[f"{prefix}BOOTSTRAP"],
            security_protocol=protocol,  # type: ignore[arg-type]  # checked on construction
            sasl_mechanism=mechanism.upper() if mechanism else None,  # type: ignore[arg-type]
            username=value("USERNAME"),
            password=env.get(f"{prefix}PASSWORD") or None,
            ca_file=Path(ca_file) if ca_file else None,
        )
    except KafkaConfigError as exc:
        raise OpsError(
            "bad_kafka_config",
            f"Kafka 连接配置有误 / {prefix}{exc.field.upper()}: {exc.reason}",
            EXIT_USAGE,
        ) from None


def default_operator(environ: Mapping[str, str] | None = None) -> str:
    """Who is acting: OPS_OPERATOR, else the login name on this machine."""
    env = dict(os.environ if environ is None else environ)
    return env.get("OPS_OPERATOR") or getpass.getuser()


@dataclass
class OpsContext:
    """The databases, Kafka, the operator and the correlation id of one ops command."""

    dsns: Mapping[str, str]
    operator: str
    kafka: KafkaConnection | None = None
    correlation_id: uuid.UUID = field(default_factory=uuid.uuid4)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    host: str = field(default_factory=socket.gethostname)
    detail: dict[str, Any] = field(default_factory=dict)
    touched: list[str] = field(default_factory=list)
    _pools: dict[str, asyncpg.Pool] = field(default_factory=dict)

    def touch(self, service: str) -> None:
        """Note that this command reads or changes `service`'s data (it will be recorded there)."""
        key = service_key(service)
        if key not in self.touched:
            self.touched.append(key)

    def dsn(self, service: str) -> str:
        """The DSN of one service, or a clear error when it is not configured."""
        key = service_key(service)
        if key not in SERVICES:
            raise OpsError(
                "unknown_service",
                f"没有这个服务 / no service {service!r} (one of {', '.join(SERVICES)})",
                EXIT_USAGE,
            )
        if key not in self.dsns:
            raise OpsError(
                "no_dsn",
                f"缺少 {key} 的数据库连接 / set OPS_PG_DSN_{key.upper()} or source the stack's"
                " env file",
                EXIT_USAGE,
            )
        return self.dsns[key]

    async def pool(self, service: str) -> asyncpg.Pool:
        """A small pool on one service's database, opened once per command."""
        key = service_key(service)
        self.touch(key)
        if key not in self._pools:
            self._pools[key] = await create_pool(self.dsn(key), min_size=1, max_size=3)
        return self._pools[key]

    def require_kafka(self) -> KafkaConnection:
        """How to reach Kafka, or a clear error."""
        if self.kafka is None:
            raise OpsError(
                "no_kafka",
                "缺少 Kafka 地址 / set OPS_KAFKA_BOOTSTRAP or source the stack's env file",
                EXIT_USAGE,
            )
        return self.kafka

    async def record(
        self,
        services: Sequence[str],
        command: str,
        arguments: Mapping[str, Any],
        outcome: Outcome,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        """Record this command in the store of each of `services` (those configured)."""
        for service in dict.fromkeys(service_key(s) for s in services):
            if service not in self.dsns:
                continue
            await record_action(
                await self.pool(service),
                operator=self.operator,
                command=command,
                arguments=arguments,
                outcome=outcome,
                detail=detail or {},
                started_at=self.started_at,
                host=self.host,
                correlation_id=self.correlation_id,
            )

    async def close(self) -> None:
        """Close the pools."""
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()
