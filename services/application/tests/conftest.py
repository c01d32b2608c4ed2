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


# --- the wired service on the demo catalogue, with evidence, tokens and an HTTP client ----------

import uuid  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402

import httpx  # noqa: E402

from application_service import bootstrap  # noqa: E402
from application_service.adapters import catalogue_store  # noqa: E402
from application_service.adapters.catalogue_files import (  # noqa: E402
    DEMO_DIR,
    DEMO_VERSION,
    load_catalogue_dir,
)
from application_service.adapters.evidence import EVIDENCE_SCHEMA, EvidenceProjection  # noqa: E402
from application_service.entrypoints.api import attach, build_app  # noqa: E402
from contracts.base import ContractEvent  # noqa: E402
from eventkit.envelope import Actor, EventEnvelope  # noqa: E402
from eventkit.projection import use_schema  # noqa: E402
from servicekit.auth import StaticKeys, TokenVerifier  # noqa: E402
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token  # noqa: E402

KEYPAIR = Ed25519KeyPair.generate("application-test")


@pytest.fixture
async def service(database: str) -> AsyncIterator[bootstrap.ApplicationService]:
    """The wired service on a fresh database with the demo catalogue imported and active."""
    await bootstrap.prepare_database(database)
    pool = await create_pool(database, min_size=1, max_size=20)
    demo = load_catalogue_dir(DEMO_DIR, DEMO_VERSION)
    assert demo.importable, demo.errors
    await catalogue_store.import_catalogue(pool, demo.catalogue, "ops:test", {}, activate=True)
    yield bootstrap.wire(pool)
    catalogue_store.clear_cache(pool)
    await pool.close()


def bearer(subject: uuid.UUID | str, kind: str = "candidate", roles: list[str] | None = None,
           points: list[str] | None = None) -> dict[str, str]:  # fmt: skip
    token = issue_token(
        KEYPAIR,
        subject=str(subject),
        kind=kind,
        roles=roles or ["candidate"],
        issuer=IDENTITY_ISSUER,
        ttl=timedelta(minutes=10),
        confirmation_points=points or [],
    )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def tokens() -> Callable[..., dict[str, str]]:
    """`tokens(candidate_id)` or `tokens(staff_id, "staff", ["ops"])`: bearer headers."""
    return bearer


@pytest.fixture
async def client(service: bootstrap.ApplicationService) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app wired to `service`, trusting the test key."""
    app = build_app()
    attach(app, service, TokenVerifier(StaticKeys({KEYPAIR.kid: KEYPAIR.public_key}),
                                       issuer=IDENTITY_ISSUER))  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://application") as c:
        yield c


@dataclass
class Facts:
    """Feeds the evidence projection as the worker would from other services' events."""

    pool: asyncpg.Pool

    async def apply(self, event: ContractEvent, stream_id: str | uuid.UUID) -> None:
        envelope = EventEnvelope(
            event_id=uuid.uuid4(),
            event_type=event.event_type,
            schema_version=event.schema_version,
            stream_type=event.stream.stream_type,
            stream_id=str(stream_id),
            stream_version=1,
            occurred_at=datetime.now(UTC),
            correlation_id=uuid.uuid4(),
            actor=Actor.system("test"),
            payload=event.model_dump(mode="json"),
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await use_schema(conn, EVIDENCE_SCHEMA)
            await EvidenceProjection().apply(conn, envelope)


@pytest.fixture
def facts(service: bootstrap.ApplicationService) -> Facts:
    return Facts(service.pool)


def window_times(now: datetime | None = None, *, open_for: timedelta = timedelta(days=5)
                 ) -> dict[str, Any]:  # fmt: skip
    """Deadlines of a window that is accepting applications now."""
    now = now or datetime.now(UTC)
    return {
        "opens_at": now - timedelta(days=1),
        "applications_close_at": now + open_for,
        "point_review_close_at": now + open_for + timedelta(days=10),
        "province_review_close_at": now + open_for + timedelta(days=20),
        "results_published_at": now + open_for + timedelta(days=25),
    }
