"""credential-verify's worker: relays its events, learns candidates from identity, and settles
QR authorisations whose callback never came."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contracts.credential import CERTIFICATE_STREAM, DEGREE_STREAM
from contracts.identity import CANDIDATE_STREAM
from credential_verify_service import bootstrap
from credential_verify_service.adapters.candidates import Candidates
from credential_verify_service.service_layer.degrees import Degrees
from credential_verify_service.settings import CredentialSettings
from eventkit.consumer import KafkaProjectionRunner
from eventkit.db import create_pool
from eventkit.kafka import TopicSpec, ensure_topics
from eventkit.logs import configure_logging
from eventkit.relay import OutboxRelay
from eventkit.settings import PlatformSettings
from eventkit.worker import Component, install_signal_handlers, supervise

log = logging.getLogger(__name__)

ROUTES = {s.stream_type: s.topic for s in (DEGREE_STREAM, CERTIFICATE_STREAM)}
CONSUMED_TOPICS = (CANDIDATE_STREAM.topic,)


def route(stream_type: str) -> str | None:
    """The topic of a stream type."""
    return ROUTES.get(stream_type)


def expiry_sweeper(degrees: Degrees, interval: float) -> Component:
    """A supervised component: settle lapsed authorisations every `interval` seconds."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            settled = await degrees.sweep_lapsed()
            if settled:
                log.info("lapsed authorisations settled", extra={"settled": settled})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    return run


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    platform = PlatformSettings()
    settings = CredentialSettings()
    configure_logging("credential-verify-worker", platform.log_level, json_lines=platform.log_json)
    dsn = platform.pg_dsn.get_secret_value()
    await bootstrap.prepare_database(dsn)
    topics = sorted({*ROUTES.values(), *CONSUMED_TOPICS})
    created = await ensure_topics(
        platform.kafka_bootstrap,
        [TopicSpec(t, platform.topic_partitions, platform.topic_replication) for t in topics],
    )
    if created:
        log.info("topics created", extra={"topics": created})
    pool = await create_pool(dsn, min_size=2, max_size=6)
    service = bootstrap.wire(pool, settings)
    relay = OutboxRelay(
        pool,
        route,
        name="credential-verify",
        bootstrap=platform.kafka_bootstrap,
        batch_size=platform.relay_batch_size,
    )
    candidates = KafkaProjectionRunner(pool, Candidates(), bootstrap=platform.kafka_bootstrap)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await supervise(
            {
                "relay": relay.run,
                "candidates": candidates.run,
                "expiry": expiry_sweeper(service.degrees, settings.expiry_sweep_seconds),
            },
            stop,
        )
    finally:
        await service.close()


def main() -> None:
    """Entry point of `python -m credential_verify_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
