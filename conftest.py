"""Shared fixtures: the local stack (real PostgreSQL, Kafka, S3) and a fresh database per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from devstack import Endpoints, Stack, StackConfig
from eventkit.db import create_pool
from eventkit.migrations import migrate


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """The running stack: the one `make test` started (DEVSTACK_* variables), or a new one."""
    if os.environ.get("DEVSTACK_PG_PORT"):
        yield Endpoints.from_env()
        return
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("stack")))
    try:
        yield stack.start()
    finally:
        stack.stop()


async def create_database(stack: Endpoints, name: str) -> str:
    """Create an empty database on the stack; its DSN."""
    admin = await asyncpg.connect(stack.pg_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return stack.pg_dsn(name)


async def drop_database(stack: Endpoints, name: str) -> None:
    """Drop a database, closing whatever still uses it."""
    admin = await asyncpg.connect(stack.pg_dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database(stack: Endpoints) -> AsyncIterator[str]:
    """A fresh database with eventkit's schema; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = await create_database(stack, name)
    await migrate(dsn, "test")
    yield dsn
    await drop_database(stack, name)


@pytest.fixture(scope="module")
def module_database(stack: Endpoints) -> Iterator[str]:
    """An empty database for one test module (a service under uvicorn migrates it itself);
    dropped afterwards."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(create_database(stack, name))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(stack, name))


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the fresh database."""
    p = await create_pool(database, min_size=1, max_size=24)
    yield p
    await p.close()
