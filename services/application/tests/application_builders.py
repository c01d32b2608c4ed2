# ruff: noqa: E501
"""Builders shared by the application domain tests (catalogues, facts, evidence, windows).

Imported by name: pytest runs with --import-mode=importlib, and this folder is on the
`pythonpath` the root pyproject.toml gives pytest.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from application_service.domain.catalogue import (
    Assessment,
    Catalogue,
    ConfirmationPoint,
    Course,
    CourseKind,
    DegreeRules,
    Level,
    Major,
    Plan,
    Route,
    RouteCourse,
    build_catalogue,
)
from application_service.domain.evidence import (
    CandidateFacts,
    CertificateCheckFacts,
    Evidence,
    PhotoFacts,
    TranscriptLine,
    VerifiedDegreeFacts,
)
from application_service.domain.windows import ApplicationWindow

CANDIDATE_ID = uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b")


OTHER_ID = uuid.UUID("0b7e4c1a-9d2f-4a3b-8c5d-6e7f8a9b0c1d")


APPLICATION_ID = uuid.UUID("2d9a6e3c-bf41-4c5d-ae7f-8091a2b3c4d5")


WINDOW_ID = uuid.UUID("3eab7f4d-c052-4d6e-bf80-91a2b3c4d5e6")


DEGREE_REF = uuid.UUID("50cd9162-e274-4f80-91a2-b3c4d5e6f708")


CHECK_CET4 = uuid.UUID("61dea273-f385-4091-a2b3-c4d5e6f70819")


CHECK_NCRE2 = uuid.UUID("61dea273-f385-4091-a2b3-c4d5e6f7081a")


POINT = "140105"


NOW = datetime(2025, 3, 10, 9, 0, tzinfo=UTC)


def photo(n: int) -> uuid.UUID:
    return uuid.UUID(int=1000 + n)


def course(
    code: str,
    name: str,
    credits: float | None,
    kind: CourseKind = CourseKind.CORE,
    **flags: Any,
) -> Course:
    return Course(code=code, name=name, credits=credits, kind=kind, **flags)


LAW_COURSES = (
    course("00223", "中国法制史", 4),
    course("00242", "民法学", 7),
    course("00243", "民事诉讼法学", 4),
    course("00245", "刑法学", 6),
    course("04729", "大学语文", 4, CourseKind.PUBLIC),
    course("05677", "法理学", 5),
    course("00012", "英语(一)", 6, CourseKind.PUBLIC),
    course("00018", "计算机应用基础", 2, CourseKind.PUBLIC),
    course("00019", "计算机应用基础（实践）", 1, CourseKind.PRACTICAL, practical=True),
    course("00261", "行政法学", 4, CourseKind.ELECTIVE, assessment=Assessment.ASSESSMENT),
    course("06999", "毕业论文", None, CourseKind.THESIS, thesis=True),
)


LAW = Major("580401", "法律事务", Level.JUNIOR_COLLEGE, Plan.OLD, courses=LAW_COURSES)


LAW_NEW = Major("580401", "法律事务", Level.JUNIOR_COLLEGE, Plan.NEW, courses=LAW_COURSES)


BA_LAW = Major(
    "030101K",
    "法学",
    Level.BACHELOR,
    Plan.OLD,
    courses=(
        course("00242", "民法学", 7),
        course("00245", "刑法学", 6),
        course("05677", "法理学", 4),
        course("00015", "英语(二)", 14, CourseKind.PUBLIC),
    ),
)


CS = Major(
    "080901",
    "计算机科学与技术",
    Level.BACHELOR,
    Plan.OLD,
    family="computing",
    courses=(
        course("00015", "英语(二)", 14, CourseKind.PUBLIC),
        course("00018", "计算机应用基础", 2, CourseKind.PUBLIC),
        course("00051", "管理系统中计算机应用", 3),
        course("00342", "高级语言程序设计", 4),
    ),
)


STOPPED = Major(
    "590108",
    "停考专业",
    Level.JUNIOR_COLLEGE,
    Plan.OLD,
    suspended=True,
    courses=(course("00012", "英语(一)", 6, CourseKind.PUBLIC),),
)


BOTH = frozenset({Level.JUNIOR_COLLEGE, Level.BACHELOR})


ROUTES = (
    Route("CET4", "cet4_or_above", "大学英语四级及以上", courses=(RouteCourse("00012"), RouteCourse("00015", frozenset({Level.BACHELOR}))), exam="cet4"),
    Route("CET4-425", "cet4_or_above", "CET成绩425分及以上", courses=(RouteCourse("00012"),), exam="cet4", min_score=425),
    Route("CET6", "cet4_or_above", "大学英语六级", courses=(RouteCourse("00015"),), exam="cet6"),
    Route("PETS2", "pets2_or_above", "PETS二级及以上", courses=(RouteCourse("00012"),), exam="pets", min_level=2),
    Route("NCRE1", "ncre1_or_above", "NCRE一级及以上", courses=(RouteCourse("00018", BOTH),), exam="ncre", min_level=1),
    Route("NCRE2", "ncre2_or_above", "NCRE二级及以上", courses=(RouteCourse("00018"), RouteCourse("00051")), exam="ncre", min_level=2, excluded_families=frozenset({"computing"})),
    Route("NCRE2-C", "ncre2_or_above", "NCRE二级C语言", courses=(RouteCourse("00342"),), exam="ncre", min_level=2, subject="二级C语言程序设计"),
    Route("DEGREE", "degree", "学历证书", courses=()),
)  # fmt: skip


def make_catalogue(version: str = "2025.1", **rules: Any) -> Catalogue:
    return build_catalogue(
        version,
        [LAW, LAW_NEW, BA_LAW, CS, STOPPED],
        [ConfirmationPoint(POINT, "太原市小店区")],
        ROUTES,
        DegreeRules(**rules) if rules else None,
    )


CATALOGUE = make_catalogue()


def make_candidate(**changes: Any) -> CandidateFacts:
    return CandidateFacts(candidate_id=CANDIDATE_ID, name="张三", **changes)


CANDIDATE = make_candidate()


def line(
    name: str,
    score: str | None = "82",
    credits: float | None = 7,
    hours: int | None = None,
    code: str | None = None,
    assessment: str | None = "examination",
) -> TranscriptLine:
    return TranscriptLine(name, code, credits, hours, score, assessment)


TRANSCRIPT = (
    line("民法学", "82", 7, code="00242"),
    line("中国法制史", "良好", 4),
    line("刑法学", "75", None, hours=108),
    line("大学语文", "90", 4, assessment="assessment"),
    line("法理学", "58", 5),
    line("民事诉讼法学", "88", 2),
    line("法 理 学（一）", "90", 5),
)


def make_degree(**changes: Any) -> VerifiedDegreeFacts:
    values: dict[str, Any] = {
        "degree_ref": DEGREE_REF,
        "candidate_id": CANDIDATE_ID,
        "level": "junior_college",
        "institution": "山西大学",
        "major_name": "法律事务",
        "category": "普通高等教育",
        "graduation_year": 2021,
        "conclusion": "毕业",
        "certificate_number": "101082021050001234",
        "holder_matches_candidate": True,
        "verified_at": datetime(2025, 3, 1, tzinfo=UTC),
        "valid_until": date(2025, 8, 28),
        "transcript": TRANSCRIPT,
    }
    values.update(changes)
    return VerifiedDegreeFacts(**values)


def make_check(check_id: uuid.UUID = CHECK_CET4, **changes: Any) -> CertificateCheckFacts:
    values: dict[str, Any] = {
        "check_id": check_id,
        "candidate_id": CANDIDATE_ID,
        "exam": "cet4",
        "verified": True,
        "score": 480,
    }
    values.update(changes)
    return CertificateCheckFacts(**values)


def make_evidence(
    degrees: Sequence[VerifiedDegreeFacts] = (),
    checks: Sequence[CertificateCheckFacts] = (),
    photos: Sequence[PhotoFacts] | None = None,
) -> Evidence:
    if photos is None:
        photos = [PhotoFacts(photo(n), CANDIDATE_ID) for n in range(10)]
    return Evidence(
        degrees={d.degree_ref: d for d in degrees},
        checks={c.check_id: c for c in checks},
        photos={p.photo_id: p for p in photos},
    )


EVIDENCE = make_evidence(
    degrees=[make_degree()],
    checks=[make_check(), make_check(CHECK_NCRE2, exam="ncre", level=2, score=None, subject="二级C语言程序设计")],
)  # fmt: skip


def make_window(**changes: Any) -> ApplicationWindow:
    values: dict[str, Any] = {
        "window_id": WINDOW_ID,
        "name": "2025年上半年免考申请",
        "opens_at": datetime(2025, 3, 1, tzinfo=UTC),
        "applications_close_at": datetime(2025, 3, 20, tzinfo=UTC),
        "point_review_close_at": datetime(2025, 4, 1, tzinfo=UTC),
        "province_review_close_at": datetime(2025, 4, 15, tzinfo=UTC),
        "results_published_at": datetime(2025, 4, 20, tzinfo=UTC),
    }
    values.update(changes)
    return ApplicationWindow(**values)


WINDOW = make_window()
