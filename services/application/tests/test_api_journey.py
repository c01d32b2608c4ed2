"""The application API on the real database and the demo catalogue: a whole journey from draft
to decision, with the return and resubmission in between, and the key refusals."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.base import CourseDecision, CourseOutcome, ReviewStage
from contracts.credential import (
    CertificateExam,
    CertificateVerified,
    DegreeLevel,
    DegreesVerified,
    TranscriptCourse,
    VerifiedDegree,
)
from contracts.identity import CandidateRegistered
from contracts.media import PhotoDeleted, PhotoFormat, PhotoUploaded
from eventkit.envelope import Actor, EventEnvelope

pytestmark = pytest.mark.integration

ZHANG = uuid.uuid4()
OPS = uuid.uuid4()


async def registered(facts: Any, candidate_id: uuid.UUID, name: str = "张建国") -> None:
    await facts.apply(
        CandidateRegistered(
            candidate_id=candidate_id,
            admission_ticket_number="010118100001",
            name=name,
            gender="male",
            id_number_masked="1401**********2018",
            id_number_fingerprint="a" * 64,
        ),
        candidate_id,
    )


async def photo(facts: Any, owner: uuid.UUID) -> str:
    photo_id = uuid.uuid4()
    await facts.apply(
        PhotoUploaded(
            photo_id=photo_id, owner_id=owner, width=1600, height=1200, size_bytes=100_000,
            sha256="b" * 64, formats=[PhotoFormat.JPEG],
        ),
        photo_id,
    )  # fmt: skip
    return str(photo_id)


async def law_degree(facts: Any, owner: uuid.UUID, category: str = "高等教育自学考试") -> str:
    ref = uuid.uuid4()
    lines = [("民法学", "00242", 7.0, "85"), ("刑法学", "00245", 7.0, "77"),
             ("宪法学", "05679", 4.0, "81"), ("大学语文", "04729", 4.0, "良好")]  # fmt: skip
    degree = VerifiedDegree(
        degree_ref=ref,
        institution="山西大学",
        major_name="法律事务",
        level=DegreeLevel.JUNIOR_COLLEGE,
        study_form="自学考试",
        category=category,
        entry_year=2010,
        graduation_year=2013,
        conclusion="毕业",
        certificate_number="101086201306000123",
        holder_matches_candidate=True,
        chsi_verified_at=datetime.now(UTC),
        transcript=[
            TranscriptCourse(name=n, code=c, credits=cr, score=s, assessment="examination")
            for n, c, cr, s in lines
        ],
    )
    await facts.apply(
        DegreesVerified(candidate_id=owner, authorization_id=uuid.uuid4(), degrees=[degree]),
        owner,
    )
    return str(ref)


async def cet4(facts: Any, owner: uuid.UUID, score: int = 480) -> str:
    check_id = uuid.uuid4()
    await facts.apply(
        CertificateVerified(
            check_id=check_id, candidate_id=owner, exam=CertificateExam.CET4, score=score,
            exam_session="2012-06",
        ),
        check_id,
    )  # fmt: skip
    return str(check_id)


@pytest.fixture
async def window(client: Any, tokens: Any, service: Any) -> str:
    from datetime import timedelta

    now = datetime.now(UTC)
    body = {
        "name": "2026年下半年免考申请",
        "opens_at": (now - timedelta(days=1)).isoformat(),
        "applications_close_at": (now + timedelta(days=5)).isoformat(),
        "point_review_close_at": (now + timedelta(days=15)).isoformat(),
        "province_review_close_at": (now + timedelta(days=25)).isoformat(),
        "results_published_at": (now + timedelta(days=30)).isoformat(),
    }
    staff = tokens(OPS, "staff", ["ops"])
    response = await client.post("/api/windows", json=body, headers=staff)
    assert response.status_code == 201, response.text
    assert response.json()["stage"] == "applying"
    return str(response.json()["window_id"])


def error_of(response: Any) -> str:
    return str(response.json()["error"]["code"])


async def test_a_whole_journey_from_draft_to_decision(
    client: Any, tokens: Any, facts: Any, window: str, service: Any
) -> None:
    me = tokens(ZHANG)
    await registered(facts, ZHANG)
    degree_ref = await law_degree(facts, ZHANG)
    photo_id = await photo(facts, ZHANG)

    majors = await client.get("/api/catalogue/majors", params={"plan": "old"})
    assert "580401" in [m["code"] for m in majors.json()]
    draft = await client.post(
        "/api/applications",
        json={"window_id": window, "confirmation_point_id": "140105", "plan": "old",
              "major_codes": ["580401"]},
        headers=me,
    )  # fmt: skip
    assert draft.status_code == 201, draft.text
    application_id = draft.json()["application_id"]
    assert draft.json()["status"] == "draft"

    again = await client.post(
        "/api/applications",
        json={"window_id": window, "confirmation_point_id": "140105", "plan": "old",
              "major_codes": ["580401"]},
        headers=me,
    )  # fmt: skip
    assert (again.status_code, error_of(again)) == (409, "application.open_application_exists")

    certificate = {
        "kind": "degree",
        "route_id": "DEGREE",
        "degree_ref": degree_ref,
        "photo_ids": [photo_id],
        "courses": [
            {"course_code": "00242", "major_code": "580401", "source_course_name": "民法学"},
            {"course_code": "00245", "major_code": "580401", "source_course_name": "刑法学"},
        ],
    }
    added = await client.post(
        f"/api/applications/{application_id}/certificates", json=certificate, headers=me
    )
    assert added.status_code == 201, added.text
    assert added.json()["course_codes"] == ["00242", "00245"]

    unticked = await client.post(
        f"/api/applications/{application_id}/submit",
        json={"declaration_accepted": False},
        headers=me,
    )
    assert (unticked.status_code, error_of(unticked)) == (422, "application.declaration_required")
    submitted = await client.post(
        f"/api/applications/{application_id}/submit",
        json={"declaration_accepted": True},
        headers=me,
    )
    assert submitted.status_code == 200, submitted.text
    body = submitted.json()
    assert body["status"] == "submitted"
    year = datetime.now(UTC).year
    assert body["case_number"] == f"MK{year}000001"

    # Review returns it (the policy the worker runs), the candidate fixes and resubmits.
    cause = EventEnvelope(
        event_id=uuid.uuid4(), event_type="ApplicationReturned", schema_version=1,
        stream_type="review.decision", stream_id=application_id, stream_version=1,
        occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
        actor=Actor(kind="staff", id="reviewer-1"), payload={},
    )  # fmt: skip
    async with service.pool.acquire() as conn, conn.transaction():
        await service.applications.on_returned(
            conn, cause, application_id=uuid.UUID(application_id),
            stage=ReviewStage.CONFIRMATION_POINT, reason="学历证书照片不清晰，请重新上传",
            submission_number=1,
        )  # fmt: skip
    returned = (await client.get(f"/api/applications/{application_id}", headers=me)).json()
    assert returned["status"] == "returned"
    assert returned["last_return"]["reason"] == "学历证书照片不清晰，请重新上传"

    certificate_id = returned["certificates"][0]["certificate_id"]
    removed = await client.delete(
        f"/api/applications/{application_id}/certificates/{certificate_id}", headers=me
    )
    assert removed.status_code == 200, removed.text
    certificate["photo_ids"] = [await photo(facts, ZHANG)]
    assert (
        await client.post(
            f"/api/applications/{application_id}/certificates", json=certificate, headers=me
        )
    ).status_code == 201
    resubmitted = await client.post(
        f"/api/applications/{application_id}/submit",
        json={"declaration_accepted": True},
        headers=me,
    )
    assert resubmitted.status_code == 200, resubmitted.text
    assert (resubmitted.json()["submission_number"], resubmitted.json()["case_number"]) == (
        2,
        f"MK{year}000001",
    )

    decisions = [
        CourseDecision(course_code="00242", major_code="580401", outcome=CourseOutcome.GRANTED),
        CourseDecision(
            course_code="00245", major_code="580401", outcome=CourseOutcome.DENIED,
            reason="成绩单课程学时不足",
        ),
    ]  # fmt: skip
    async with service.pool.acquire() as conn, conn.transaction():
        await service.applications.on_decided(
            conn, cause, application_id=uuid.UUID(application_id), decisions=decisions
        )
        # The same decision delivered again changes nothing.
        await service.applications.on_decided(
            conn, cause, application_id=uuid.UUID(application_id), decisions=decisions
        )
    final = (await client.get(f"/api/applications/{application_id}", headers=me)).json()
    assert final["status"] == "decided"
    assert final["confirmation_point_name"].endswith("小店区")
    assert final["majors"] == [
        {"code": "580401", "name": "法律事务", "label": "580401 法律事务(专科)(旧)"}
    ]
    assert [(d["course_code"], d["outcome"]) for d in final["decisions"]] == [
        ("00242", "granted"),
        ("00245", "denied"),
    ]
    labels = [t["label"] for t in final["timeline"]]
    assert labels == ["创建申请", "新增免考课程", "提交申请", "被退回", "删除课程",
                      "新增免考课程", "重新申请", "审核完成"]  # fmt: skip

    # Exempted now: a new application cannot claim 00242 again.
    listed = (await client.get("/api/applications", headers=me)).json()["applications"]
    assert [a["application_id"] for a in listed] == [application_id]


async def test_another_candidates_application_does_not_exist_for_them(
    client: Any, tokens: Any, facts: Any, window: str
) -> None:
    await registered(facts, ZHANG)
    draft = await client.post(
        "/api/applications",
        json={"window_id": window, "confirmation_point_id": "140105", "plan": "old",
              "major_codes": ["580401"]},
        headers=tokens(ZHANG),
    )  # fmt: skip
    other = tokens(uuid.uuid4())
    application_id = draft.json()["application_id"]
    for response in (
        await client.get(f"/api/applications/{application_id}", headers=other),
        await client.post(
            f"/api/applications/{application_id}/submit",
            json={"declaration_accepted": True},
            headers=other,
        ),
    ):
        assert (response.status_code, error_of(response)) == (404, "application.not_found")


async def test_concurrent_drafts_leave_one_open_application(
    client: Any, tokens: Any, facts: Any, window: str
) -> None:
    await registered(facts, ZHANG)
    body = {"window_id": window, "confirmation_point_id": "140105", "plan": "old",
            "major_codes": ["580401"]}  # fmt: skip
    responses = await asyncio.gather(
        *(client.post("/api/applications", json=body, headers=tokens(ZHANG)) for _ in range(6))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409, 409, 409, 409, 409]


async def test_concurrent_submits_submit_once(
    client: Any, tokens: Any, facts: Any, window: str
) -> None:
    me = tokens(ZHANG)
    await registered(facts, ZHANG)
    check = await cet4(facts, ZHANG)
    draft = await client.post(
        "/api/applications",
        json={"window_id": window, "confirmation_point_id": "140105", "plan": "new",
              "major_codes": ["530605"]},
        headers=me,
    )  # fmt: skip
    assert draft.status_code == 201, draft.text
    application_id = draft.json()["application_id"]
    courses = await client.get(
        "/api/catalogue/routes/CET4-NEW/courses",
        params={"major": "530605", "plan": "new"},
        headers=me,
    )
    assert courses.status_code == 200, courses.text
    code = courses.json()["courses"][0]["code"]
    added = await client.post(
        f"/api/applications/{application_id}/certificates",
        json={"kind": "cet4_or_above", "route_id": "CET4-NEW", "certificate_check_ref": check,
              "photo_ids": [await photo(facts, ZHANG)],
              "courses": [{"course_code": code, "major_code": "530605"}]},
        headers=me,
    )  # fmt: skip
    assert added.status_code == 201, added.text
    responses = await asyncio.gather(
        *(
            client.post(
                f"/api/applications/{application_id}/submit",
                json={"declaration_accepted": True},
                headers=me,
            )
            for _ in range(5)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1, [r.text for r in responses]
    assert all(c == 409 for c in codes if c != 200)


async def test_a_deleted_photo_blocks_the_submission(
    client: Any, tokens: Any, facts: Any, window: str
) -> None:
    me = tokens(ZHANG)
    await registered(facts, ZHANG)
    check = await cet4(facts, ZHANG)
    photo_id = await photo(facts, ZHANG)
    draft = await client.post(
        "/api/applications",
        json={"window_id": window, "confirmation_point_id": "140105", "plan": "new",
              "major_codes": ["530605"]},
        headers=me,
    )  # fmt: skip
    application_id = draft.json()["application_id"]
    added = await client.post(
        f"/api/applications/{application_id}/certificates",
        json={"kind": "cet4_or_above", "route_id": "CET4-NEW", "certificate_check_ref": check,
              "photo_ids": [photo_id],
              "courses": [{"course_code": "13124", "major_code": "530605"}]},
        headers=me,
    )  # fmt: skip
    assert added.status_code == 201, added.text
    await facts.apply(
        PhotoDeleted(photo_id=uuid.UUID(photo_id), owner_id=ZHANG, reason_code="owner_deleted"),
        photo_id,
    )
    refused = await client.post(
        f"/api/applications/{application_id}/submit",
        json={"declaration_accepted": True},
        headers=me,
    )
    assert (refused.status_code, error_of(refused)) == (422, "application.photo_deleted")
