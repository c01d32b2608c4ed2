"""Identity's worker: creates its topics and relays its committed events to Kafka."""

from __future__ import annotations

import asyncio
import logging

from contracts.identity import CANDIDATE_STREAM, STAFF_STREAM
from eventkit.db import create_pool
from eventkit.kafka import TopicSpec, ensure_topics
from eventkit.logs import configure_logging
from eventkit.migrations import migrate
from eventkit.relay import OutboxRelay
from eventkit.settings import PlatformSettings
from eventkit.worker import install_signal_handlers, supervise
from identity_service.bootstrap import MIGRATIONS

log = logging.getLogger(__name__)

# Published streams and their topics; anything else (the roster's import log) stays private.
ROUTES = {stream.stream_type: stream.topic for stream in (CANDIDATE_STREAM, STAFF_STREAM)}


def route(stream_type: str) -> str | None:
    """The topic of a stream type, or None for identity's private streams."""
    return ROUTES.get(stream_type)


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    settings = PlatformSettings()
    configure_logging("identity-worker", settings.log_level, json_lines=settings.log_json)
    dsn = settings.pg_dsn.get_secret_value()
    await migrate(dsn, "identity", MIGRATIONS)
    created = await ensure_topics(
        settings.kafka_bootstrap,
        [
            TopicSpec(topic, settings.topic_partitions, settings.topic_replication)
            for topic in sorted(set(ROUTES.values()))
        ],
    )
    if created:
        log.info("topics created", extra={"topics": created})
    pool = await create_pool(dsn, min_size=2, max_size=4)
    relay = OutboxRelay(
        pool,
        route,
        name="identity",
        bootstrap=settings.kafka_bootstrap,
        batch_size=settings.relay_batch_size,
    )
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await supervise({"relay": relay.run}, stop)
    finally:
        await pool.close()


def main() -> None:
    """Entry point of `python -m identity_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
