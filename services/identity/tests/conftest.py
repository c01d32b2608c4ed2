"""Fixtures of the identity service's tests: a fresh database with identity's migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from eventkit.db import create_pool
from eventkit.migrations import migrate
from identity_service.bootstrap import Identity
from identity_service.entrypoints.api import attach, build_app
from identity_service.testing import sms_sandbox

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "identity_service" / "migrations"


@pytest.fixture
async def identity_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database migrated to identity's schema."""
    await migrate(database, "identity", MIGRATIONS)
    pool = await create_pool(database, min_size=1, max_size=20)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def sms_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The SMS sandbox as a process for the whole session: its URL (IDENTITY_SMS_URL)."""
    with sms_sandbox(tmp_path_factory.mktemp("sms") / "sms.log") as url:
        yield url


@pytest.fixture
async def client(service: Identity) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the identity app wired to the test's `service` (defined per module)."""
    app = build_app()
    attach(app, service)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://identity") as c:
        yield c
