"""Media's worker as a process on the real stack: it relays photo events to Kafka, learns pins
from application events on Kafka (once, however often they are delivered), and sweeps."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.application import EXEMPTION_STREAM
from contracts.media import PHOTO_TOPIC
from devstack.endpoints import Endpoints
from eventkit.envelope import EventEnvelope
from eventkit.kafka import KafkaConnection
from eventkit.testing import connection_env, eventually, publish, read_topic
from media_service import bootstrap
from media_service.adapters.storage import ObjectStore, all_keys
from media_service.entrypoints.worker import route

ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")


@pytest.mark.unit
def test_only_the_photo_stream_is_published() -> None:
    assert route("media.photo") == PHOTO_TOPIC == "media.photo.v1"
    assert route("media.anything_else") is None


def kafka_for(
    listener: str, stack: Endpoints, secured: KafkaConnection
) -> tuple[dict[str, str], KafkaConnection]:
    """The worker's EVENTKIT_KAFKA_* variables and the tests' own connection, for one of the
    local broker's listeners (PLAINTEXT, or SASL_SSL with SCRAM-SHA-512 as in production)."""
    connection = KafkaConnection(stack.kafka_bootstrap) if listener == "plaintext" else secured
    return connection_env(connection), connection


@pytest.mark.integration
@pytest.mark.parametrize("listener", ["plaintext", "sasl_ssl"])
async def test_the_worker_relays_pins_and_sweeps(
    media: bootstrap.Media, media_pool: asyncpg.Pool, objects: ObjectStore, database: str,
    stack: Endpoints, pictures: Any, app_events: Callable[..., EventEnvelope], tmp_path: Path,
    listener: str, secured_kafka: KafkaConnection,
) -> None:  # fmt: skip
    kafka_env, kafka = kafka_for(listener, stack, secured_kafka)
    photo = await media.photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    orphan_id = uuid.uuid4()
    await media_pool.execute(
        "INSERT INTO media.pending_uploads (photo_id, owner_id, started_at)"
        " VALUES ($1, $2, now() - interval '2 hours')",
        orphan_id,
        ALICE,
    )
    for key in all_keys(orphan_id):
        await objects.put(key, b"orphan", "image/jpeg", {})

    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": database,
        **kafka_env,
        "EVENTKIT_LOG_JSON": "true",
        "MEDIA_BUCKET": objects.bucket,
        "MEDIA_SWEEP_INTERVAL_SECONDS": "0.5",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "media_service.entrypoints.worker", env=env, stderr=log
        )
    try:

        async def relayed() -> bool:
            try:
                messages = await read_topic(kafka, PHOTO_TOPIC)
            except Exception:
                return False
            return any(
                m.envelope
                and m.envelope.stream_id == str(photo.photo_id)
                and m.envelope.event_type == "PhotoUploaded"
                and m.key == str(photo.photo_id).encode()
                for m in messages
            )

        await eventually(relayed, timeout=60, interval=0.5)

        submitted = app_events("ApplicationSubmitted", [str(photo.photo_id)], candidate_id=ALICE)
        # Delivered twice (a producer retry, a replayed partition): applied once.
        await publish(kafka, EXEMPTION_STREAM.topic, [submitted, submitted])

        async def pinned() -> bool:
            count = await media_pool.fetchval(
                "SELECT count(*) FROM media_usage.pins WHERE photo_id = $1", photo.photo_id
            )
            return bool(count)

        await eventually(pinned, timeout=60, interval=0.25)
        assert (await media.photos.owned(ALICE))[0].pinned

        async def swept() -> bool:
            return not set(all_keys(orphan_id)) & set(await objects.list_keys())

        await eventually(swept, timeout=30, interval=0.25)
        assert await media_pool.fetchval("SELECT count(*) FROM media.pending_uploads") == 0
        assert (
            await media_pool.fetchval(
                "SELECT count(*) FROM media_usage._inbox WHERE event_id = $1", submitted.event_id
            )
            == 1
        )
        pins = await media_pool.fetchval(
            "SELECT count(*) FROM media_usage.pins WHERE photo_id = $1", photo.photo_id
        )
        assert pins == 1  # (the topic may hold other tests' submissions too)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
    logged = log_path.read_text()
    assert kafka.describe() in logged  # how it connected, e.g. "… (SASL_SSL, SCRAM-SHA-512 as …"
    assert not kafka.password or kafka.password not in logged
