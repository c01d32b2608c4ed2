"""Shared fixtures: the local stack (real PostgreSQL, Kafka, S3) and a fresh database per test."""

from __future__ import annotations

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


@pytest.fixture
async def database(stack: Endpoints) -> AsyncIterator[str]:
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
