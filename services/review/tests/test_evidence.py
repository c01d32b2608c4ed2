"""The evidence view: the `review_evidence` projection of credential-verify's events, the
evidence of a case's certificates (`evidence_for`), and its HTTP endpoint."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest

from contracts.application import ApplicationSubmitted
from contracts.credential import (
    CERTIFICATE_STREAM,
    DEGREE_STREAM,
    CertificateVerificationFailed,
    CertificateVerified,
    DegreeAuthorizationExpired,
    DegreesVerified,
)
from eventkit.envelope import Actor, EventEnvelope
from eventkit.projection import use_schema
from review_service.adapters.evidence import (
    EVIDENCE_SCHEMA,
    RecordStatus,
    ReviewEvidence,
    TranscriptMatch,
    evidence_for,
)
from review_service.domain.case import ReviewCase

pytestmark = pytest.mark.integration

BASE = "/api/review"
POINT, OTHER_POINT = "140105", "140106"
MakeClient = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]


def _example(event: type[Any]) -> dict[str, Any]:
    return dict(event.model_json_schema()["examples"][0])


def credential_envelope(event: type[Any], payload: dict[str, Any], version: int) -> EventEnvelope:
    stream = event.stream
    validated = event.model_validate(payload).model_dump(mode="json")
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event.event_type,
        schema_version=1,
        stream_type=stream.stream_type,
        stream_id=str(validated[stream.id_field]),
        stream_version=version,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor.system("review-tests"),
        payload=validated,
    )


def degrees_verified(
    candidate: uuid.UUID, degree_ref: uuid.UUID, *, version: int = 2, institution: str = "山西大学"
) -> EventEnvelope:
    payload = _example(DegreesVerified)
    degree = {**payload["degrees"][0], "degree_ref": str(degree_ref), "institution": institution}
    degree["transcript"] = [
        {"name": "民法学", "code": "00242", "credits": 7, "hours": 126, "score": "82",
         "assessment": "examination"},
        {"name": "刑法学（一）", "credits": 4, "score": "优秀", "assessment": "assessment"},
    ]  # fmt: skip
    payload.update(candidate_id=str(candidate), degrees=[degree])
    return credential_envelope(DegreesVerified, payload, version)


def degrees_expired(
    candidate: uuid.UUID, refs: list[uuid.UUID], *, version: int = 3
) -> EventEnvelope:
    payload = {**_example(DegreeAuthorizationExpired), "candidate_id": str(candidate)}
    payload["degree_refs"] = [str(r) for r in refs]
    return credential_envelope(DegreeAuthorizationExpired, payload, version)


def check_verified(candidate: uuid.UUID, check_id: uuid.UUID, *, version: int = 1) -> EventEnvelope:
    payload = {**_example(CertificateVerified), "candidate_id": str(candidate)}
    payload["check_id"] = str(check_id)
    return credential_envelope(CertificateVerified, payload, version)


def check_failed(candidate: uuid.UUID, check_id: uuid.UUID, *, version: int = 1) -> EventEnvelope:
    payload = {**_example(CertificateVerificationFailed), "candidate_id": str(candidate)}
    payload["check_id"] = str(check_id)
    return credential_envelope(CertificateVerificationFailed, payload, version)


class World:
    """A candidate with a degree certificate (two claimed courses) and a CET certificate."""

    def __init__(self) -> None:
        self.candidate = uuid.uuid4()
        self.application = uuid.uuid4()
        self.degree_ref = uuid.uuid4()
        self.check_id = uuid.uuid4()
        payload = _example(ApplicationSubmitted)
        degree_cert, cet_cert = (dict(c) for c in payload["certificates"])
        degree_cert["certificate_id"] = str(uuid.uuid4())
        degree_cert["degree"] = {**degree_cert["degree"], "degree_ref": str(self.degree_ref)}
        degree_cert["courses"] = [
            *degree_cert["courses"],
            {"course_code": "00245", "course_name": "刑法学", "major_code": "580401",
             "source_course_name": "刑法学(一)"},
            {"course_code": "00246", "course_name": "国际法", "major_code": "580401",
             "source_course_name": "国际法"},
        ]  # fmt: skip
        cet_cert["certificate_id"] = str(uuid.uuid4())
        cet_cert["certificate_check_ref"] = str(self.check_id)
        payload.update(
            application_id=str(self.application),
            candidate_id=str(self.candidate),
            confirmation_point_id=POINT,
            certificates=[degree_cert, cet_cert],
            course_codes=["00242", "00245", "00246", "00012"],
            submission_number=1,
        )
        self.submitted = ApplicationSubmitted.model_validate(payload)

    @property
    def case(self) -> ReviewCase:
        return ReviewCase.from_events([(self.submitted, datetime.now(UTC))])


@pytest.fixture
async def apply(review_db: asyncpg.Pool) -> Callable[..., Any]:
    async def run(*envelopes: EventEnvelope) -> None:
        for env in envelopes:
            async with review_db.acquire() as conn, conn.transaction():
                await use_schema(conn, EVIDENCE_SCHEMA)
                await ReviewEvidence().apply(conn, env)

    return run


async def _rows(pool: asyncpg.Pool, table: str) -> list[dict[str, Any]]:
    rows = await pool.fetch(f"SELECT * FROM {EVIDENCE_SCHEMA}.{table} ORDER BY 1")
    return [dict(r) for r in rows]


# --- the projection -----------------------------------------------------------------------------


async def test_degrees_verified_then_expired_and_redelivery_changes_nothing(
    review_db: asyncpg.Pool, apply: Callable[..., Any]
) -> None:
    w = World()
    verified = degrees_verified(w.candidate, w.degree_ref, version=2)
    await apply(verified, verified)
    [row] = await _rows(review_db, "degrees")
    assert row["candidate_id"] == w.candidate and row["withdrawn"] is False
    assert row["degree"]["institution"] == "山西大学"
    assert str(row["valid_until"]) == "2025-08-28"

    expired = degrees_expired(w.candidate, [w.degree_ref], version=3)
    await apply(expired, expired, verified)  # the stale DegreesVerified does not revive it
    [row] = await _rows(review_db, "degrees")
    assert row["withdrawn"] is True

    await apply(degrees_verified(w.candidate, w.degree_ref, version=4, institution="太原大学"))
    [row] = await _rows(review_db, "degrees")
    assert row["withdrawn"] is False and row["degree"]["institution"] == "太原大学"


async def test_an_unused_authorisation_expiring_touches_no_degree(
    review_db: asyncpg.Pool, apply: Callable[..., Any]
) -> None:
    w = World()
    await apply(degrees_verified(w.candidate, w.degree_ref), degrees_expired(w.candidate, []))
    [row] = await _rows(review_db, "degrees")
    assert row["withdrawn"] is False


async def test_certificate_checks_verified_and_failed_are_idempotent(
    review_db: asyncpg.Pool, apply: Callable[..., Any]
) -> None:
    w = World()
    failed_id = uuid.uuid4()
    ok, failed = check_verified(w.candidate, w.check_id), check_failed(w.candidate, failed_id)
    await apply(ok, ok, failed, failed)
    rows = {r["check_id"]: r for r in await _rows(review_db, "checks")}
    assert len(rows) == 2
    good = rows[w.check_id]
    assert (good["verified"], good["exam"], good["score"], good["exam_session"]) == (
        True, "cet4", 480, "2019-12",
    )  # fmt: skip
    assert good["reason_code"] is None
    bad = rows[failed_id]
    assert (bad["verified"], bad["exam"], bad["reason_code"]) == (False, "ncre", "not_found")
    assert bad["reason"] == "未查询到该证书，请核对证书编号"


async def test_unrelated_events_are_ignored(
    review_db: asyncpg.Pool, apply: Callable[..., Any]
) -> None:
    from contracts.credential import DegreeAuthorizationRequested

    payload = _example(DegreeAuthorizationRequested)
    await apply(credential_envelope(DegreeAuthorizationRequested, payload, 1))
    assert await _rows(review_db, "degrees") == []
    assert ReviewEvidence.topics == (DEGREE_STREAM.topic, CERTIFICATE_STREAM.topic)


# --- evidence_for -------------------------------------------------------------------------------


async def test_evidence_of_a_degree_route_and_a_certificate_route(
    review_db: asyncpg.Pool, apply: Callable[..., Any]
) -> None:
    w = World()
    await apply(
        degrees_verified(w.candidate, w.degree_ref), check_verified(w.candidate, w.check_id)
    )
    async with review_db.acquire() as conn:
        degree, cet = await evidence_for(conn, w.case)

    assert degree.kind == "degree" and degree.route_id == "DEGREE-SAME-NAME"
    assert degree.reference == w.degree_ref and degree.record is RecordStatus.FOUND
    assert degree.flags == [] and degree.check is None
    assert degree.photo_ids == list(w.submitted.certificates[0].photo_ids)
    assert degree.degree is not None
    facts = degree.degree.degree
    assert (facts.institution, facts.major_name, facts.level.value) == (
        "山西大学", "法律事务", "junior_college",
    )  # fmt: skip
    assert (facts.study_form, facts.category, facts.conclusion) == (
        "普通全日制",
        "普通高等教育",
        "毕业",
    )
    assert (facts.entry_year, facts.graduation_year) == (2018, 2021)
    assert facts.certificate_number == "101082021050001234"
    assert degree.degree.withdrawn is False and degree.degree.differs_from_submission == []
    by_code = {c.course_code: c for c in degree.courses}
    civil = by_code["00242"]
    assert civil.transcript_match is TranscriptMatch.MATCHED and civil.transcript_line is not None
    line = civil.transcript_line
    assert (line.name, line.code, line.credits, line.hours, line.score) == (
        "民法学", "00242", 7, 126, "82",
    )  # fmt: skip
    assert line.assessment is not None and line.assessment.value == "examination"
    criminal = by_code["00245"]  # 刑法学(一) ticked, 刑法学（一） printed: the same line
    assert criminal.transcript_match is TranscriptMatch.MATCHED
    assert criminal.transcript_line is not None and criminal.transcript_line.score == "优秀"
    assert by_code["00246"].transcript_match is TranscriptMatch.MISSING
    assert by_code["00246"].transcript_line is None

    assert cet.kind == "cet4_or_above" and cet.record is RecordStatus.FOUND and cet.flags == []
    assert cet.check is not None and cet.degree is None
    assert (cet.check.verified, cet.check.exam, cet.check.score, cet.check.exam_session) == (
        True, "cet4", 480, "2019-12",
    )  # fmt: skip
    assert [c.transcript_match for c in cet.courses] == [TranscriptMatch.NOT_APPLICABLE]


async def test_unknown_references_are_flagged(review_db: asyncpg.Pool) -> None:
    w = World()
    async with review_db.acquire() as conn:
        degree, cet = await evidence_for(conn, w.case)
    assert degree.record is RecordStatus.UNKNOWN and degree.flags == ["unknown"]
    assert degree.degree is None
    assert {c.transcript_match for c in degree.courses} == {TranscriptMatch.NO_DEGREE}
    assert cet.record is RecordStatus.UNKNOWN and cet.flags == ["unknown"] and cet.check is None


async def test_a_withdrawn_degree_and_a_failed_check_are_flagged(
    review_db: asyncpg.Pool, apply: Callable[..., Any]
) -> None:
    w = World()
    await apply(
        degrees_verified(w.candidate, w.degree_ref, institution="太原大学"),
        degrees_expired(w.candidate, [w.degree_ref]),
        check_failed(w.candidate, w.check_id),
    )
    async with review_db.acquire() as conn:
        degree, cet = await evidence_for(conn, w.case)
    assert degree.record is RecordStatus.FOUND and degree.flags == ["withdrawn"]
    assert degree.degree is not None and degree.degree.withdrawn is True
    assert degree.degree.differs_from_submission == ["institution"]
    assert cet.flags == ["check_failed"]
    assert cet.check is not None and cet.check.verified is False
    assert cet.check.reason_code == "not_found" and cet.check.reason


async def test_records_of_another_candidate_are_a_mismatch_and_not_shown(
    review_db: asyncpg.Pool, apply: Callable[..., Any]
) -> None:
    w, stranger = World(), uuid.uuid4()
    await apply(degrees_verified(stranger, w.degree_ref), check_verified(stranger, w.check_id))
    async with review_db.acquire() as conn:
        degree, cet = await evidence_for(conn, w.case)
    for item in (degree, cet):
        assert item.record is RecordStatus.MISMATCH and item.flags == ["mismatch"]
        assert item.degree is None and item.check is None


# --- HTTP ---------------------------------------------------------------------------------------


async def test_the_evidence_endpoint_answers_reviewers_who_may_see_the_case(
    make_client: MakeClient,
    feed: Any,
    apply: Callable[..., Any],
    staff_tokens: Any,
    review_events: Any,
) -> None:
    w = World()
    await feed.apply(
        review_events.envelope("ApplicationSubmitted", w.submitted.model_dump(mode="json"))
    )
    await apply(
        degrees_verified(w.candidate, w.degree_ref), check_verified(w.candidate, w.check_id)
    )
    path = f"{BASE}/cases/{w.application}/evidence"
    async with make_client() as (client, _):
        response = await client.get(path, headers=staff_tokens.staff(["reviewer"], [POINT]))
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["application_id"] == str(w.application)
        assert body["submission_number"] == 1
        degree, cet = body["certificates"]
        assert degree["record"] == "found"
        assert degree["degree"]["degree"]["institution"] == "山西大学"
        assert degree["courses"][0]["transcript_line"]["name"] == "民法学"
        assert cet["check"]["score"] == 480

        senior = await client.get(path, headers=staff_tokens.staff(["senior_reviewer"]))
        assert senior.status_code == 200

        elsewhere = await client.get(path, headers=staff_tokens.staff(["reviewer"], [OTHER_POINT]))
        assert elsewhere.status_code == 404
        assert elsewhere.json()["error"]["code"] == "review.case_not_found"

        unknown = await client.get(
            f"{BASE}/cases/{uuid.uuid4()}/evidence",
            headers=staff_tokens.staff(["reviewer"], [POINT]),
        )
        assert unknown.status_code == 404
