"""credential-verify's worker as a process on the real stack: it learns candidates from
identity's topic (once, however often they are delivered), relays the service's events to
Kafka, settles lapsed QR authorisations, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contracts.base import DEV_ONLY_ID_FINGERPRINT_KEY, fingerprint_id_number, mask_id_number
from contracts.credential import CERTIFICATE_TOPIC, DEGREE_TOPIC
from contracts.identity import CANDIDATE_STREAM, CandidateRegistered
from credential_verify_service.entrypoints.worker import route
from devstack.endpoints import Endpoints
from eventkit.envelope import Actor, EventEnvelope
from eventkit.testing import eventually, publish, read_topic

BASE = "/api/credentials"


@pytest.mark.unit
def test_both_streams_go_to_their_topics_and_nothing_else() -> None:
    assert route("credential.degree") == DEGREE_TOPIC == "credential.degree.v1"
    assert route("credential.certificate") == CERTIFICATE_TOPIC == "credential.certificate.v1"
    assert route("identity.candidate") is None
    assert route("credential.anything_else") is None
    assert route("") is None


def registered(candidate_id: uuid.UUID, name: str, id_number: str) -> EventEnvelope:
    """identity's CandidateRegistered, as identity's relay publishes it."""
    event = CandidateRegistered(
        candidate_id=candidate_id,
        admission_ticket_number="010118100002",
        name=name,
        gender="female",
        id_number_masked=mask_id_number(id_number),
        id_number_fingerprint=fingerprint_id_number(id_number, DEV_ONLY_ID_FINGERPRINT_KEY),
    )
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=CandidateRegistered.event_type,
        schema_version=1,
        stream_type=CANDIDATE_STREAM.stream_type,
        stream_id=str(candidate_id),
        stream_version=1,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor(kind="candidate", id=str(candidate_id)),
        payload=event.model_dump(mode="json"),
    )


@pytest.mark.integration
async def test_the_worker_learns_candidates_relays_and_settles_lapsed_authorisations(
    running: Any, register: Any, auth: Any, people: Any, sandboxes: Any,
    database: str, stack: Endpoints, tmp_path: Path,
) -> None:  # fmt: skip
    zhang, li = people["zhang"], people["li"]
    await register(zhang)
    await register(li)
    # (b) events the service appends: a verification code redeemed by 张建国.
    redeemed = await running.client.post(
        f"{BASE}/verification-codes", json={"code": "A7K3Q9X2M5T8B4RZ"}, headers=auth(zhang)
    )
    assert redeemed.status_code == 201, redeemed.text
    # (c) a QR authorisation of 李晓燕's that CHSI still reports pending, lapsed on our side.
    qr = await running.client.post(f"{BASE}/degree-authorizations", headers=auth(li))
    assert qr.status_code == 201, qr.text
    authorization_id = uuid.UUID(qr.json()["authorization_id"])
    await running.pool.execute(
        "UPDATE credential.authorizations SET expires_at = now() - interval '10 minutes'"
        " WHERE authorization_id = $1",
        authorization_id,
    )

    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": database,
        "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "EVENTKIT_LOG_JSON": "true",
        "CREDENTIAL_CHSI_URL": sandboxes.chsi,
        "CREDENTIAL_NEEA_URL": sandboxes.neea,
        "CREDENTIAL_EXPIRY_SWEEP_SECONDS": "0.5",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "credential_verify_service.entrypoints.worker",
            env=env,
            stderr=log,
            stdout=log,
        )
    try:
        # (a) a candidate announced by identity, delivered twice: applied once.
        newcomer = uuid.uuid4()
        announced = registered(newcomer, "孙丽", "140105199203154021")
        await publish(stack.kafka_bootstrap, CANDIDATE_STREAM.topic, [announced, announced])

        async def learned() -> bool:
            count = await running.pool.fetchval(
                "SELECT count(*) FROM credential_candidates.candidates WHERE candidate_id = $1",
                newcomer,
            )
            return bool(count)

        await eventually(learned, timeout=60, interval=0.25)
        row = await running.pool.fetchrow(
            "SELECT * FROM credential_candidates.candidates WHERE candidate_id = $1", newcomer
        )
        assert (row["name"], row["id_number_masked"]) == (
            "孙丽",
            mask_id_number("140105199203154021"),
        )

        # (c) the sweep expires the lapsed authorisation.
        async def expired() -> bool:
            status = await running.pool.fetchval(
                "SELECT status FROM credential.authorizations WHERE authorization_id = $1",
                authorization_id,
            )
            return bool(status == "expired")

        await eventually(expired, timeout=30, interval=0.25)

        # (b) every degree event relayed, keyed by the candidate.
        kinds = {
            str(zhang.candidate_id): ["DegreeAuthorizationRequested", "DegreesVerified"],
            str(li.candidate_id): ["DegreeAuthorizationRequested", "DegreeAuthorizationExpired"],
        }

        async def relayed() -> bool:
            try:
                messages = await read_topic(stack.kafka_bootstrap, DEGREE_TOPIC)
            except Exception:
                return False
            seen: dict[str, list[str]] = {key: [] for key in kinds}
            for m in messages:
                if m.envelope is not None and m.envelope.stream_id in seen:
                    assert m.key == m.envelope.stream_id.encode()
                    seen[m.envelope.stream_id].append(m.envelope.event_type)
            return seen == kinds

        await eventually(relayed, timeout=60, interval=0.5)

        # Applied once, settled once, and nothing more happens on later sweeps.
        assert (
            await running.pool.fetchval(
                "SELECT count(*) FROM credential_candidates.candidates WHERE candidate_id = $1",
                newcomer,
            )
            == 1
        )
        assert (
            await running.pool.fetchval(
                "SELECT count(*) FROM credential_candidates._inbox WHERE event_id = $1",
                announced.event_id,
            )
            == 1
        )
        await asyncio.sleep(1.5)  # three more sweeps
        assert len(await running.events("DegreeAuthorizationExpired")) == 1
        assert len(await running.events("DegreesVerified")) == 1
    finally:
        if worker.returncode is None:
            worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), timeout=30)
    assert code == 0, log_path.read_text()[-3000:]
