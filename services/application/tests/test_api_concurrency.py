"""Commands racing each other on one application: one wins, the other is a clean 409 (or a
no-op for review's policies), and the stream, folded, always matches the applications row."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from application_service.domain.application import ExemptionApplication
from application_service.service_layer.applications import ConcurrentChange
from contracts.application import EXEMPTION_STREAM
from contracts.base import ContractEvent, CourseDecision, CourseOutcome, ReviewStage
from contracts.registry import REGISTRY
from eventkit.envelope import Actor, EventEnvelope
from eventkit.store import EventStore

pytestmark = pytest.mark.integration

BASE = "/api/applications"
ROUNDS = 4


def cause(application_id: str) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid4(), event_type="ApplicationReturned", schema_version=1,
        stream_type="review.decision", stream_id=application_id, stream_version=1,
        occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
        actor=Actor(kind="staff", id="reviewer-1"), payload={},
    )  # fmt: skip


async def folded(service: Any, application_id: str) -> ExemptionApplication:
    """The application folded from its stream, checked against the `applications` row."""
    envelopes = await EventStore(service.pool).load(EXEMPTION_STREAM.stream_type, application_id)
    assert [e.stream_version for e in envelopes] == list(range(1, len(envelopes) + 1))
    events = [REGISTRY.decode(e) for e in envelopes]
    assert all(isinstance(e, ContractEvent) for e in events)
    state = ExemptionApplication.from_events(events)
    row = await service.pool.fetchrow(
        "SELECT * FROM application.applications WHERE application_id = $1",
        uuid.UUID(application_id),
    )
    assert (row["status"], row["submission_number"], row["case_number"], row["version"]) == (
        state.status.value,
        state.submission_number,
        state.case_number,
        len(envelopes),
    )
    return state


async def event_types(service: Any, application_id: str) -> list[str]:
    rows = await service.pool.fetch(
        "SELECT event_type FROM eventkit.events WHERE stream_id = $1 ORDER BY stream_version",
        application_id,
    )
    return [r["event_type"] for r in rows]


class Candidate:
    def __init__(self, client: httpx.AsyncClient, tokens: Any, evidence: Any, window: str) -> None:
        self.client = client
        self.id = uuid.uuid4()
        self.headers = tokens(self.id)
        self.evidence = evidence
        self.window = window

    async def cet(self, course: str = "13124") -> dict[str, Any]:
        return {
            "kind": "cet4_or_above" if course == "13124" else "ncre1_or_above",
            "route_id": "CET4-NEW" if course == "13124" else "NCRE1",
            "certificate_check_ref": await (
                self.evidence.check(self.id)
                if course == "13124"
                else self.evidence.check(self.id, "ncre", level=1)
            ),
            "photo_ids": [await self.evidence.photo(self.id)],
            "courses": [{"course_code": course, "major_code": "530605"}],
        }

    async def submitted(self) -> str:
        await self.evidence.registered(self.id)
        body = {"window_id": self.window, "confirmation_point_id": "140105", "plan": "new",
                "major_codes": ["530605"]}  # fmt: skip
        draft = await self.client.post(BASE, json=body, headers=self.headers)
        assert draft.status_code == 201, draft.text
        application_id = str(draft.json()["application_id"])
        added = await self.client.post(
            f"{BASE}/{application_id}/certificates", json=await self.cet(), headers=self.headers
        )
        assert added.status_code == 201, added.text
        submitted = await self.submit(application_id)
        assert submitted.status_code == 200, submitted.text
        return application_id

    async def submit(self, application_id: str) -> httpx.Response:
        return await self.client.post(
            f"{BASE}/{application_id}/submit",
            json={"declaration_accepted": True},
            headers=self.headers,
        )


async def policy(service: Any, application_id: str, action: str, submission: int) -> str:
    """Review's policy in a transaction of its own: "applied", "no-op" or "conflict"."""
    produced = "ApplicationReturnedToCandidate" if action == "return" else "ApplicationDecided"
    before = (await event_types(service, application_id)).count(produced)
    try:
        async with service.pool.acquire() as conn, conn.transaction():
            if action == "return":
                await service.applications.on_returned(
                    conn, cause(application_id), application_id=uuid.UUID(application_id),
                    stage=ReviewStage.CONFIRMATION_POINT, reason="照片不清晰，请重新上传",
                    submission_number=submission,
                )  # fmt: skip
            else:
                await service.applications.on_decided(
                    conn, cause(application_id), application_id=uuid.UUID(application_id),
                    decisions=[CourseDecision(course_code="13124", major_code="530605",
                                              outcome=CourseOutcome.GRANTED)],
                )  # fmt: skip
    except ConcurrentChange:
        return "conflict"
    after = (await event_types(service, application_id)).count(produced)
    return "applied" if after > before else "no-op"


def clean_409(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] in (
        "application.concurrent_change",
        "application.already_submitted",
        "application.already_decided",
    ), response.text


@pytest.mark.parametrize("action", ["return", "decide"])
async def test_a_submission_racing_review(
    client: httpx.AsyncClient, tokens: Any, evidence: Any, open_window: str, service: Any,
    action: str,
) -> None:  # fmt: skip
    """A submitted application: the candidate presses 提交 again while review returns or
    decides it. Whichever commits first wins; the stream and the row agree."""
    for _ in range(ROUNDS):
        candidate = Candidate(client, tokens, evidence, open_window)
        application_id = await candidate.submitted()
        response, outcome = await asyncio.gather(
            candidate.submit(application_id), policy(service, application_id, action, 1)
        )
        state = await folded(service, application_id)
        if response.status_code == 200:
            # The return won, then the candidate resubmitted it.
            assert action == "return" and outcome == "applied"
            assert (state.status.value, state.submission_number) == ("submitted", 2)
        else:
            clean_409(response)
            if outcome == "applied":
                expected = "returned" if action == "return" else "decided"
                assert state.status.value == expected
            else:
                assert outcome == "conflict"
                assert state.status.value == "submitted"
        types = await event_types(service, application_id)
        assert types.count("ApplicationSubmitted") == 1


@pytest.mark.parametrize("action", ["return", "decide"])
async def test_a_resubmission_racing_review(
    client: httpx.AsyncClient, tokens: Any, evidence: Any, open_window: str, service: Any,
    action: str,
) -> None:  # fmt: skip
    """A returned application being resubmitted while a (stale or duplicate) return or a
    decision for submission 1 arrives: the policy is a no-op or loses; never a mixed state."""
    for _ in range(ROUNDS):
        candidate = Candidate(client, tokens, evidence, open_window)
        application_id = await candidate.submitted()
        assert await policy(service, application_id, "return", 1) == "applied"
        response, outcome = await asyncio.gather(
            candidate.submit(application_id), policy(service, application_id, action, 1)
        )
        state = await folded(service, application_id)
        assert outcome in ("no-op", "conflict"), outcome
        assert response.status_code == 200, response.text
        assert (state.status.value, state.submission_number) == ("submitted", 2)
        types = await event_types(service, application_id)
        assert types.count("ApplicationReturnedToCandidate") == 1
        assert types.count("ApplicationResubmitted") == 1
        assert "ApplicationDecided" not in types


async def test_a_double_withdraw_withdraws_once(
    client: httpx.AsyncClient, tokens: Any, evidence: Any, open_window: str, service: Any
) -> None:
    for _ in range(ROUNDS):
        candidate = Candidate(client, tokens, evidence, open_window)
        application_id = await candidate.submitted()
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{BASE}/{application_id}/withdraw",
                    json={"reason": "不再申请"},
                    headers=candidate.headers,
                )
                for _ in range(3)
            )
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409, 409], [r.text for r in responses]
        for r in responses:
            if r.status_code == 409:
                assert r.json()["error"]["code"] in (
                    "application.concurrent_change",
                    "application.already_withdrawn",
                )
        state = await folded(service, application_id)
        assert state.status.value == "withdrawn"
        assert (await event_types(service, application_id)).count("ApplicationWithdrawn") == 1


async def test_adding_a_certificate_racing_a_removal(
    client: httpx.AsyncClient, tokens: Any, evidence: Any, open_window: str, service: Any
) -> None:
    for _ in range(ROUNDS):
        candidate = Candidate(client, tokens, evidence, open_window)
        await evidence.registered(candidate.id)
        body = {"window_id": open_window, "confirmation_point_id": "140105", "plan": "new",
                "major_codes": ["530605"]}  # fmt: skip
        draft = await client.post(BASE, json=body, headers=candidate.headers)
        application_id = draft.json()["application_id"]
        first = await client.post(
            f"{BASE}/{application_id}/certificates",
            json=await candidate.cet(),
            headers=candidate.headers,
        )
        assert first.status_code == 201, first.text
        certificate_id = first.json()["certificates"][0]["certificate_id"]
        second = await candidate.cet("00018")
        added, removed = await asyncio.gather(
            client.post(
                f"{BASE}/{application_id}/certificates", json=second, headers=candidate.headers
            ),
            client.delete(
                f"{BASE}/{application_id}/certificates/{certificate_id}",
                headers=candidate.headers,
            ),
        )
        assert sorted([added.status_code, removed.status_code]) in (
            [200, 201],
            [201, 409],
            [200, 409],
        ), (
            added.text,
            removed.text,
        )
        for response in (added, removed):
            if response.status_code == 409:
                assert response.json()["error"]["code"] == "application.concurrent_change"
        state = await folded(service, application_id)
        expected = {"13124", "00018"}
        if added.status_code != 201:
            expected.discard("00018")
        if removed.status_code == 200:
            expected.discard("13124")
        assert set(state.course_codes) == expected
        details = await client.get(f"{BASE}/{application_id}", headers=candidate.headers)
        assert set(details.json()["course_codes"]) == expected
