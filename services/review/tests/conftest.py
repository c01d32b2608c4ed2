"""Fixtures of the review tests: envelopes of the events review reads, and the queue projection
on a fresh database."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.application import (
    EXEMPTION_STREAM,
    WINDOW_STREAM,
    ApplicationDrafted,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWindowOpened,
    ApplicationWithdrawn,
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

    async def withdrawn_draft(self) -> uuid.UUID:
        """An application drafted and withdrawn before it was ever submitted: its draft and its
        withdrawal (no case number) reach review as the application service publishes them."""
        application_id = uuid.uuid4()
        drafted = {
            **ApplicationDrafted.model_json_schema()["examples"][0],
            "application_id": str(application_id),
            "window_id": str(self.window_id),
        }
        drafted = ApplicationDrafted.model_validate(drafted).model_dump(mode="json")
        withdrawn = ApplicationWithdrawn(
            application_id=application_id,
            candidate_id=uuid.UUID(drafted["candidate_id"]),
            reason="暂不申请",
        ).model_dump(mode="json")
        await self.apply(envelope("ApplicationDrafted", drafted, version=1))
        await self.apply(envelope("ApplicationWithdrawn", withdrawn, version=2))
        return application_id

    async def sync(self) -> None:
        """Apply review's own appended events to the queue, as the relay and Kafka would."""
        store = EventStore(self.pool)
        for application_id in self.known:
            for env in await store.load(DECISION_STREAM.stream_type, str(application_id)):
                await self.apply(env, submissions=False)


@pytest.fixture
def feed(review_db: asyncpg.Pool) -> Feed:
    return Feed(review_db)


# --- the reviewer UI: review's app on a real identity (in process), staff logged in by form ----

IDENTITY_MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "identity/src/identity_service/migrations"
)
STAFF_PASSWORD = "Shenhe#2026pass"
SESSION_KEY = "q" * 43  # base64 of 32 bytes (test only)


@dataclass
class WebRig:
    """Review's UI wired to the fresh database, a real identity beside it, and a feed."""

    identity: Any  # identity_service.bootstrap.Identity
    service: bootstrap.Review
    app: Any
    feed: Feed
    staff: dict[str, uuid.UUID]

    def client(self) -> httpx.AsyncClient:
        """A browser-like client: its own cookie jar, no redirects followed."""
        transport = httpx.ASGITransport(app=self.app, client=("10.9.8.7", 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://review")

    async def login(
        self, client: httpx.AsyncClient, username: str, password: str = STAFF_PASSWORD
    ) -> httpx.Response:
        """Log in through the login form (captcha solved); the POST's response."""
        from identity_service.testing import captcha_answer

        form = await client.get("/login")
        assert form.status_code == 200, form.text
        fields = self.hidden(form.text)
        answer = await captcha_answer(self.identity, fields["captcha_id"])
        return await client.post(
            "/login",
            data={**fields, "username": username, "password": password, "captcha_answer": answer},
        )

    @staticmethod
    def hidden(html: str, form_action: str | None = None) -> dict[str, str]:
        """The hidden inputs of the page's (or one form's) HTML."""
        return hidden_fields(html, form_action)


def hidden_fields(html: str, form_action: str | None = None) -> dict[str, str]:
    """The hidden inputs of the page's (or one form's) HTML."""
    if form_action is not None:
        start = html.index(f'action="{form_action}"')
        html = html[start : html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))


@pytest.fixture
async def web(review_db: asyncpg.Pool, database: str) -> AsyncIterator[WebRig]:
    """Review's app with its UI; identity's real app in process for login and JWKS."""
    from eventkit.migrations import migrate
    from identity_service.adapters.pii import PiiCipher
    from identity_service.bootstrap import wire as wire_identity
    from identity_service.settings import IdentitySettings
    from identity_service.testing import IDENTITY_URL, in_process
    from review_service.adapters.media import MediaLinks
    from review_service.adapters.people import PEOPLE_SCHEMA, People
    from servicekit.identity_client import IdentityClient

    await migrate(database, "identity", IDENTITY_MIGRATIONS)
    identity = wire_identity(
        review_db, IdentitySettings(), PiiCipher({"t1": b"k" * 32}, "t1", b"h" * 32)
    )
    await identity.keys.ensure_key()

    staff: dict[str, uuid.UUID] = {}
    accounts = {
        "point.reviewer1": ("小店区确认点 审核员一", ["reviewer"], ["140105"]),
        "point.reviewer2": ("小店区确认点 审核员二", ["reviewer"], ["140105"]),
        "other.reviewer": ("迎泽区确认点 审核员", ["reviewer"], ["140106"]),
        "province.senior": ("省考试院 复审员", ["senior_reviewer"], []),
        "ops.engineer": ("运维 值班", ["ops"], []),
    }
    for username, (name, roles, points) in accounts.items():
        staff[username] = await identity.staff.create(
            username=username, display_name=name, roles=roles, confirmation_points=points,
            password=STAFF_PASSWORD, created_by="review-tests",
        )  # fmt: skip
    # What the people projection would learn from identity's staff stream.
    store = EventStore(review_db)
    people = People()
    async with review_db.acquire() as conn:
        await create_schema(conn, people, PEOPLE_SCHEMA)
    for staff_id in staff.values():
        for env in await store.load("identity.staff", str(staff_id)):
            async with review_db.acquire() as conn, conn.transaction():
                await use_schema(conn, PEOPLE_SCHEMA)
                await people.apply(conn, env)

    settings = ReviewSettings(secure_cookies=False, session_key=SESSION_KEY)
    service = bootstrap.wire(review_db, settings)
    await service.identity.aclose()  # type: ignore[union-attr]
    await service.media.aclose()  # type: ignore[union-attr]
    async with in_process(identity) as (identity_transport, verifier):
        service.identity = IdentityClient(IDENTITY_URL, transport=identity_transport)
        service.media = MediaLinks("http://127.0.0.1:9", timeout=0.5)  # no media: unavailable
        app = build_app()
        attach(app, service, verifier)
        feed = Feed(review_db)
        await feed.window()
        try:
            yield WebRig(identity, service, app, feed, staff)
        finally:
            await service.identity.aclose()
            await service.media.aclose()
