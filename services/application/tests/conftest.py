"""Fixtures of the application service's tests: a fresh database with application's migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from eventkit.db import create_pool
from eventkit.migrations import migrate
from servicekit.testing import serve_in_process

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


# --- evidence, windows and counts shared by the error, concurrency, worker and fuzz tests -------

from application_service.domain.windows import ApplicationWindow  # noqa: E402
from contracts.credential import (  # noqa: E402
    CertificateExam,
    CertificateFailureReason,
    CertificateVerificationFailed,
    CertificateVerified,
    DegreeLevel,
    DegreesVerified,
    TranscriptCourse,
    VerifiedDegree,
)
from contracts.identity import CandidateRegistered  # noqa: E402
from contracts.media import PhotoDeleted, PhotoFormat, PhotoUploaded  # noqa: E402

LAW_TRANSCRIPT = [("民法学", "00242", 7.0, "85"), ("刑法学", "00245", 7.0, "77"),
                  ("宪法学", "05679", 4.0, "81"), ("大学语文", "04729", 4.0, "良好"),
                  ("法理学", "05677", 7.0, "55"), ("国际法", "00247", 2.0, "90"),
                  ("行政法学", "00261", 5.0, "88"), ("经济法概论", "00244", 6.0, "70")]  # fmt: skip


@dataclass
class EvidenceKit:
    """Other services' facts about candidates, fed through the evidence projection."""

    facts: Facts

    async def registered(self, candidate_id: uuid.UUID, name: str = "张建国") -> None:
        await self.facts.apply(
            CandidateRegistered(
                candidate_id=candidate_id, admission_ticket_number="010118100001", name=name,
                gender="male", id_number_masked="1401**********2018",
                id_number_fingerprint="a" * 64,
            ),
            candidate_id,
        )  # fmt: skip

    async def photo(self, owner: uuid.UUID) -> str:
        photo_id = uuid.uuid4()
        await self.facts.apply(
            PhotoUploaded(
                photo_id=photo_id, owner_id=owner, width=1600, height=1200, size_bytes=100_000,
                sha256="b" * 64, formats=[PhotoFormat.JPEG],
            ),
            photo_id,
        )  # fmt: skip
        return str(photo_id)

    async def delete_photo(self, owner: uuid.UUID, photo_id: str) -> None:
        await self.facts.apply(
            PhotoDeleted(photo_id=uuid.UUID(photo_id), owner_id=owner, reason_code="owner_deleted"),
            photo_id,
        )

    async def check(self, owner: uuid.UUID, exam: str = "cet4", **fields: Any) -> str:
        check_id = uuid.uuid4()
        fields.setdefault("exam_session", "2012-06")
        if exam in ("cet4", "cet6"):
            fields.setdefault("score", 480)
        await self.facts.apply(
            CertificateVerified(
                check_id=check_id, candidate_id=owner, exam=CertificateExam(exam), **fields
            ),
            check_id,
        )
        return str(check_id)

    async def failed_check(
        self, owner: uuid.UUID, exam: str = "cet4",
        reason: CertificateFailureReason = CertificateFailureReason.HOLDER_MISMATCH,
    ) -> str:  # fmt: skip
        check_id = uuid.uuid4()
        await self.facts.apply(
            CertificateVerificationFailed(
                check_id=check_id, candidate_id=owner, exam=CertificateExam(exam),
                reason_code=reason, reason="证书核验未通过",
            ),
            check_id,
        )  # fmt: skip
        return str(check_id)

    async def degree(
        self,
        owner: uuid.UUID,
        *,
        category: str = "高等教育自学考试",
        conclusion: str = "毕业",
        lines: list[tuple[str, str, float, str]] | None = None,
        holder_matches: bool = True,
        valid_until: Any = None,
        assessment: str = "examination",
    ) -> str:
        ref = uuid.uuid4()
        degree = VerifiedDegree(
            degree_ref=ref, institution="山西大学", major_name="法律事务",
            level=DegreeLevel.JUNIOR_COLLEGE, study_form="自学考试", category=category,
            entry_year=2010, graduation_year=2013, conclusion=conclusion,
            certificate_number="101086201306000123", holder_matches_candidate=holder_matches,
            chsi_verified_at=datetime.now(UTC),
            transcript=[
                TranscriptCourse(name=n, code=c, credits=cr, score=s, assessment=assessment)
                for n, c, cr, s in (LAW_TRANSCRIPT if lines is None else lines)
            ],
        )  # fmt: skip
        await self.facts.apply(
            DegreesVerified(
                candidate_id=owner,
                authorization_id=uuid.uuid4(),
                degrees=[degree],
                valid_until=valid_until,
            ),
            owner,
        )
        return str(ref)


@pytest.fixture
def evidence(facts: Facts) -> EvidenceKit:
    """`evidence.registered(id)`, `.photo(id)`, `.check(id, exam, …)`, `.degree(id, …)`."""
    return EvidenceKit(facts)


async def open_window_in(
    service: bootstrap.ApplicationService, times: dict[str, Any] | None = None
) -> uuid.UUID:
    """Open a window through the service layer (accepting applications now by default)."""
    window = ApplicationWindow(
        window_id=uuid.uuid4(), name="2026年下半年免考申请", **(times or window_times())
    )
    await service.windows.open(window, Actor(kind="ops", id="ops-test"))
    return window.window_id


@pytest.fixture
async def open_window(service: bootstrap.ApplicationService) -> str:
    """The id of a window accepting applications now."""
    return str(await open_window_in(service))


async def record_counts(pool: asyncpg.Pool) -> tuple[int, ...]:
    """How much is recorded: events, application rows, windows, case numbers drawn."""
    row = await pool.fetchrow(
        """
        SELECT (SELECT count(*) FROM eventkit.events) AS events,
               (SELECT count(*) FROM application.applications) AS applications,
               (SELECT count(*) FROM application.windows) AS windows,
               (SELECT coalesce(sum(last), 0) FROM application.case_sequences) AS cases,
               (SELECT coalesce(sum(version), 0) FROM application.applications) AS versions
        """
    )
    assert row is not None
    return tuple(row.values())


@pytest.fixture
def counts(service: bootstrap.ApplicationService) -> Callable[[], Any]:
    """`await counts()`: a snapshot of what is recorded, to compare before and after."""
    return lambda: record_counts(service.pool)


@pytest.fixture
async def bare_service(database: str) -> AsyncIterator[bootstrap.ApplicationService]:
    """The wired service on a fresh database with no active catalogue."""
    await bootstrap.prepare_database(database)
    pool = await create_pool(database, min_size=1, max_size=10)
    yield bootstrap.wire(pool)
    catalogue_store.clear_cache(pool)
    await pool.close()


@pytest.fixture
async def bare_client(
    bare_service: bootstrap.ApplicationService,
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the app wired to `bare_service`."""
    app = build_app()
    attach(app, bare_service, TokenVerifier(StaticKeys({KEYPAIR.kid: KEYPAIR.public_key}),
                                            issuer=IDENTITY_ISSUER))  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://application") as c:
        yield c


@pytest.fixture(scope="session")
def window_kit() -> Any:
    """`window_kit.open(service, times)`, `window_kit.times(now, open_for=…)` and
    `await window_kit.counts(pool)`, for tests that build their own service or window."""
    from types import SimpleNamespace

    return SimpleNamespace(open=open_window_in, times=window_times, counts=record_counts)


@pytest.fixture
async def sms_url() -> AsyncIterator[str]:
    """The SMS gateway sandbox served in this event loop: its URL (IDENTITY_SMS_URL)."""
    from portal_support import sms_sandbox_app

    async with serve_in_process(sms_sandbox_app()) as url:
        yield url
