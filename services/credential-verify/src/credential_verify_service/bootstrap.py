"""Where credential-verify's ports meet their adapters: one place builds what entrypoints use."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

from credential_verify_service.adapters.candidates import CANDIDATES_SCHEMA, Candidates
from credential_verify_service.adapters.chsi import ChsiClient
from credential_verify_service.adapters.neea import NeeaClient
from credential_verify_service.service_layer.certificates import Certificates
from credential_verify_service.service_layer.degrees import Degrees
from credential_verify_service.settings import CredentialSettings
from eventkit.migrations import migrate
from eventkit.projection import create_schema
from eventkit.settings import PlatformSettings
from eventkit.store import EventStore
from servicekit.db import service_pool

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass
class CredentialVerify:
    """The wired service: its pool, provider clients and use cases."""

    pool: asyncpg.Pool
    chsi: ChsiClient
    neea: NeeaClient
    degrees: Degrees
    certificates: Certificates

    async def close(self) -> None:
        """Close the provider clients and the pool."""
        await self.chsi.aclose()
        await self.neea.aclose()
        await self.pool.close()


async def prepare_database(dsn: str) -> None:
    """Migrate the service's schema and create the candidates projection's tables."""
    await migrate(dsn, "credential", MIGRATIONS)
    conn = await asyncpg.connect(dsn)
    try:
        await create_schema(conn, Candidates(), CANDIDATES_SCHEMA)
    finally:
        await conn.close()


def wire(
    pool: asyncpg.Pool,
    settings: CredentialSettings,
    *,
    chsi: ChsiClient | None = None,
    neea: NeeaClient | None = None,
) -> CredentialVerify:
    """Build the service on an existing pool (tests may pass their own clients)."""
    store = EventStore(pool)
    chsi = chsi or ChsiClient(settings.chsi())
    neea = neea or NeeaClient(settings.neea())
    key = settings.fingerprint_key()
    return CredentialVerify(
        pool=pool,
        chsi=chsi,
        neea=neea,
        degrees=Degrees(
            pool,
            store,
            chsi,
            chsi_secret=settings.chsi_secret.get_secret_value(),
            callback_url=settings.callback_url,
            fingerprint_key=key,
            callback_tolerance=settings.callback_tolerance_seconds,
        ),
        certificates=Certificates(pool, store, neea, fingerprint_key=key),
    )


async def start() -> CredentialVerify:
    """Connect, migrate and wire the service from settings."""
    platform = PlatformSettings()
    settings = CredentialSettings()  # refuses public development secrets before connecting
    dsn = platform.pg_dsn.get_secret_value()
    await prepare_database(dsn)
    pool = await service_pool(dsn, min_size=platform.pg_pool_min, max_size=platform.pg_pool_max)
    return wire(pool, settings)
