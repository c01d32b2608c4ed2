"""Media's worker: relays photo events to Kafka, learns photo usage from application events,
and sweeps orphaned uploads, unused photos and deleted photos' objects."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contracts.application import EXEMPTION_STREAM
from contracts.media import PHOTO_STREAM
from eventkit.consumer import KafkaProjectionRunner
from eventkit.db import create_pool
from eventkit.kafka import TopicSpec, ensure_topics
from eventkit.logs import configure_logging
from eventkit.relay import OutboxRelay
from eventkit.settings import PlatformSettings
from eventkit.worker import Component, install_signal_handlers, supervise
from media_service import bootstrap
from media_service.adapters.storage import ObjectStore
from media_service.adapters.usage import PhotoUsage
from media_service.service_layer.photos import Photos
from media_service.settings import MediaSettings

log = logging.getLogger(__name__)

ROUTES = {PHOTO_STREAM.stream_type: PHOTO_STREAM.topic}
CONSUMED_TOPICS = (EXEMPTION_STREAM.topic,)


def route(stream_type: str) -> str | None:
    """The topic of a stream type (media has only the photo stream)."""
    return ROUTES.get(stream_type)


def sweeper(photos: Photos, interval: float) -> Component:
    """A supervised component: one sweep pass every `interval` seconds until stopped."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            report = await photos.sweep()
            if report.total or report.failures:
                log.info(
                    "sweep",
                    extra={
                        "orphans_removed": report.orphans_removed,
                        "unused_deleted": report.unused_deleted,
                        "purged": report.purged,
                        "failures": report.failures,
                    },
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    return run


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    platform = PlatformSettings()
    settings = MediaSettings()
    configure_logging("media-worker", platform.log_level, json_lines=platform.log_json)
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
    objects = ObjectStore(settings.storage())
    media = bootstrap.wire(pool, objects, settings)
    relay = OutboxRelay(
        pool,
        route,
        name="media",
        bootstrap=platform.kafka_bootstrap,
        batch_size=platform.relay_batch_size,
    )
    usage = KafkaProjectionRunner(pool, PhotoUsage(), bootstrap=platform.kafka_bootstrap)
    stop = asyncio.Event()
    install_signal_handlers(stop)
    try:
        await supervise(
            {
                "relay": relay.run,
                "usage": usage.run,
                "sweeper": sweeper(media.photos, settings.sweep_interval_seconds),
            },
            stop,
        )
    finally:
        await media.close()


def main() -> None:
    """Entry point of `python -m media_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
