"""Fixtures of the review tests: envelopes of the events review reads, and the queue projection
on a fresh database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from contracts.application import (
    EXEMPTION_STREAM,
    WINDOW_STREAM,
    ApplicationSubmitted,
    ApplicationWindowOpened,
)
from contracts.review import DECISION_STREAM
from eventkit.envelope import Actor, EventEnvelope
from eventkit.projection import create_schema, use_schema
from review_service.adapters.queue import QUEUE_SCHEMA, QueueProjection

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
