"""Review's worker as a process on the real stack: it keeps the submissions and the queue from
the application service's topics, relays its own decisions to Kafka, and lapses expired claims."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from contracts.application import EXEMPTION_STREAM, WINDOW_STREAM
from contracts.review import DECISION_STREAM
from devstack.endpoints import Endpoints
from eventkit.store import EventStore
from eventkit.testing import eventually, publish, read_topic
from review_service import bootstrap
from review_service.domain.access import Reviewer
from review_service.entrypoints.worker import CONSUMED_TOPICS, route
from review_service.service_layer.cases import Cases

POINT = "140105"


@pytest.mark.unit
def test_only_the_decision_stream_is_published() -> None:
    assert route(DECISION_STREAM.stream_type) == DECISION_STREAM.topic == "review.decision.v1"
    assert route(EXEMPTION_STREAM.stream_type) is None
    assert route("review.anything_else") is None
    assert set(CONSUMED_TOPICS) == {
        EXEMPTION_STREAM.topic, WINDOW_STREAM.topic, DECISION_STREAM.topic,
        "credential.degree.v1", "credential.certificate.v1",
        "identity.candidate.v1", "identity.staff.v1",
    }  # fmt: skip


@pytest.mark.integration
async def test_the_worker_keeps_the_queue_relays_claims_and_lapses_them(
    database: str, pool: asyncpg.Pool, stack: Endpoints, review_events: Any, tmp_path: Path
) -> None:
    await bootstrap.prepare_database(database)
    now = datetime.now(UTC)
    window_id, application_id = uuid.uuid4(), uuid.uuid4()
    point_close = (now + timedelta(days=10)).replace(microsecond=0)
    window = review_events.envelope(
        "ApplicationWindowOpened",
        review_events.window(
            window_id,
            opens_at=now - timedelta(days=30),
            applications_close_at=now + timedelta(days=1),
            point_review_close_at=point_close,
            province_review_close_at=now + timedelta(days=20),
            results_published_at=now + timedelta(days=30),
        ),
        stream=WINDOW_STREAM.topic,
    )
    submitted = review_events.envelope(
        "ApplicationSubmitted",
        review_events.snapshot(
            application_id=application_id,
            window_id=window_id,
            case_number=f"MK2026{uuid.uuid4().int % 10**6:06d}",
            point=POINT,
        ),
    )
    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": database,
        "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "EVENTKIT_LOG_JSON": "true",
        "REVIEW_LEASE_SWEEP_SECONDS": "0.5",
        "REVIEW_CLAIM_LEASE_MINUTES": "0.02",  # 1.2 s
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "review_service.entrypoints.worker", env=env, stderr=log
        )
    try:
        await publish(stack.kafka_bootstrap, WINDOW_STREAM.topic, [window])
        await publish(stack.kafka_bootstrap, EXEMPTION_STREAM.topic, [submitted, submitted])

        async def queued() -> asyncpg.Record | None:
            return await pool.fetchrow(
                "SELECT status, stage_deadline, claimed_by FROM review_queue.cases"
                " WHERE application_id = $1",
                application_id,
            )

        async def arrived() -> bool:
            row = await queued()
            return row is not None and row["stage_deadline"] is not None

        await eventually(arrived, timeout=60, interval=0.25)
        row = await queued()
        assert row is not None
        assert (row["status"], row["stage_deadline"]) == ("awaiting_point", point_close)
        kept = await pool.fetchval(
            "SELECT count(*) FROM review_submissions.inputs WHERE application_id = $1",
            application_id,
        )
        assert kept == 1  # delivered twice, kept once

        alice = Reviewer(uuid.uuid4(), frozenset({"reviewer"}), frozenset({POINT}))
        cases = Cases(pool, EventStore(pool), lease=timedelta(minutes=5))
        await cases.claim(alice, application_id, submission_number=1)

        async def relayed() -> bool:
            try:
                messages = await read_topic(stack.kafka_bootstrap, DECISION_STREAM.topic)
            except Exception:
                return False
            return any(
                m.envelope
                and m.envelope.stream_id == str(application_id)
                and m.envelope.event_type == "ReviewClaimed"
                and m.key == str(application_id).encode()
                for m in messages
            )

        async def claimed_in_queue() -> bool:
            row = await queued()
            return row is not None and row["claimed_by"] == alice.staff_id

        # the queue shows the claim until the sweeper's ReviewReleased comes back through Kafka
        await eventually(claimed_in_queue, timeout=60, interval=0.05)
        await eventually(relayed, timeout=60, interval=0.5)

        async def lapsed() -> bool:
            own = await EventStore(pool).load(DECISION_STREAM.stream_type, str(application_id))
            return any(
                e.event_type == "ReviewReleased" and e.payload.get("lapsed") is True for e in own
            )

        await eventually(lapsed, timeout=60, interval=0.25)
        own = await EventStore(pool).load(DECISION_STREAM.stream_type, str(application_id))
        assert [e.event_type for e in own] == ["ReviewClaimed", "ReviewReleased"]
        assert own[1].payload["reviewer_id"] == str(alice.staff_id)
        assert own[1].actor.id == "review-lease"

        async def released_in_queue() -> bool:
            row = await queued()
            return row is not None and row["claimed_by"] is None

        await eventually(released_in_queue, timeout=60, interval=0.25)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
