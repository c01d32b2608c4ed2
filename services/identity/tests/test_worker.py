"""Identity's worker publishes candidate events to their topic and keeps the roster private."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from contracts.identity import (
    CANDIDATE_TOPIC,
    CandidateProfileField,
    CandidateProfileUpdated,
)
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.store import EventStore
from eventkit.testing import eventually, read_topic
from identity_service.entrypoints.worker import route


@pytest.mark.unit
def test_routes() -> None:
    assert route("identity.candidate") == CANDIDATE_TOPIC
    assert route("identity.staff") == "identity.staff.v1"
    assert route("identity.roster") is None


@pytest.mark.integration
async def test_the_worker_relays_candidate_events(
    identity_pool: asyncpg.Pool, database: str, stack, tmp_path: Path
) -> None:
    store = EventStore(identity_pool)
    stream_id = str(uuid.uuid4())
    event = NewEvent.of(
        CandidateProfileUpdated(
            candidate_id=uuid.UUID(stream_id), changed_fields=[CandidateProfileField.EMAIL]
        )
    )
    await store.append(
        "identity.candidate", stream_id, 0, [event], Metadata(actor=Actor.system("t"))
    )
    env = {
        **os.environ,
        "EVENTKIT_PG_DSN": database,
        "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "EVENTKIT_LOG_JSON": "true",
    }
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity_service.entrypoints.worker", env=env, stderr=log
    )
    try:

        async def published() -> bool:
            try:
                messages = await read_topic(stack.kafka_bootstrap, CANDIDATE_TOPIC)
            except Exception:
                return False
            return any(m.envelope and m.envelope.event_id == event.event_id for m in messages)

        await eventually(published, timeout=60, interval=0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(worker.wait(), timeout=20)
        except TimeoutError:
            worker.kill()
            raise
        finally:
            log.close()
    assert worker.returncode == 0, log_path.read_text()[-2000:]
