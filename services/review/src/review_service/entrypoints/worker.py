"""Review's worker: relays decisions, keeps the submissions and the queue from the application
service's events (and its own), and records claims whose lease ran out."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

from contracts.application import EXEMPTION_STREAM, WINDOW_STREAM
from contracts.review import DECISION_STREAM
from eventkit.consumer import KafkaProjectionRunner
from eventkit.settings import PlatformSettings
from eventkit.worker import Component, every, run_service_worker
from review_service import bootstrap
from review_service.adapters.evidence import ReviewEvidence
from review_service.adapters.people import People
from review_service.adapters.queue import QUEUE_SCHEMA, QueueProjection
from review_service.adapters.submissions import Submissions
from review_service.service_layer.cases import Cases
from review_service.settings import ReviewSettings

log = logging.getLogger(__name__)

ROUTES = {DECISION_STREAM.stream_type: DECISION_STREAM.topic}
CONSUMED_TOPICS = (
    EXEMPTION_STREAM.topic,
    WINDOW_STREAM.topic,
    DECISION_STREAM.topic,
    *ReviewEvidence.topics,  # credential-verify's degrees and checks, for the evidence view
    *People.topics,  # identity's candidates and staff, for names on the case and the trail
)


def route(stream_type: str) -> str | None:
    """The topic of a stream type."""
    return ROUTES.get(stream_type)


def lease_sweeper(pool: asyncpg.Pool, cases: Cases, interval: float) -> Component:
    """Every `interval` seconds: record the claims that expired as lapsed (ReviewReleased)."""

    async def sweep() -> None:
        rows = await pool.fetch(
            f"SELECT application_id FROM {QUEUE_SCHEMA}.cases"
            " WHERE claimed_by IS NOT NULL AND claimed_at < now() - $1::interval LIMIT 200",
            cases.lease,
        )
        lapsed = await cases.lapse_expired([r["application_id"] for r in rows])
        if lapsed:
            log.info("claims lapsed", extra={"lapsed": lapsed})

    return every(interval, sweep)


@asynccontextmanager
async def components(
    pool: asyncpg.Pool, platform: PlatformSettings
) -> AsyncIterator[Mapping[str, Component]]:
    """The submissions, queue, evidence and people projections and the lease sweep."""
    settings = ReviewSettings()
    service = bootstrap.wire(pool, settings, clients=False)
    submissions = KafkaProjectionRunner(pool, Submissions(), bootstrap=platform.kafka_connection)
    queue = KafkaProjectionRunner(pool, QueueProjection(), bootstrap=platform.kafka_connection)
    evidence = KafkaProjectionRunner(pool, ReviewEvidence(), bootstrap=platform.kafka_connection)
    people = KafkaProjectionRunner(pool, People(), bootstrap=platform.kafka_connection)
    yield {
        "submissions": submissions.run,
        "queue": queue.run,
        "evidence": evidence.run,
        "people": people.run,
        "leases": lease_sweeper(pool, service.cases, settings.lease_sweep_seconds),
    }


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    await run_service_worker(
        "review",
        ROUTES,
        prepare=bootstrap.prepare_database,
        consumed_topics=CONSUMED_TOPICS,
        extras=components,
    )


def main() -> None:
    """Entry point of `python -m review_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
