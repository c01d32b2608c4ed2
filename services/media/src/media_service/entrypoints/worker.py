"""Media's worker: relays photo events to Kafka, learns photo usage from application events,
and sweeps orphaned uploads, unused photos and deleted photos' objects."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import asyncpg

from contracts.application import EXEMPTION_STREAM
from contracts.media import PHOTO_STREAM
from eventkit.consumer import KafkaProjectionRunner
from eventkit.settings import PlatformSettings
from eventkit.worker import Component, every, run_service_worker
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

    async def sweep() -> None:
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

    return every(interval, sweep)


@asynccontextmanager
async def components(
    pool: asyncpg.Pool, platform: PlatformSettings
) -> AsyncIterator[Mapping[str, Component]]:
    """The usage projection and the sweeper, on the worker's pool."""
    settings = MediaSettings()
    objects = ObjectStore(settings.storage())
    media = bootstrap.wire(pool, objects, settings)
    usage = KafkaProjectionRunner(pool, PhotoUsage(), bootstrap=platform.kafka_connection)
    try:
        yield {
            "usage": usage.run,
            "sweeper": sweeper(media.photos, settings.sweep_interval_seconds),
        }
    finally:
        media.photos.close()
        objects.close()


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    await run_service_worker(
        "media",
        ROUTES,
        prepare=bootstrap.prepare_database,
        consumed_topics=CONSUMED_TOPICS,
        extras=components,
    )


def main() -> None:
    """Entry point of `python -m media_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
