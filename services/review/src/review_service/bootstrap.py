"""Where review's ports meet their adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg

from eventkit.migrations import migrate
from eventkit.projection import create_schema
from eventkit.settings import PlatformSettings
from eventkit.store import EventStore
from review_service.adapters.evidence import ReviewEvidence
from review_service.adapters.media import MediaLinks
from review_service.adapters.people import People
from review_service.adapters.queue import QueueProjection
from review_service.adapters.submissions import SUBMISSIONS_SCHEMA, Submissions
from review_service.service_layer.cases import Cases
from review_service.settings import ReviewSettings
from servicekit.db import service_pool
from servicekit.identity_client import IdentityClient
from servicekit.web import EndedSessions

WEB_SCHEMA = "review_web"  # the reviewer UI's own table: sessions ended by logout


@dataclass
class Review:
    """The wired service."""

    pool: asyncpg.Pool
    cases: Cases
    settings: ReviewSettings = field(default_factory=ReviewSettings)
    identity: IdentityClient | None = None  # the reviewer UI's login, on identity's API
    media: MediaLinks | None = None  # signed photo links for the case view

    async def close(self) -> None:
        """Release the HTTP clients and the pool."""
        if self.identity is not None:
            await self.identity.aclose()
        if self.media is not None:
            await self.media.aclose()
        await self.pool.close()


async def prepare_database(dsn: str) -> None:
    """Eventkit's schema and the projections' tables (review has no tables of its own yet)."""
    await migrate(dsn, "review")
    conn = await asyncpg.connect(dsn)
    try:
        await create_schema(conn, Submissions(), SUBMISSIONS_SCHEMA)
        queue = QueueProjection()
        await create_schema(conn, queue, queue.name)
        evidence = ReviewEvidence()
        await create_schema(conn, evidence, evidence.name)
        people = People()
        await create_schema(conn, people, people.name)
        await EndedSessions(None, schema=WEB_SCHEMA, max_age=0).create(conn)
    finally:
        await conn.close()


def wire(pool: asyncpg.Pool, settings: ReviewSettings, *, clients: bool = True) -> Review:
    """Build the service on an existing pool; `clients`: with the HTTP clients the reviewer UI
    needs (the worker has no UI)."""
    return Review(
        pool=pool,
        cases=Cases(pool, EventStore(pool), lease=settings.lease),
        settings=settings,
        identity=IdentityClient(settings.identity_url) if clients else None,
        media=MediaLinks(settings.media_url) if clients else None,
    )


async def start() -> Review:
    """Connect, prepare and wire from settings."""
    platform = PlatformSettings()
    dsn = platform.pg_dsn.get_secret_value()
    await prepare_database(dsn)
    pool = await service_pool(dsn, min_size=platform.pg_pool_min, max_size=platform.pg_pool_max)
    return wire(pool, ReviewSettings())
