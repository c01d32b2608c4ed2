"""The application worker as a process on the real stack: it learns evidence from identity,
credential-verify and media, relays the service's events to Kafka, applies review's returns and
decisions once however often they are delivered, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from application_service.entrypoints.worker import CONSUMED_TOPICS, route
from contracts.application import EXEMPTION_STREAM, WINDOW_STREAM
from contracts.base import ContractEvent, CourseDecision, CourseOutcome, ReviewStage
from contracts.credential import CertificateExam, CertificateVerified
from contracts.identity import CandidateRegistered
from contracts.media import PhotoFormat, PhotoUploaded
from contracts.review import DECISION_STREAM, ApplicationApproved, ApplicationReturned
from devstack import Endpoints
from eventkit.envelope import Actor, EventEnvelope
from eventkit.testing import eventually, publish, read_topic

BASE = "/api/applications"


@pytest.mark.unit
def test_the_service_streams_go_to_their_topics_and_nothing_else() -> None:
    assert route("application.exemption") == EXEMPTION_STREAM.topic == "application.exemption.v1"
    assert route("application.window") == WINDOW_STREAM.topic == "application.window.v1"
    assert route("review.decision") is None
    assert route("identity.candidate") is None
    assert route("application.anything_else") is None
    assert route("") is None
    assert set(CONSUMED_TOPICS) == {
        "identity.candidate.v1",
        "credential.degree.v1",
        "credential.certificate.v1",
        "media.photo.v1",
        "review.decision.v1",
    }


def envelope_of(event: ContractEvent, stream_id: uuid.UUID, version: int = 1) -> EventEnvelope:
    """`event` as its service's relay publishes it."""
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event.event_type,
        schema_version=event.schema_version,
        stream_type=event.stream.stream_type,
        stream_id=str(stream_id),
        stream_version=version,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor.system("test"),
        payload=event.model_dump(mode="json"),
    )


async def status_of(service: Any, application_id: str) -> str:
    return str(
        await service.pool.fetchval(
            "SELECT status FROM application.applications WHERE application_id = $1",
            uuid.UUID(application_id),
        )
    )


async def count_events(service: Any, application_id: str, event_type: str) -> int:
    return int(
        await service.pool.fetchval(
            "SELECT count(*) FROM eventkit.events WHERE stream_id = $1 AND event_type = $2",
            application_id,
            event_type,
        )
    )


@pytest.mark.integration
async def test_the_worker_learns_evidence_relays_and_applies_review(
    service: Any, client: httpx.AsyncClient, tokens: Any, open_window: str,
    database: str, stack: Endpoints, tmp_path: Path,
) -> None:  # fmt: skip
    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": database,
        "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "EVENTKIT_LOG_JSON": "true",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "application_service.entrypoints.worker",
            env=env, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        me, check_id, photo_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        registered = envelope_of(
            CandidateRegistered(
                candidate_id=me, admission_ticket_number="010118100003", name="王芳",
                gender="female", id_number_masked="1401**********2021",
                id_number_fingerprint="c" * 64,
            ),
            me,
        )  # fmt: skip
        verified = envelope_of(
            CertificateVerified(
                check_id=check_id, candidate_id=me, exam=CertificateExam.CET4, score=500,
                exam_session="2015-12",
            ),
            check_id,
        )  # fmt: skip
        uploaded = envelope_of(
            PhotoUploaded(
                photo_id=photo_id, owner_id=me, width=1600, height=1200, size_bytes=200_000,
                sha256="d" * 64, formats=[PhotoFormat.JPEG],
            ),
            photo_id,
        )  # fmt: skip
        await publish(stack.kafka_bootstrap, "identity.candidate.v1", [registered, registered])
        await publish(stack.kafka_bootstrap, "credential.certificate.v1", [verified])
        await publish(stack.kafka_bootstrap, "media.photo.v1", [uploaded])

        async def learned() -> bool:
            row = await service.pool.fetchrow(
                """
                SELECT (SELECT count(*) FROM application_evidence.candidates
                        WHERE candidate_id = $1) AS candidates,
                       (SELECT count(*) FROM application_evidence.checks
                        WHERE check_id = $2 AND verified) AS checks,
                       (SELECT count(*) FROM application_evidence.photos
                        WHERE photo_id = $3 AND owner_id = $1) AS photos
                """,
                me,
                check_id,
                photo_id,
            )
            return tuple(row.values()) == (1, 1, 1)

        await eventually(learned, timeout=90, interval=0.25)
        name = await service.pool.fetchval(
            "SELECT name FROM application_evidence.candidates WHERE candidate_id = $1", me
        )
        assert name == "王芳"

        # The candidate applies through the API on the same database.
        headers = tokens(me)
        draft = await client.post(
            BASE,
            json={"window_id": open_window, "confirmation_point_id": "140105", "plan": "new",
                  "major_codes": ["530605"]},
            headers=headers,
        )  # fmt: skip
        assert draft.status_code == 201, draft.text
        application_id = str(draft.json()["application_id"])
        added = await client.post(
            f"{BASE}/{application_id}/certificates",
            json={"kind": "cet4_or_above", "route_id": "CET4-NEW",
                  "certificate_check_ref": str(check_id), "photo_ids": [str(photo_id)],
                  "courses": [{"course_code": "13124", "major_code": "530605"}]},
            headers=headers,
        )  # fmt: skip
        assert added.status_code == 201, added.text
        submitted = await client.post(
            f"{BASE}/{application_id}/submit", json={"declaration_accepted": True}, headers=headers
        )
        assert submitted.status_code == 200, submitted.text
        case_number = submitted.json()["case_number"]

        async def relayed() -> bool:
            try:
                messages = await read_topic(stack.kafka_bootstrap, EXEMPTION_STREAM.topic)
            except Exception:
                return False
            ours = [
                m
                for m in messages
                if m.envelope is not None and m.envelope.stream_id == application_id
            ]
            for m in ours:
                assert m.key == application_id.encode()
            return "ApplicationSubmitted" in [m.envelope.event_type for m in ours if m.envelope]

        await eventually(relayed, timeout=60, interval=0.5)

        # Review returns it: delivered twice, and once more under another event id.
        returned = envelope_of(
            ApplicationReturned(
                application_id=uuid.UUID(application_id), case_number=case_number,
                submission_number=1, stage=ReviewStage.CONFIRMATION_POINT,
                reviewer_id=uuid.uuid4(), reason="证书照片不清晰，请重新上传",
            ),
            uuid.UUID(application_id),
        )  # fmt: skip
        again = returned.model_copy(update={"event_id": uuid.uuid4(), "stream_version": 2})
        await publish(stack.kafka_bootstrap, DECISION_STREAM.topic, [returned, returned, again])

        async def is_returned() -> bool:
            return await status_of(service, application_id) == "returned"

        await eventually(is_returned, timeout=60, interval=0.25)

        # The candidate resubmits; the province's preliminary pass changes nothing, the final
        # decision decides it.
        resubmitted = await client.post(
            f"{BASE}/{application_id}/submit", json={"declaration_accepted": True}, headers=headers
        )
        assert resubmitted.status_code == 200, resubmitted.text
        assert resubmitted.json()["submission_number"] == 2
        decisions = [
            CourseDecision(course_code="13124", major_code="530605", outcome=CourseOutcome.GRANTED)
        ]

        def approved(final: bool, version: int) -> EventEnvelope:
            return envelope_of(
                ApplicationApproved(
                    application_id=uuid.UUID(application_id), case_number=case_number,
                    submission_number=2,
                    stage=ReviewStage.PROVINCIAL if final else ReviewStage.CONFIRMATION_POINT,
                    reviewer_id=uuid.uuid4(), decisions=decisions, final=final,
                ),
                uuid.UUID(application_id),
                version,
            )  # fmt: skip

        preliminary, final = approved(False, 3), approved(True, 4)
        await publish(stack.kafka_bootstrap, DECISION_STREAM.topic, [preliminary, final, final])

        async def is_decided() -> bool:
            return await status_of(service, application_id) == "decided"

        await eventually(is_decided, timeout=60, interval=0.25)
        details = await client.get(f"{BASE}/{application_id}", headers=headers)
        assert [(d["course_code"], d["outcome"]) for d in details.json()["decisions"]] == [
            ("13124", "granted")
        ]
        assert await count_events(service, application_id, "ApplicationReturnedToCandidate") == 1
        assert await count_events(service, application_id, "ApplicationDecided") == 1
        assert (
            await service.pool.fetchval(
                "SELECT count(*) FROM application_evidence.candidates WHERE candidate_id = $1", me
            )
            == 1
        )

        async def decision_relayed() -> bool:
            try:
                messages = await read_topic(stack.kafka_bootstrap, EXEMPTION_STREAM.topic)
            except Exception:
                return False
            types = [
                m.envelope.event_type
                for m in messages
                if m.envelope is not None and m.envelope.stream_id == application_id
            ]
            return (
                types.count("ApplicationDecided") == 1
                and types.count("ApplicationReturnedToCandidate") == 1
            )

        await eventually(decision_relayed, timeout=60, interval=0.5)
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
    # Our events were applied, none dead-lettered (older runs' review events for applications
    # this database never saw may be: they are not ours).
    ours = [registered.event_id, verified.event_id, uploaded.event_id, returned.event_id,
            again.event_id, preliminary.event_id, final.event_id]  # fmt: skip
    dead = await service.pool.fetch(
        "SELECT event_type, error FROM eventkit.dead_letters WHERE event_id = ANY($1::uuid[])", ours
    )
    assert dead == [], dead
