"""Where the application service's ports meet their adapters."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from application_service.adapters import catalogue_store
from application_service.adapters.evidence import EVIDENCE_SCHEMA, EvidenceProjection
from application_service.adapters.peers import (
    CredentialPeer,
    IdentityPeer,
    MediaCitations,
    MediaPeer,
)
from application_service.domain.catalogue import Catalogue
from application_service.service_layer.applications import Applications, PhotoCitations
from application_service.service_layer.windows import Windows
from application_service.settings import ApplicationSettings
from eventkit.migrations import migrate
from eventkit.projection import create_schema
from eventkit.settings import PlatformSettings
from eventkit.store import EventStore
from servicekit.db import service_pool
from servicekit.identity_client import IdentityClient
from servicekit.web import EndedSessions

MIGRATIONS = Path(__file__).parent / "migrations"
PORTAL_SCHEMA = "portal_web"  # the candidate portal's own table: sessions ended by logout


@dataclass
class ApplicationService:
    """The wired service."""

    pool: asyncpg.Pool
    windows: Windows
    applications: Applications
    settings: ApplicationSettings = field(default_factory=ApplicationSettings)
    identity: IdentityClient | None = None  # the portal's login, on identity
    identity_peer: IdentityPeer | None = None  # registration and the personal centre
    credential: CredentialPeer | None = None  # degree verification and certificate checks
    media: MediaPeer | None = None  # certificate photos

    async def close(self) -> None:
        """Release the HTTP clients and the pool."""
        for client in (self.identity, self.identity_peer, self.credential, self.media):
            if client is not None:
                await client.aclose()
        await self.pool.close()


async def prepare_database(dsn: str) -> None:
    """Migrate the service's schema and create the evidence projection's tables."""
    await migrate(dsn, catalogue_store.NAMESPACE, MIGRATIONS)
    conn = await asyncpg.connect(dsn)
    try:
        await create_schema(conn, EvidenceProjection(), EVIDENCE_SCHEMA)
        await EndedSessions(None, schema=PORTAL_SCHEMA, max_age=0).create(conn)
    finally:
        await conn.close()


def wire(
    pool: asyncpg.Pool,
    settings: ApplicationSettings | None = None,
    *,
    clients: bool = False,
    photo_citations: PhotoCitations | None = None,
) -> ApplicationService:
    """Build the service on an existing pool; `clients`: with the HTTP clients the candidate
    portal needs (the worker and the JSON API's tests have no portal), and with media recording
    certificates' photo citations (ADR 0015); `photo_citations` gives another way to media."""
    settings = settings or ApplicationSettings()
    store = EventStore(pool)
    windows = Windows(pool, store)

    async def catalogue(version: str) -> Catalogue:
        return await catalogue_store.load(pool, version)

    async def active() -> str | None:
        return await catalogue_store.active_version(pool)

    media = MediaPeer(settings.media_url, timeout=30) if clients else None
    return ApplicationService(
        pool=pool,
        windows=windows,
        applications=Applications(
            pool,
            store,
            windows,
            catalogue=catalogue,
            active_version=active,
            photo_citations=photo_citations
            or (MediaCitations(media) if media is not None else None),
        ),
        settings=settings,
        identity=IdentityClient(settings.identity_url) if clients else None,
        identity_peer=IdentityPeer(settings.identity_url) if clients else None,
        credential=CredentialPeer(settings.credential_url) if clients else None,
        media=media,
    )


async def start() -> ApplicationService:
    """Connect, migrate and wire from settings."""
    platform = PlatformSettings()
    dsn = platform.pg_dsn.get_secret_value()
    await prepare_database(dsn)
    pool = await service_pool(dsn, min_size=platform.pg_pool_min, max_size=platform.pg_pool_max)
    return wire(pool, ApplicationSettings(), clients=True)
