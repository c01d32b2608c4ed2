"""The application service's worker: relays its events, learns evidence from identity,
credential-verify and media, and applies review's decisions to the applications."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

from application_service import bootstrap
from application_service.adapters.evidence import EvidenceProjection
from application_service.adapters.review_policy import ReviewPolicy
from contracts.application import EXEMPTION_STREAM, WINDOW_STREAM
from contracts.review import DECISION_STREAM
from eventkit.consumer import KafkaProjectionRunner
from eventkit.settings import PlatformSettings
from eventkit.worker import Component, run_service_worker

ROUTES = {s.stream_type: s.topic for s in (EXEMPTION_STREAM, WINDOW_STREAM)}
CONSUMED_TOPICS = (*EvidenceProjection.topics, DECISION_STREAM.topic)


def route(stream_type: str) -> str | None:
    """The topic of a stream type."""
    return ROUTES.get(stream_type)


@asynccontextmanager
async def components(
    pool: asyncpg.Pool, platform: PlatformSettings
) -> AsyncIterator[Mapping[str, Component]]:
    """The evidence projection and the review policy, on the worker's pool."""
    service = bootstrap.wire(pool)
    evidence = KafkaProjectionRunner(
        pool, EvidenceProjection(), bootstrap=platform.kafka_connection
    )
    policy = KafkaProjectionRunner(
        pool, ReviewPolicy(service.applications), bootstrap=platform.kafka_connection
    )
    yield {"evidence": evidence.run, "review-policy": policy.run}


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    await run_service_worker(
        "application",
        ROUTES,
        prepare=bootstrap.prepare_database,
        consumed_topics=CONSUMED_TOPICS,
        extras=components,
    )


def main() -> None:
    """Entry point of `python -m application_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
