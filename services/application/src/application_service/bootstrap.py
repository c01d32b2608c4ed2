"""Where the application service's ports meet their adapters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

from application_service.adapters import catalogue_store
from application_service.adapters.evidence import EVIDENCE_SCHEMA, EvidenceProjection
from application_service.domain.catalogue import Catalogue
from application_service.service_layer.applications import Applications
from application_service.service_layer.windows import Windows
from eventkit.db import create_pool
from eventkit.migrations import migrate
from eventkit.projection import create_schema
from eventkit.settings import PlatformSettings
from eventkit.store import EventStore

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class ApplicationService:
    """The wired service."""

    pool: asyncpg.Pool
    windows: Windows
    applications: Applications

    async def close(self) -> None:
        """Release the pool."""
        await self.pool.close()


async def prepare_database(dsn: str) -> None:
    """Migrate the service's schema and create the evidence projection's tables."""
    await migrate(dsn, catalogue_store.NAMESPACE, MIGRATIONS)
    conn = await asyncpg.connect(dsn)
    try:
        await create_schema(conn, EvidenceProjection(), EVIDENCE_SCHEMA)
    finally:
        await conn.close()


def wire(pool: asyncpg.Pool) -> ApplicationService:
    """Build the service on an existing pool."""
    store = EventStore(pool)
    windows = Windows(pool, store)

    async def catalogue(version: str) -> Catalogue:
        return await catalogue_store.load(pool, version)

    async def active() -> str | None:
        return await catalogue_store.active_version(pool)

    return ApplicationService(
        pool=pool,
        windows=windows,
        applications=Applications(pool, store, windows, catalogue=catalogue, active_version=active),
    )


async def start() -> ApplicationService:
    """Connect, migrate and wire from settings."""
    platform = PlatformSettings()
    dsn = platform.pg_dsn.get_secret_value()
    await prepare_database(dsn)
    pool = await create_pool(dsn, min_size=platform.pg_pool_min, max_size=platform.pg_pool_max)
    return wire(pool)
