"""Review's use cases on the real database: a case from submission to the province's decision,
claims that name their holder, a return and the resubmission, and concurrent decisions."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts.application import ApplicationResubmitted, ApplicationSubmitted
from eventkit.db import create_pool
from eventkit.envelope import Actor, EventEnvelope
from eventkit.projection import use_schema
from eventkit.store import EventStore
from review_service import bootstrap
from review_service.adapters.submissions import SUBMISSIONS_SCHEMA, Submissions
from review_service.domain.access import Reviewer
from review_service.domain.case import CaseStatus, Verdict
from review_service.domain.errors import AlreadyClaimed, CaseNotFound, ReviewError
from review_service.service_layer.cases import Cases, ConcurrentDecision

pytestmark = pytest.mark.integration

POINT = "140105"
ALICE = Reviewer(uuid.uuid4(), frozenset({"reviewer"}), frozenset({POINT}))
BOB = Reviewer(uuid.uuid4(), frozenset({"reviewer"}), frozenset({POINT}))
ELSEWHERE = Reviewer(uuid.uuid4(), frozenset({"reviewer"}), frozenset({"140106"}))
SENIOR = Reviewer(uuid.uuid4(), frozenset({"senior_reviewer"}))
SENIOR_2 = Reviewer(uuid.uuid4(), frozenset({"senior_reviewer"}))


@pytest.fixture
async def review_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    await bootstrap.prepare_database(database)  # every schema the service layer reads
    pool = await create_pool(database, min_size=1, max_size=10)
    yield pool
    await pool.close()


@pytest.fixture
def cases(review_pool: asyncpg.Pool) -> Cases:
    return Cases(review_pool, EventStore(review_pool))


async def submit(pool: asyncpg.Pool, application_id: uuid.UUID, number: int = 1) -> dict[str, Any]:
    """Apply the application service's (re)submission to the submissions projection."""
    example = ApplicationSubmitted.model_json_schema()["examples"][0]
    model = ApplicationSubmitted if number == 1 else ApplicationResubmitted
    payload = model.model_validate(
        {**example, "application_id": str(application_id), "confirmation_point_id": POINT,
         "submission_number": number}
    ).model_dump(mode="json")  # fmt: skip
    envelope = EventEnvelope(
        event_id=uuid.uuid4(), event_type=model.event_type, schema_version=1,
        stream_type="application.exemption", stream_id=str(application_id),
        stream_version=10 * number, occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
        actor=Actor(kind="candidate", id=payload["candidate_id"]), payload=payload,
    )  # fmt: skip
    async with pool.acquire() as conn, conn.transaction():
        await use_schema(conn, SUBMISSIONS_SCHEMA)
        await Submissions().apply(conn, envelope)
        await Submissions().apply(conn, envelope)  # redelivered: kept once
    return payload


def verdicts(payload: dict[str, Any], deny: str | None = None) -> list[Verdict]:
    return [
        Verdict(c, "denied", "证书取得时间不在有效期内") if c == deny else Verdict(c, "granted")
        for c in payload["course_codes"]
    ]


async def test_a_case_from_submission_to_the_provinces_decision(
    cases: Cases, review_pool: asyncpg.Pool
) -> None:
    application_id = uuid.uuid4()
    payload = await submit(review_pool, application_id)
    with pytest.raises(CaseNotFound):
        await cases.view(ELSEWHERE, application_id)
    case = await cases.claim(ALICE, application_id, submission_number=1)
    assert case.active_claim is not None
    with pytest.raises(AlreadyClaimed) as caught:
        await cases.claim(BOB, application_id, submission_number=1)
    assert "审核员" in caught.value.message and "办理" in caught.value.message
    case = await cases.complete_initial_review(
        ALICE, application_id, submission_number=1, verdicts=verdicts(payload), note="原件已核验"
    )
    assert case.status is CaseStatus.AWAITING_PROVINCE
    await cases.claim(SENIOR, application_id, submission_number=1)
    case = await cases.approve(
        SENIOR, application_id, submission_number=1,
        verdicts=verdicts(payload, deny=payload["course_codes"][-1]),
    )  # fmt: skip
    assert case.status is CaseStatus.DECIDED
    _, trail = await cases.history(SENIOR, application_id)
    assert [e.event_type for e in trail] == [
        "ApplicationSubmitted", "ReviewClaimed", "InitialReviewCompleted", "ReviewClaimed",
        "ApplicationApproved",
    ]  # fmt: skip
    approved = trail[-1]
    assert approved.payload["final"] is True
    assert approved.actor.id == str(SENIOR.staff_id)
    with pytest.raises(ReviewError):
        await cases.claim(SENIOR_2, application_id, submission_number=1)


async def test_a_return_and_the_resubmission_open_a_new_round(
    cases: Cases, review_pool: asyncpg.Pool
) -> None:
    application_id = uuid.uuid4()
    await submit(review_pool, application_id)
    await cases.claim(ALICE, application_id, submission_number=1)
    case = await cases.return_to_candidate(
        ALICE, application_id, submission_number=1, reason="学历证书照片不清晰，请重新上传"
    )
    assert case.status is CaseStatus.RETURNED
    await asyncio.sleep(0.01)
    await submit(review_pool, application_id, number=2)
    case = await cases.view(BOB, application_id)
    assert (case.status, case.submission_number) == (CaseStatus.AWAITING_POINT, 2)
    with pytest.raises(ReviewError):  # acting on the old round is stale
        await cases.claim(BOB, application_id, submission_number=1)
    await cases.claim(BOB, application_id, submission_number=2)


async def test_two_concurrent_decisions_one_wins(cases: Cases, review_pool: asyncpg.Pool) -> None:
    application_id = uuid.uuid4()
    payload = await submit(review_pool, application_id)
    await cases.claim(ALICE, application_id, submission_number=1)
    results = await asyncio.gather(
        cases.complete_initial_review(
            ALICE, application_id, submission_number=1, verdicts=verdicts(payload), note=None
        ),
        cases.return_to_candidate(
            ALICE, application_id, submission_number=1, reason="成绩单未加盖学校公章"
        ),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, BaseException)]
    assert len(wins) == 1 and len(losses) == 1
    assert isinstance(losses[0], (ConcurrentDecision, ReviewError))
    own = await EventStore(review_pool).load("review.decision", str(application_id))
    assert own[0].event_type == "ReviewClaimed"
    assert len(own) == 2  # the claim and exactly one decision


async def test_an_expired_claim_lapses_and_another_reviewer_takes_it(
    review_pool: asyncpg.Pool,
) -> None:
    clock = [datetime.now(UTC)]
    cases = Cases(review_pool, EventStore(review_pool), lease=timedelta(minutes=30),
                  clock=lambda: clock[0])  # fmt: skip
    application_id = uuid.uuid4()
    await submit(review_pool, application_id)
    await cases.claim(ALICE, application_id, submission_number=1)
    clock[0] += timedelta(minutes=31)
    assert await cases.lapse_expired([application_id]) == 1
    assert await cases.lapse_expired([application_id]) == 0
    case = await cases.claim(BOB, application_id, submission_number=1)
    assert case.active_claim is not None and case.active_claim.holder_id == BOB.staff_id
