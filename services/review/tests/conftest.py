"""Fixtures of the review tests: envelopes of the events review reads, and the queue projection
on a fresh database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.application import (
    EXEMPTION_STREAM,
    WINDOW_STREAM,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWindowOpened,
)
from contracts.review import DECISION_STREAM
from eventkit.db import create_pool
from eventkit.envelope import Actor, EventEnvelope
from eventkit.projection import create_schema, use_schema
from eventkit.store import EventStore
from review_service import bootstrap
from review_service.adapters.queue import QUEUE_SCHEMA, QueueProjection
from review_service.adapters.submissions import SUBMISSIONS_SCHEMA, Submissions
from review_service.entrypoints.api import attach, build_app
from review_service.settings import ReviewSettings
from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token

STREAMS = {s.topic: s for s in (EXEMPTION_STREAM, WINDOW_STREAM, DECISION_STREAM)}


def envelope(
    event_type: str,
    payload: dict[str, Any],
    *,
    stream: str = EXEMPTION_STREAM.topic,
    occurred_at: datetime | None = None,
    version: int = 1,
) -> EventEnvelope:
    """An envelope around `payload` on the stream of `stream` (a topic name)."""
    kind = STREAMS[stream]
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=1,
        stream_type=kind.stream_type,
        stream_id=str(payload[kind.id_field]),
        stream_version=version,
        occurred_at=occurred_at or datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor.system("review-tests"),
        payload=payload,
    )


def snapshot(
    *,
    application_id: uuid.UUID,
    window_id: uuid.UUID,
    case_number: str,
    point: str = "140105",
    submission_number: int = 1,
    major_codes: tuple[str, ...] = ("580401",),
    route_id: str = "CET4",
    courses: tuple[str, ...] = ("00012",),
    event_type: str = "ApplicationSubmitted",
) -> dict[str, Any]:
    """A valid ApplicationSubmitted/Resubmitted payload with one CET certificate."""
    example = ApplicationSubmitted.model_json_schema()["examples"][0]
    certificate = {
        "certificate_id": str(uuid.uuid4()),
        "kind": "cet4_or_above",
        "route_id": route_id,
        "certificate_check_ref": str(uuid.uuid4()),
        "photo_ids": [str(uuid.uuid4())],
        "courses": [
            {"course_code": c, "course_name": "英语(一)", "major_code": major_codes[0]}
            for c in courses
        ],
    }
    payload = {
        **example,
        "application_id": str(application_id),
        "case_number": case_number,
        "window_id": str(window_id),
        "confirmation_point_id": point,
        "major_codes": list(major_codes),
        "certificates": [certificate],
        "course_codes": list(courses),
        "photo_ids": certificate["photo_ids"],
        "submission_number": submission_number,
    }
    return ApplicationSubmitted.model_validate(payload).model_dump(mode="json")


def window_payload(window_id: uuid.UUID, **deadlines: datetime) -> dict[str, Any]:
    """An ApplicationWindowOpened payload; deadlines override the example's."""
    example = ApplicationWindowOpened.model_json_schema()["examples"][0]
    payload = {**example, "window_id": str(window_id)}
    payload.update({k: v.isoformat() for k, v in deadlines.items()})
    return ApplicationWindowOpened.model_validate(payload).model_dump(mode="json")


@pytest.fixture
async def queue_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    """The fresh database's pool, with the `review_queue` projection's schema created."""
    async with pool.acquire() as conn:
        await create_schema(conn, QueueProjection(), QUEUE_SCHEMA)
    return pool


Apply = Callable[..., Awaitable[None]]


@pytest.fixture
def apply_queue(queue_pool: asyncpg.Pool) -> Apply:
    """Apply events to the queue projection, one transaction each, as its runner does."""

    async def apply(*envelopes: EventEnvelope) -> None:
        for env in envelopes:
            async with queue_pool.acquire() as conn, conn.transaction():
                await use_schema(conn, QUEUE_SCHEMA)
                await QueueProjection().apply(conn, env)

    return apply


class ReviewEvents:
    """Builders of the events review reads (see `envelope`, `snapshot`, `window_payload`)."""

    envelope = staticmethod(envelope)
    snapshot = staticmethod(snapshot)
    window = staticmethod(window_payload)


@pytest.fixture(scope="session")
def review_events() -> ReviewEvents:
    return ReviewEvents()


@pytest.fixture
async def queue_conn(queue_pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """A connection reading the queue schema (inside a transaction, search_path set)."""
    async with queue_pool.acquire() as conn, conn.transaction():
        await use_schema(conn, QUEUE_SCHEMA)
        yield conn


# --- HTTP fixtures: signed tokens, the wired service, a client on its app, cases fed to it ------


@dataclass(frozen=True)
class StaffTokens:
    """Bearer headers signed by a test key the app under test trusts."""

    keypair: Ed25519KeyPair

    def staff(
        self, roles: list[str], points: list[str] = (), subject: uuid.UUID | None = None
    ) -> dict[str, str]:  # type: ignore[assignment]
        token = issue_token(
            self.keypair,
            subject=str(subject or uuid.uuid4()),
            kind="staff",
            roles=roles,
            issuer=IDENTITY_ISSUER,
            ttl=timedelta(minutes=30),
            confirmation_points=points,
        )
        return {"Authorization": f"Bearer {token}"}

    def candidate(self, subject: uuid.UUID | None = None) -> dict[str, str]:
        token = issue_token(
            self.keypair,
            subject=str(subject or uuid.uuid4()),
            kind="candidate",
            roles=["candidate"],
            issuer=IDENTITY_ISSUER,
            ttl=timedelta(minutes=30),
        )
        return {"Authorization": f"Bearer {token}"}

    @property
    def verifier(self) -> TokenVerifier:
        return TokenVerifier(
            StaticKeys({self.keypair.kid: self.keypair.public_key}), issuer=IDENTITY_ISSUER
        )


@pytest.fixture(scope="session")
def staff_tokens() -> StaffTokens:
    return StaffTokens(Ed25519KeyPair.generate("review-test"))


@pytest.fixture
async def review_db(database: str, pool: asyncpg.Pool) -> asyncpg.Pool:
    """The fresh database prepared as review's bootstrap prepares it; its pool."""
    await bootstrap.prepare_database(database)
    return pool


@pytest.fixture
def make_client(
    review_db: asyncpg.Pool, database: str, staff_tokens: StaffTokens
) -> Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, bootstrap.Review]]]:
    """An HTTP client on review's app wired to the fresh database (settings overridable)."""
    review_db_dsn = [database]

    @asynccontextmanager
    async def make(
        *, queue_on_search_path: bool = False, **settings: Any
    ) -> AsyncIterator[tuple[httpx.AsyncClient, bootstrap.Review]]:
        """`queue_on_search_path`: a pool whose sessions find the queue's tables unqualified
        (works around the queue endpoint not selecting the projection's schema)."""
        own = None
        if queue_on_search_path:
            own = await create_pool(
                review_db_dsn[0], server_settings={"search_path": f"{QUEUE_SCHEMA}, public"}
            )
        service = bootstrap.wire(own or review_db, ReviewSettings(**settings))
        app = build_app()
        attach(app, service, staff_tokens.verifier)
        transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://review") as c:
                yield c, service
        finally:
            if own is not None:
                await own.close()

    return make


@pytest.fixture
async def review_client(
    make_client: Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]],
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client() as (client, _):
        yield client


class Feed:
    """Feeds application events to the submissions and queue projections, as the worker does,
    and review's own appended events (read back from the event store) to the queue."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.window_id = uuid.uuid4()
        self.applied: set[uuid.UUID] = set()
        self.known: list[uuid.UUID] = []
        self.serial = 0

    async def apply(self, env: EventEnvelope, *, submissions: bool = True) -> None:
        if env.event_id in self.applied:
            return
        self.applied.add(env.event_id)
        if submissions:
            async with self.pool.acquire() as conn, conn.transaction():
                await use_schema(conn, SUBMISSIONS_SCHEMA)
                await Submissions().apply(conn, env)
        async with self.pool.acquire() as conn, conn.transaction():
            await use_schema(conn, QUEUE_SCHEMA)
            await QueueProjection().apply(conn, env)

    async def window(self, **deadlines: datetime) -> None:
        payload = window_payload(self.window_id, **deadlines)
        env = envelope("ApplicationWindowOpened", payload, stream=WINDOW_STREAM.topic)
        await self.apply(env, submissions=False)

    async def submit(
        self,
        *,
        application_id: uuid.UUID | None = None,
        number: int = 1,
        occurred_at: datetime | None = None,
        case_number: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """A submission (number 1) or resubmission; returns its payload."""
        application_id = application_id or uuid.uuid4()
        self.serial += 1
        kind = "ApplicationSubmitted" if number == 1 else "ApplicationResubmitted"
        payload = snapshot(
            application_id=application_id,
            window_id=self.window_id,
            case_number=case_number or f"MK2026{self.serial:06d}",
            submission_number=number,
            **fields,
        )
        if number > 1:
            payload = ApplicationResubmitted.model_validate(payload).model_dump(mode="json")
        env = envelope(kind, payload, occurred_at=occurred_at, version=10 * number)
        await self.apply(env)
        if application_id not in self.known:
            self.known.append(application_id)
        return payload

    async def sync(self) -> None:
        """Apply review's own appended events to the queue, as the relay and Kafka would."""
        store = EventStore(self.pool)
        for application_id in self.known:
            for env in await store.load(DECISION_STREAM.stream_type, str(application_id)):
                await self.apply(env, submissions=False)


@pytest.fixture
def feed(review_db: asyncpg.Pool) -> Feed:
    return Feed(review_db)
