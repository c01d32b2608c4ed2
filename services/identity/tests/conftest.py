"""Fixtures of the identity service's tests: a fresh database with identity's migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from eventkit.db import create_pool
from eventkit.migrations import migrate

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "identity_service" / "migrations"


@pytest.fixture
async def identity_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database migrated to identity's schema."""
    await migrate(database, "identity", MIGRATIONS)
    pool = await create_pool(database, min_size=1, max_size=20)
    yield pool
    await pool.close()
