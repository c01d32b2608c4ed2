"""Every refusal the application API can answer, over HTTP on the real database and the demo
catalogue: the status, the stable `error.code`, a Chinese `error.message`, and nothing recorded
(no event appended, no row written, no case number drawn)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from application_service.adapters import catalogue_store
from application_service.adapters.catalogue_files import DEMO_VERSION
from contracts.base import CourseDecision, CourseOutcome, ReviewStage
from eventkit.envelope import Actor, EventEnvelope

pytestmark = pytest.mark.integration

BASE = "/api/applications"
CJK = re.compile(r"[\u4e00-\u9fff]")
FULL_LAW_TRANSCRIPT = [
    ("民法学", "00242", 7.0, "85"), ("刑法学", "00245", 7.0, "77"), ("宪法学", "05679", 4.0, "81"),
    ("行政法学", "00261", 5.0, "88"), ("经济法概论", "00244", 6.0, "70"),
    ("民事诉讼法学", "00243", 5.0, "75"), ("刑事诉讼法学", "00260", 4.0, "80"),
    ("思想道德修养与法律基础", "03706", 2.0, "90"),
]  # fmt: skip


async def refused(
    counts: Callable[[], Awaitable[tuple[int, ...]]],
    call: Awaitable[httpx.Response],
    status: int,
    code: str,
) -> httpx.Response:
    """Await `call`; it is refused with `status` and `code`, a Chinese message, nothing stored."""
    before = await counts()
    response = await call
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, response.text
    assert CJK.search(error["message"]), error
    assert await counts() == before, f"{code} recorded something"
    return response


@dataclass
class Wizard:
    """A registered candidate going through the wizard over HTTP."""

    client: httpx.AsyncClient
    me: uuid.UUID
    headers: dict[str, str]
    window: str
    evidence: Any
    service: Any

    async def draft(self, plan: str = "new", majors: list[str] | None = None) -> str:
        body = {"window_id": self.window, "confirmation_point_id": "140105", "plan": plan,
                "major_codes": majors or ["530605"]}  # fmt: skip
        response = await self.client.post(BASE, json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        return str(response.json()["application_id"])

    def add(self, application_id: str, body: dict[str, Any]) -> Awaitable[httpx.Response]:
        return self.client.post(
            f"{BASE}/{application_id}/certificates", json=body, headers=self.headers
        )

    async def added(self, application_id: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.add(application_id, body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def submit(self, application_id: str, accepted: bool = True) -> Awaitable[httpx.Response]:
        return self.client.post(
            f"{BASE}/{application_id}/submit",
            json={"declaration_accepted": accepted},
            headers=self.headers,
        )

    def withdraw(self, application_id: str) -> Awaitable[httpx.Response]:
        return self.client.post(f"{BASE}/{application_id}/withdraw", json={}, headers=self.headers)

    async def cet(
        self, course: str = "13124", major: str = "530605", **extra: Any
    ) -> dict[str, Any]:
        """A CET4-NEW certificate body with a fresh check and photo of the candidate's."""
        body: dict[str, Any] = {
            "kind": "cet4_or_above",
            "route_id": "CET4-NEW",
            "certificate_check_ref": await self.evidence.check(self.me),
            "photo_ids": [await self.evidence.photo(self.me)],
            "courses": [{"course_code": course, "major_code": major}],
        }
        body.update(extra)
        return body

    async def degree_body(
        self, degree_ref: str | None, *claims: tuple[str, str | None], major: str = "580401"
    ) -> dict[str, Any]:
        """A DEGREE certificate body claiming (course, transcript course) pairs."""
        courses = [
            {"course_code": code, "major_code": major, "source_course_name": source}
            for code, source in claims
        ]
        return {
            "kind": "degree",
            "route_id": "DEGREE",
            "degree_ref": degree_ref,
            "photo_ids": [await self.evidence.photo(self.me)],
            "courses": courses,
        }

    async def decide(self, application_id: str, decisions: list[CourseDecision]) -> None:
        async with self.service.pool.acquire() as conn, conn.transaction():
            await self.service.applications.on_decided(
                conn, cause(application_id), application_id=uuid.UUID(application_id),
                decisions=decisions,
            )  # fmt: skip

    async def return_(self, application_id: str, submission_number: int = 1) -> None:
        async with self.service.pool.acquire() as conn, conn.transaction():
            await self.service.applications.on_returned(
                conn, cause(application_id), application_id=uuid.UUID(application_id),
                stage=ReviewStage.CONFIRMATION_POINT, reason="证书照片不清晰，请重新上传",
                submission_number=submission_number,
            )  # fmt: skip


def cause(application_id: str) -> EventEnvelope:
    """A review event as the worker would hand it to the policy."""
    return EventEnvelope(
        event_id=uuid.uuid4(), event_type="ApplicationReturned", schema_version=1,
        stream_type="review.decision", stream_id=application_id, stream_version=1,
        occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
        actor=Actor(kind="staff", id="reviewer-1"), payload={},
    )  # fmt: skip


@pytest.fixture
async def wizard(
    client: httpx.AsyncClient, tokens: Any, evidence: Any, open_window: str, service: Any
) -> Wizard:
    me = uuid.uuid4()
    await evidence.registered(me)
    return Wizard(client, me, tokens(me), open_window, evidence, service)


# --- step 1: the draft ------------------------------------------------------------------------


DRAFT_REFUSALS = {
    "unknown window": ({"window_id": str(uuid.uuid4())}, 404, "application.window_not_found"),
    "unknown point": ({"confirmation_point_id": "999999"}, 404, "application.point_not_found"),
    "malformed point": ({"confirmation_point_id": "14010"}, 422, "request.invalid"),
    "unknown major": ({"major_codes": ["999999"]}, 404, "application.major_not_found"),
    "major of the other plan": ({"major_codes": ["580401"]}, 404, "application.major_not_found"),
    "suspended major": ({"major_codes": ["530302"]}, 422, "application.major_suspended"),
    "three majors": (
        {"major_codes": ["530605", "590206", "570102"]},
        422,
        "request.invalid",
    ),
    "no major": ({"major_codes": []}, 422, "request.invalid"),
    "the same major twice": (
        {"major_codes": ["530605", "530605"]},
        422,
        "application.duplicate_major",
    ),
    "unknown plan": ({"plan": "newest"}, 422, "request.invalid"),
    "unknown field": ({"declaration": True}, 422, "request.invalid"),
    "bad window uuid": ({"window_id": "not-a-uuid"}, 422, "request.invalid"),
}


@pytest.mark.parametrize("change", DRAFT_REFUSALS.values(), ids=DRAFT_REFUSALS.keys())
async def test_a_draft_is_refused(
    wizard: Wizard, counts: Any, change: tuple[dict[str, Any], int, str]
) -> None:
    fields, status, code = change
    body = {"window_id": wizard.window, "confirmation_point_id": "140105", "plan": "new",
            "major_codes": ["530605"], **fields}  # fmt: skip
    await refused(counts, wizard.client.post(BASE, json=body, headers=wizard.headers), status, code)


WINDOW_SHAPES = {
    "closed": {"now": timedelta(days=-10)},
    "not yet open": {"now": timedelta(days=3)},
}


@pytest.mark.parametrize("shape", WINDOW_SHAPES.values(), ids=WINDOW_SHAPES.keys())
async def test_a_draft_outside_the_window_is_refused(
    wizard: Wizard, counts: Any, service: Any, window_kit: Any, shape: dict[str, timedelta]
) -> None:
    now = datetime.now(UTC) + shape["now"]
    window = await window_kit.open(service, window_kit.times(now, open_for=timedelta(days=2)))
    body = {"window_id": str(window), "confirmation_point_id": "140105", "plan": "new",
            "major_codes": ["530605"]}  # fmt: skip
    await refused(
        counts,
        wizard.client.post(BASE, json=body, headers=wizard.headers),
        409,
        "application.window_closed",
    )


async def test_a_draft_in_a_window_closed_by_ops_is_refused(
    wizard: Wizard, counts: Any, tokens: Any
) -> None:
    ops = tokens(uuid.uuid4(), "staff", ["ops"])
    closed = await wizard.client.post(
        f"/api/windows/{wizard.window}/close", json={"reason": "系统维护"}, headers=ops
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["stage"] == "closed"
    body = {"window_id": wizard.window, "confirmation_point_id": "140105", "plan": "new",
            "major_codes": ["530605"]}  # fmt: skip
    await refused(
        counts,
        wizard.client.post(BASE, json=body, headers=wizard.headers),
        409,
        "application.window_closed",
    )
    await refused(
        counts,
        wizard.client.post(
            f"/api/windows/{wizard.window}/close", json={"reason": "再次关闭"}, headers=ops
        ),
        409,
        "application.window_already_closed",
    )


async def test_a_candidate_not_synced_yet_is_asked_to_retry(
    client: httpx.AsyncClient, tokens: Any, counts: Any, open_window: str
) -> None:
    stranger = tokens(uuid.uuid4())
    body = {"window_id": open_window, "confirmation_point_id": "140105", "plan": "new",
            "major_codes": ["530605"]}  # fmt: skip
    response = await refused(
        counts,
        client.post(BASE, json=body, headers=stranger),
        503,
        "application.candidate_not_synced",
    )
    assert response.headers["Retry-After"] == "5"
    courses = await refused(
        counts,
        client.get(
            "/api/catalogue/routes/CET4-NEW/courses",
            params={"major": "530605", "plan": "new"},
            headers=stranger,
        ),
        503,
        "application.candidate_not_synced",
    )
    assert courses.headers["Retry-After"] == "5"


async def test_without_an_active_catalogue_the_api_asks_to_retry(
    bare_client: httpx.AsyncClient, bare_service: Any, tokens: Any, window_kit: Any
) -> None:
    window = await window_kit.open(bare_service)

    async def counts() -> tuple[int, ...]:
        return tuple(await window_kit.counts(bare_service.pool))

    me = uuid.uuid4()
    body = {"window_id": str(window), "confirmation_point_id": "140105", "plan": "new",
            "major_codes": ["530605"]}  # fmt: skip
    drafted = await refused(
        counts,
        bare_client.post(BASE, json=body, headers=tokens(me)),
        503,
        "application.no_catalogue",
    )
    assert drafted.headers["Retry-After"] == "60"
    for path in ("/api/catalogue", "/api/catalogue/points", "/api/catalogue/majors?plan=new"):
        response = await refused(counts, bare_client.get(path), 503, "application.no_catalogue")
        assert response.headers["Retry-After"] == "60"


# --- step 2: certificates ---------------------------------------------------------------------


async def test_a_fifth_certificate_is_refused(wizard: Wizard, counts: Any) -> None:
    application_id = await wizard.draft("old", ["580401"])
    degree = await wizard.evidence.degree(wizard.me)
    for code, source in (("00242", "民法学"), ("00245", "刑法学"), ("05679", "宪法学"),
                         ("00261", "行政法学")):  # fmt: skip
        await wizard.added(application_id, await wizard.degree_body(degree, (code, source)))
    fifth = await wizard.degree_body(degree, ("00244", "经济法概论"))
    await refused(
        counts, wizard.add(application_id, fifth), 422, "application.too_many_certificates"
    )


async def test_a_course_is_claimed_once_per_application(wizard: Wizard, counts: Any) -> None:
    application_id = await wizard.draft("old", ["580401"])
    degree = await wizard.evidence.degree(wizard.me)
    twice_in_one = await wizard.degree_body(degree, ("00242", "民法学"), ("00242", "民法学"))
    await refused(
        counts, wizard.add(application_id, twice_in_one), 422, "application.course_already_claimed"
    )
    await wizard.added(application_id, await wizard.degree_body(degree, ("00242", "民法学")))
    again = await wizard.degree_body(degree, ("00242", "民法学"))
    await refused(
        counts, wizard.add(application_id, again), 422, "application.course_already_claimed"
    )


async def test_a_course_already_exempted_by_a_decided_application_is_refused(
    wizard: Wizard, counts: Any
) -> None:
    first = await wizard.draft()
    await wizard.added(first, await wizard.cet())
    assert (await wizard.submit(first)).status_code == 200
    await wizard.decide(
        first,
        [CourseDecision(course_code="13124", major_code="530605", outcome=CourseOutcome.GRANTED)],
    )
    second = await wizard.draft()
    await refused(
        counts, wizard.add(second, await wizard.cet()), 422, "application.course_already_exempted"
    )
    # Withdrawing a decided application is refused too.
    await refused(counts, wizard.withdraw(first), 409, "application.already_decided")
    await refused(counts, wizard.submit(first), 409, "application.already_decided")


CERTIFICATE_REFUSALS: dict[str, tuple[str, int, str]] = {
    "course of a major not in the application": (
        "major_not_in_application",
        422,
        "application.major_not_in_application",
    ),
    "course the route does not cover": ("not_covered", 422, "application.course_not_covered"),
    "course not in the major": ("not_in_major", 422, "application.course_not_in_major"),
    "practical course by degree": ("practical_by_degree", 422, "application.course_not_exemptible"),
    "practical course by NCRE1": ("practical_by_ncre1", 422, "application.course_not_exemptible"),
    "practical course by NCRE2": ("practical_by_ncre2", 422, "application.course_not_exemptible"),
    "practical course by NIT": ("practical_by_nit", 422, "application.course_not_exemptible"),
    "route of another kind": ("kind_mismatch", 422, "application.route_kind_mismatch"),
    "unknown route": ("unknown_route", 404, "application.route_not_found"),
    "no certificate check": ("missing_check", 422, "application.evidence_missing"),
    "no verified degree": ("missing_degree", 422, "application.evidence_missing"),
    "a failed check": ("failed_check", 422, "application.check_not_verified"),
    "CET score below 425": ("low_score", 422, "application.check_score_too_low"),
    "PETS for a CET route": ("wrong_exam", 422, "application.check_wrong_exam"),
    "NCRE level 1 for NCRE2": ("low_level", 422, "application.check_level_too_low"),
    "another candidate's check": ("others_check", 404, "application.check_not_found"),
    "unknown check": ("unknown_check", 404, "application.check_not_found"),
    "another candidate's degree": ("others_degree", 404, "application.degree_not_found"),
    "another candidate's photo": ("others_photo", 404, "application.photo_not_found"),
    "a deleted photo": ("deleted_photo", 422, "application.photo_deleted"),
    "a photo twice on one certificate": ("photo_twice", 422, "application.photo_reused"),
    "a degree claim without a transcript course": (
        "no_source",
        422,
        "application.source_course_required",
    ),
    "a transcript course on a certificate claim": (
        "source_on_cet",
        422,
        "application.invalid_input",
    ),
    "a check on a degree certificate": ("check_on_degree", 422, "application.invalid_input"),
    "transcript course missing": ("no_line", 422, "application.transcript_course_not_found"),
    "grade 良好": ("grade", 422, "application.transcript_score_not_numeric"),
    "score below 60": ("failed_line", 422, "application.transcript_score_too_low"),
    "transcript name mismatch": ("other_name", 422, "application.transcript_name_mismatch"),
    "transcript credits too low": ("few_credits", 422, "application.transcript_credits_too_low"),
    "a 结业 degree": ("not_graduated", 422, "application.degree_not_graduated"),
    "a degree of another holder": ("holder_mismatch", 422, "application.degree_not_owned"),
    "an expired CHSI verification": (
        "expired",
        422,
        "application.degree_verification_expired",
    ),
    "a transcript course assessed (考查)": (
        "assessed",
        422,
        "application.transcript_course_not_examined",
    ),
    "a 专科 course of another code for a 本科 major": (
        "junior_for_bachelor",
        422,
        "application.junior_college_mismatch",
    ),
    "a thesis by degree": ("thesis_by_degree", 422, "application.course_not_exemptible"),
    "NCRE2 for a computing major": ("family", 422, "application.major_family_excluded"),
    "unknown kind": ("unknown_kind", 422, "request.invalid"),
    "no photo": ("no_photo", 422, "request.invalid"),
    "no course": ("no_course", 422, "request.invalid"),
}


async def certificate_case(w: Wizard, case: str) -> tuple[str, dict[str, Any]]:
    """The application and the certificate body of one refusal case."""
    other = uuid.uuid4()
    await w.evidence.registered(other, "李晓燕")
    if case in ("no_line", "grade", "failed_line", "other_name", "few_credits", "not_graduated",
                "others_degree", "missing_degree", "no_source", "check_on_degree"):  # fmt: skip
        application_id = await w.draft("old", ["580401"])
        degree = await w.evidence.degree(w.me)
        claims: dict[str, tuple[str | None, tuple[str, str | None]]] = {
            "no_line": (degree, ("00223", "中国法制史")),
            "grade": (degree, ("04729", "大学语文")),
            "failed_line": (degree, ("05677", "法理学")),
            "other_name": (degree, ("00245", "民法学")),
            "few_credits": (degree, ("00247", "国际法")),
            "not_graduated": (
                await w.evidence.degree(w.me, conclusion="结业"),
                ("00242", "民法学"),
            ),
            "others_degree": (await w.evidence.degree(other), ("00242", "民法学")),
            "missing_degree": (None, ("00242", "民法学")),
            "no_source": (degree, ("00242", None)),
            "check_on_degree": (degree, ("00242", "民法学")),
        }
        ref, claim = claims[case]
        body = await w.degree_body(ref, claim)
        if case == "check_on_degree":
            body["certificate_check_ref"] = await w.evidence.check(w.me)
        return application_id, body
    if case in ("holder_mismatch", "expired", "assessed"):
        application_id = await w.draft("old", ["580401"])
        options: dict[str, dict[str, Any]] = {
            "holder_mismatch": {"holder_matches": False},
            "expired": {"valid_until": (datetime.now(UTC) - timedelta(days=2)).date()},
            "assessed": {"assessment": "assessment"},
        }
        degree = await w.evidence.degree(w.me, **options[case])
        return application_id, await w.degree_body(degree, ("00242", "民法学"))
    if case in ("junior_for_bachelor", "thesis_by_degree"):
        application_id = await w.draft("new", ["030101"])
        degree = await w.evidence.degree(
            w.me,
            lines=[("国际法", "00248", 6.0, "88"), ("法学（本科）毕业论文", "14850", 6.0, "90")],
        )
        claim = (
            ("00247", "国际法")
            if case == "junior_for_bachelor"
            else ("14850", "法学（本科）毕业论文")
        )
        return application_id, await w.degree_body(degree, claim, major="030101")
    if case == "family":
        application_id = await w.draft("new", ["080901"])
        check = await w.evidence.check(w.me, "ncre", level=2)
        return application_id, await w.cet(
            kind="ncre2_or_above", route_id="NCRE2", certificate_check_ref=check,
            courses=[{"course_code": "13000", "major_code": "080901"}],
        )  # fmt: skip
    application_id = await w.draft("new", ["530605", "590206"])
    bodies: dict[str, Callable[[], Awaitable[dict[str, Any]]]] = {
        "major_not_in_application": lambda: w.cet(major="570102"),
        "not_covered": lambda: w.cet(course="00041"),
        "not_in_major": lambda: w.cet(course="00012"),
        "kind_mismatch": lambda: w.cet(route_id="DEGREE"),
        "unknown_route": lambda: w.cet(route_id="NOPE"),
        "missing_check": lambda: w.cet(certificate_check_ref=None),
        "unknown_check": lambda: w.cet(certificate_check_ref=str(uuid.uuid4())),
        "unknown_kind": lambda: w.cet(kind="toefl"),
        "no_photo": lambda: w.cet(photo_ids=[]),
        "no_course": lambda: w.cet(courses=[]),
    }
    if case in bodies:
        return application_id, await bodies[case]()
    if case == "practical_by_degree":
        degree = await w.evidence.degree(
            w.me, lines=[("计算机应用基础（实践）", "00019", 2.0, "90")]
        )
        body = await w.degree_body(degree, ("00019", "计算机应用基础（实践）"), major="530605")
        return application_id, body
    practical_routes = {
        "practical_by_ncre1": ("ncre1_or_above", "NCRE1", "ncre", {"level": 1}),
        "practical_by_ncre2": ("ncre2_or_above", "NCRE2", "ncre", {"level": 2}),
        "practical_by_nit": ("nit_basics_plus_one", "NIT-BASICS+1", "nit",
                             {"subject": "计算机应用基础"}),
    }  # fmt: skip
    if case in practical_routes:  # 00019 计算机应用基础（实践）: no route exempts it
        kind, route_id, exam, facts = practical_routes[case]
        check = await w.evidence.check(w.me, exam, **facts)
        return application_id, await w.cet(
            kind=kind, route_id=route_id, certificate_check_ref=check,
            courses=[{"course_code": "00019", "major_code": "530605"}],
        )  # fmt: skip
    if case == "failed_check":
        return application_id, await w.cet(
            certificate_check_ref=await w.evidence.failed_check(w.me)
        )
    if case == "low_score":
        check = await w.evidence.check(w.me, "cet4", score=400)
        return application_id, await w.cet(route_id="CET4-425", certificate_check_ref=check)
    if case == "wrong_exam":
        check = await w.evidence.check(w.me, "pets", level=3)
        return application_id, await w.cet(route_id="CET4-425", certificate_check_ref=check)
    if case == "low_level":
        check = await w.evidence.check(w.me, "ncre", level=1)
        return application_id, await w.cet(
            kind="ncre2_or_above", route_id="NCRE2", certificate_check_ref=check,
            courses=[{"course_code": "00018", "major_code": "530605"}],
        )  # fmt: skip
    if case == "others_check":
        return application_id, await w.cet(certificate_check_ref=await w.evidence.check(other))
    if case == "others_photo":
        return application_id, await w.cet(photo_ids=[await w.evidence.photo(other)])
    if case == "deleted_photo":
        photo = await w.evidence.photo(w.me)
        await w.evidence.delete_photo(w.me, photo)
        return application_id, await w.cet(photo_ids=[photo])
    if case == "photo_twice":
        photo = await w.evidence.photo(w.me)
        return application_id, await w.cet(photo_ids=[photo, photo])
    if case == "source_on_cet":
        return application_id, await w.cet(
            courses=[{"course_code": "13124", "major_code": "530605", "source_course_name": "英语"}]
        )
    raise AssertionError(case)


@pytest.mark.parametrize("expected", CERTIFICATE_REFUSALS.values(), ids=CERTIFICATE_REFUSALS.keys())
async def test_a_certificate_is_refused(
    wizard: Wizard, counts: Any, expected: tuple[str, int, str]
) -> None:
    case, status, code = expected
    application_id, body = await certificate_case(wizard, case)
    await refused(counts, wizard.add(application_id, body), status, code)


async def test_no_route_offers_a_practical_thesis_or_assessed_course(
    wizard: Wizard, service: Any
) -> None:
    """What the portal and the API offer per route and major: never a course the catalogue
    marks practical, thesis or 考查 (e.g. NCRE1 and 00019 计算机应用基础（实践）)."""
    catalogue = await catalogue_store.load(service.pool, DEMO_VERSION)
    offered = 0
    for route in catalogue.routes.values():
        if route.is_degree_route:
            continue
        for major in catalogue.majors.values():
            response = await wizard.client.get(
                f"/api/catalogue/routes/{route.route_id}/courses",
                params={"major": major.code, "plan": major.plan.value},
                headers=wizard.headers,
            )
            assert response.status_code == 200, response.text
            for course in response.json()["courses"]:
                offered += 1
                found = major.course(course["code"])
                assert found is not None and found.exemptible, (route.route_id, course)
                assert course["exemptible"] is True
    assert offered > 0
    ncre1 = await wizard.client.get(
        "/api/catalogue/routes/NCRE1/courses", params={"major": "530605", "plan": "new"},
        headers=wizard.headers,
    )  # fmt: skip
    assert [c["code"] for c in ncre1.json()["courses"]] == ["00018"]


async def test_a_certificate_the_authority_cannot_find_goes_to_the_reviewers(
    wizard: Wizard,
) -> None:
    from contracts.credential import CertificateFailureReason

    application_id = await wizard.draft()
    unverifiable = await wizard.evidence.failed_check(
        wizard.me, reason=CertificateFailureReason.NOT_FOUND
    )
    body = await wizard.cet(certificate_check_ref=unverifiable)
    added = await wizard.added(application_id, body)
    assert added["certificates"][0]["certificate_check_ref"] == unverifiable


async def test_a_photo_serves_one_certificate(wizard: Wizard, counts: Any) -> None:
    application_id = await wizard.draft()
    photo = await wizard.evidence.photo(wizard.me)
    await wizard.added(application_id, await wizard.cet(photo_ids=[photo]))
    ncre = await wizard.evidence.check(wizard.me, "ncre", level=1)
    body = {
        "kind": "ncre1_or_above", "route_id": "NCRE1", "certificate_check_ref": ncre,
        "photo_ids": [photo], "courses": [{"course_code": "00018", "major_code": "530605"}],
    }  # fmt: skip
    await refused(counts, wizard.add(application_id, body), 422, "application.photo_reused")
    body["photo_ids"] = [await wizard.evidence.photo(wizard.me)]
    await wizard.added(application_id, body)


async def test_a_non_zikao_graduate_is_exempted_from_at_most_half_the_courses(
    wizard: Wizard, counts: Any
) -> None:
    application_id = await wizard.draft("old", ["580401"])
    degree = await wizard.evidence.degree(
        wizard.me, category="普通高等教育", lines=FULL_LAW_TRANSCRIPT
    )
    claims = [(code, name) for name, code, _, _ in FULL_LAW_TRANSCRIPT]
    # 580401 has 13 courses: 6 may be claimed by a non-自考 degree, 7 may not.
    seven = await wizard.degree_body(degree, *claims[:7])
    await refused(
        counts, wizard.add(application_id, seven), 422, "application.degree_share_exceeded"
    )
    await wizard.added(application_id, await wizard.degree_body(degree, *claims[:6]))
    one_more = await wizard.degree_body(degree, claims[6])
    await refused(
        counts, wizard.add(application_id, one_more), 422, "application.degree_share_exceeded"
    )
    # A 自考 graduate has no cap.
    zikao = await wizard.evidence.degree(wizard.me, lines=FULL_LAW_TRANSCRIPT)
    await wizard.added(application_id, await wizard.degree_body(zikao, claims[6]))


# --- steps 3 and 4: removing, submitting, withdrawing -------------------------------------------


async def test_removing_an_unknown_certificate_is_refused(wizard: Wizard, counts: Any) -> None:
    application_id = await wizard.draft()
    await refused(
        counts,
        wizard.client.delete(
            f"{BASE}/{application_id}/certificates/{uuid.uuid4()}", headers=wizard.headers
        ),
        404,
        "application.certificate_not_found",
    )
    await refused(
        counts,
        wizard.client.delete(f"{BASE}/{application_id}/certificates/nope", headers=wizard.headers),
        422,
        "request.invalid",
    )


async def test_submission_refusals(wizard: Wizard, counts: Any) -> None:
    application_id = await wizard.draft()
    await refused(counts, wizard.submit(application_id), 422, "application.no_certificates")
    await wizard.added(application_id, await wizard.cet())
    await refused(
        counts, wizard.submit(application_id, False), 422, "application.declaration_required"
    )
    await refused(
        counts,
        wizard.client.post(f"{BASE}/{application_id}/submit", json={}, headers=wizard.headers),
        422,
        "request.invalid",
    )
    submitted = await wizard.submit(application_id)
    assert submitted.status_code == 200, submitted.text
    # Twice, and "resubmitting" what was not returned: the same submit answers already_submitted.
    await refused(counts, wizard.submit(application_id), 409, "application.already_submitted")
    await refused(
        counts, wizard.add(application_id, await wizard.cet(course="00018")), 409,
        "application.not_editable",
    )  # fmt: skip
    certificate_id = submitted.json()["certificates"][0]["certificate_id"]
    await refused(
        counts,
        wizard.client.delete(
            f"{BASE}/{application_id}/certificates/{certificate_id}", headers=wizard.headers
        ),
        409,
        "application.not_editable",
    )


async def test_withdrawn_applications_refuse_everything(wizard: Wizard, counts: Any) -> None:
    application_id = await wizard.draft()
    assert (await wizard.withdraw(application_id)).status_code == 200
    await refused(counts, wizard.withdraw(application_id), 409, "application.already_withdrawn")
    await refused(counts, wizard.submit(application_id), 409, "application.already_withdrawn")
    await refused(
        counts, wizard.add(application_id, await wizard.cet()), 409, "application.already_withdrawn"
    )
    await refused(
        counts,
        wizard.client.post(
            f"{BASE}/{application_id}/withdraw", json={"reason": "长" * 501}, headers=wizard.headers
        ),
        422,
        "request.invalid",
    )


async def test_a_returned_application_past_the_point_deadline(
    wizard: Wizard, counts: Any, service: Any
) -> None:
    application_id = await wizard.draft()
    await wizard.added(application_id, await wizard.cet())
    assert (await wizard.submit(application_id)).status_code == 200
    await wizard.return_(application_id)
    past = datetime.now(UTC) - timedelta(hours=1)
    await service.pool.execute(
        """
        UPDATE application.windows
        SET opens_at = $2::timestamptz - interval '3 days',
            applications_close_at = $2::timestamptz - interval '2 days', point_review_close_at = $2
        WHERE window_id = $1
        """,
        uuid.UUID(wizard.window),
        past,
    )
    await refused(counts, wizard.submit(application_id), 409, "application.resubmission_closed")
    await refused(
        counts,
        wizard.add(application_id, await wizard.cet(course="00018")),
        409,
        "application.window_closed",
    )


async def test_unknown_and_foreign_applications_are_not_found(
    wizard: Wizard, counts: Any, tokens: Any
) -> None:
    application_id = await wizard.draft()
    stranger = uuid.uuid4()
    await wizard.evidence.registered(stranger, "李晓燕")
    for target, headers in (
        (str(uuid.uuid4()), wizard.headers),
        (application_id, tokens(stranger)),
    ):
        for call in (
            wizard.client.get(f"{BASE}/{target}", headers=headers),
            wizard.client.post(f"{BASE}/{target}/withdraw", json={}, headers=headers),
            wizard.client.post(
                f"{BASE}/{target}/submit", json={"declaration_accepted": True}, headers=headers
            ),
        ):
            await refused(counts, call, 404, "application.not_found")


# --- the request itself -------------------------------------------------------------------------


async def test_malformed_requests_are_refused(wizard: Wizard, counts: Any) -> None:
    application_id = await wizard.draft()
    headers = {**wizard.headers, "Content-Type": "application/json"}
    await refused(
        counts,
        wizard.client.post(BASE, content=b'{"window_id": ', headers=headers),
        400,
        "request.malformed_json",
    )
    await refused(
        counts,
        wizard.client.post(f"{BASE}/{application_id}/submit", content=b"[1,", headers=headers),
        400,
        "request.malformed_json",
    )
    await refused(
        counts,
        wizard.client.post(
            f"{BASE}/{application_id}/submit",
            json={"declaration_accepted": True, "force": True},
            headers=wizard.headers,
        ),
        422,
        "request.invalid",
    )
    await refused(
        counts,
        wizard.add(application_id, {**(await wizard.cet()), "verified": True}),
        422,
        "request.invalid",
    )
    await refused(
        counts,
        wizard.add(application_id, await wizard.cet(photo_ids=["not-a-uuid"])),
        422,
        "request.invalid",
    )
    await refused(
        counts,
        wizard.client.post(
            f"{BASE}/not-a-uuid/submit", json={"declaration_accepted": True}, headers=wizard.headers
        ),
        422,
        "request.invalid",
    )
    await refused(
        counts,
        wizard.client.get("/api/catalogue/majors/999999", params={"plan": "new"}),
        404,
        "application.catalogue_item_not_found",
    )
    await refused(counts, wizard.client.get("/api/catalogue/majors"), 422, "request.invalid")


async def test_tokens_and_roles(
    wizard: Wizard, counts: Any, tokens: Any, client: httpx.AsyncClient
) -> None:
    application_id = await wizard.draft()
    body = {"window_id": wizard.window, "confirmation_point_id": "140105", "plan": "new",
            "major_codes": ["530605"]}  # fmt: skip
    await refused(counts, client.post(BASE, json=body), 401, "auth.missing_token")
    await refused(counts, client.get(BASE), 401, "auth.missing_token")
    await refused(
        counts,
        client.get(BASE, headers={"Authorization": "Bearer not.a.token"}),
        401,
        "auth.invalid_token",
    )
    staff = tokens(uuid.uuid4(), "staff", ["ops"])
    for call in (
        client.post(BASE, json=body, headers=staff),
        client.get(BASE, headers=staff),
        client.get(f"{BASE}/{application_id}", headers=staff),
        client.post(f"{BASE}/{application_id}/withdraw", json={}, headers=staff),
    ):
        await refused(counts, call, 403, "auth.forbidden")
    now = datetime.now(UTC)
    window = {
        "name": "2027年上半年免考申请",
        "opens_at": now.isoformat(),
        "applications_close_at": (now + timedelta(days=5)).isoformat(),
        "point_review_close_at": (now + timedelta(days=15)).isoformat(),
        "province_review_close_at": (now + timedelta(days=25)).isoformat(),
        "results_published_at": (now + timedelta(days=30)).isoformat(),
    }
    reviewer = tokens(uuid.uuid4(), "staff", ["reviewer"], ["140105"])
    await refused(
        counts, client.post("/api/windows", json=window, headers=reviewer), 403, "auth.forbidden"
    )
    await refused(
        counts,
        client.post("/api/windows", json=window, headers=wizard.headers),
        403,
        "auth.forbidden",
    )
    await refused(counts, client.post("/api/windows", json=window), 401, "auth.missing_token")
    out_of_order = {**window, "point_review_close_at": window["applications_close_at"]}
    await refused(
        counts,
        client.post("/api/windows", json=out_of_order, headers=staff),
        422,
        "application.window_invalid",
    )
    naive = {**window, "opens_at": now.replace(tzinfo=None).isoformat()}
    response = await client.post("/api/windows", json=naive, headers=staff)
    assert response.status_code == 422, response.text
    assert await client.get("/api/windows") is not None
    await refused(
        counts,
        client.post(f"/api/windows/{uuid.uuid4()}/close", json={"reason": "x"}, headers=staff),
        404,
        "application.window_not_found",
    )


async def test_the_route_courses_leave_out_a_course_already_exempted(wizard: Wizard) -> None:
    first = await wizard.draft()
    await wizard.added(first, await wizard.cet())
    assert (await wizard.submit(first)).status_code == 200
    await wizard.decide(
        first,
        [CourseDecision(course_code="13124", major_code="530605", outcome=CourseOutcome.GRANTED)],
    )
    offered = await wizard.client.get(
        "/api/catalogue/routes/CET4-NEW/courses",
        params={"major": "530605", "plan": "new"},
        headers=wizard.headers,
    )
    assert offered.status_code == 200, offered.text
    assert [c["code"] for c in offered.json()["courses"]] == []
