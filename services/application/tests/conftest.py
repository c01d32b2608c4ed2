"""Fixtures of the application service's tests: a fresh database with application's migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from eventkit.db import create_pool
from eventkit.migrations import migrate

MIGRATIONS = Path(__file__).resolve().parents[1] / "src" / "application_service" / "migrations"


@pytest.fixture
async def app_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database migrated to the application service's schema."""
    await migrate(database, "application", MIGRATIONS)
    pool = await create_pool(database, min_size=1, max_size=10)
    yield pool
    await pool.close()
