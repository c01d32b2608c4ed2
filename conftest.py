"""Shared fixtures: the local stack (real PostgreSQL, Kafka, S3) and a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from eventkit.db import create_pool
from eventkit.migrations import migrate


@dataclass(frozen=True)
class StackEndpoints:
    """Where the stack's parts listen."""

    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    kafka_bootstrap: str

    def pg_dsn(self, db: str = "postgres") -> str:
        """A DSN for one database of the stack's PostgreSQL."""
        auth = self.pg_user if not self.pg_password else f"{self.pg_user}:{self.pg_password}"
        return f"postgresql://{auth}@{self.pg_host}:{self.pg_port}/{db}"


@pytest.fixture(scope="session")
def stack() -> Iterator[StackEndpoints]:
    """The running stack: the one `make test` started (DEVSTACK_* variables), or a new one."""
    if os.environ.get("DEVSTACK_PG_PORT"):
        yield StackEndpoints(
            pg_host=os.environ.get("DEVSTACK_PG_HOST", "127.0.0.1"),
            pg_port=int(os.environ["DEVSTACK_PG_PORT"]),
            pg_user=os.environ.get("DEVSTACK_PG_USER", "postgres"),
            pg_password=os.environ.get("DEVSTACK_PG_PASSWORD", ""),
            kafka_bootstrap=os.environ.get("DEVSTACK_KAFKA_BOOTSTRAP", ""),
        )
        return
    pytest.skip("no stack: run through `make test`, or export DEVSTACK_* from a running stack")


@pytest.fixture
async def database(stack: StackEndpoints) -> AsyncIterator[str]:
    """A fresh database with eventkit's schema; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack.pg_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = stack.pg_dsn(name)
    await migrate(dsn, "test")
    yield dsn
    admin = await asyncpg.connect(stack.pg_dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the fresh database."""
    p = await create_pool(database, min_size=1, max_size=24)
    yield p
    await p.close()


ROOT = Path(__file__).parent
