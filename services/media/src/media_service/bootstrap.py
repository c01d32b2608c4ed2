"""Where media's ports meet their adapters: one place builds everything the entrypoints use."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from eventkit.migrations import migrate
from eventkit.projection import create_schema
from eventkit.settings import PlatformSettings
from eventkit.store import EventStore
from media_service.adapters.storage import ObjectStore
from media_service.adapters.usage import USAGE_SCHEMA, PhotoUsage
from media_service.domain.errors import StorageUnavailable
from media_service.service_layer.photos import Photos
from media_service.settings import MediaSettings
from servicekit.db import service_pool

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class Media:
    """The wired service: its pool, bucket and use cases."""

    pool: asyncpg.Pool
    objects: ObjectStore
    photos: Photos

    async def close(self) -> None:
        """Stop the thread pools and release the database pool."""
        self.photos.close()
        self.objects.close()
        await self.pool.close()


async def prepare_database(dsn: str) -> None:
    """Migrate media's schema and create the usage projection's tables if missing."""
    await migrate(dsn, "media", MIGRATIONS)
    conn = await asyncpg.connect(dsn)
    try:
        await create_schema(conn, PhotoUsage(), USAGE_SCHEMA)
    finally:
        await conn.close()


def wire(pool: asyncpg.Pool, objects: ObjectStore, settings: MediaSettings) -> Media:
    """Build the service on an existing pool and bucket (tests pass theirs)."""
    photos = Photos(pool, EventStore(pool), objects, settings.limits())
    return Media(pool=pool, objects=objects, photos=photos)


async def start() -> Media:
    """Connect, migrate, make sure the bucket exists, and wire the service from settings."""
    platform = PlatformSettings()
    settings = MediaSettings()
    dsn = platform.pg_dsn.get_secret_value()
    await prepare_database(dsn)
    objects = ObjectStore(settings.storage())
    try:
        await objects.ensure_bucket()
    except StorageUnavailable:  # not ready until it is; uploads answer 503 meanwhile
        log.warning("object storage unavailable at startup", exc_info=True)
    try:
        pool = await service_pool(dsn, min_size=platform.pg_pool_min, max_size=platform.pg_pool_max)
    except BaseException:  # PostgreSQL went away meanwhile: the API's Startup tries again
        objects.close()
        raise
    return wire(pool, objects, settings)
