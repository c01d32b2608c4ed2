"""credential-verify's worker: relays its events, learns candidates from identity, and settles
QR authorisations whose callback never came."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

from contracts.credential import CERTIFICATE_STREAM, DEGREE_STREAM
from contracts.identity import CANDIDATE_STREAM
from credential_verify_service import bootstrap
from credential_verify_service.adapters.candidates import Candidates
from credential_verify_service.service_layer.degrees import Degrees
from credential_verify_service.settings import CredentialSettings
from eventkit.consumer import KafkaProjectionRunner
from eventkit.settings import PlatformSettings
from eventkit.worker import Component, every, run_service_worker

log = logging.getLogger(__name__)

ROUTES = {s.stream_type: s.topic for s in (DEGREE_STREAM, CERTIFICATE_STREAM)}
CONSUMED_TOPICS = (CANDIDATE_STREAM.topic,)


def route(stream_type: str) -> str | None:
    """The topic of a stream type."""
    return ROUTES.get(stream_type)


def expiry_sweeper(degrees: Degrees, interval: float) -> Component:
    """A supervised component: settle lapsed authorisations every `interval` seconds."""

    async def settle() -> None:
        settled = await degrees.sweep_lapsed()
        if settled:
            log.info("lapsed authorisations settled", extra={"settled": settled})

    return every(interval, settle)


@asynccontextmanager
async def components(
    pool: asyncpg.Pool, platform: PlatformSettings
) -> AsyncIterator[Mapping[str, Component]]:
    """The candidates projection and the expiry sweep, on the worker's pool."""
    settings = CredentialSettings()
    service = bootstrap.wire(pool, settings)
    candidates = KafkaProjectionRunner(pool, Candidates(), bootstrap=platform.kafka_connection)
    try:
        yield {
            "candidates": candidates.run,
            "expiry": expiry_sweeper(service.degrees, settings.expiry_sweep_seconds),
        }
    finally:
        await service.chsi.aclose()
        await service.neea.aclose()


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    await run_service_worker(
        "credential-verify",
        ROUTES,
        prepare=bootstrap.prepare_database,
        consumed_topics=CONSUMED_TOPICS,
        extras=components,
    )


def main() -> None:
    """Entry point of `python -m credential_verify_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
