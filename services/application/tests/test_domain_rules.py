# ruff: noqa: E501
"""The exemption rules, the windows and the errors, table by table (pure, no I/O)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from application_builders import (
    BA_LAW,
    CANDIDATE,
    CANDIDATE_ID,
    CATALOGUE,
    CHECK_CET4,
    CS,
    DEGREE_REF,
    EVIDENCE,
    LAW,
    NOW,
    OTHER_ID,
    POINT,
    STOPPED,
    WINDOW,
    course,
    line,
    make_candidate,
    make_check,
    make_degree,
    make_evidence,
    make_window,
    photo,
)

from application_service.domain import errors, rules
from application_service.domain.catalogue import (
    Course,
    DegreeRules,
    Level,
    Major,
    Plan,
    Route,
    RouteCourse,
)
from application_service.domain.evidence import (
    CandidateFacts,
    CertificateCheckFacts,
    PhotoFacts,
    TranscriptLine,
    VerifiedDegreeFacts,
)
from application_service.domain.windows import WindowStage

pytestmark = pytest.mark.unit

# --- builders of this module (the shared ones are in application_builders.py) ------------


def route(route_id: str) -> Route:
    found = CATALOGUE.route(route_id)
    assert found is not None
    return found


# --- errors -------------------------------------------------------------------------------------


def test_every_error_has_a_stable_code_a_chinese_message_and_a_status() -> None:
    codes = [cls.code for cls in errors.ALL_ERRORS]
    assert len(codes) == len(set(codes)), "codes are unique"
    for cls in errors.ALL_ERRORS:
        assert cls.code.startswith("application.")
        assert cls.status in (404, 409, 422)
        error = cls("detail")
        assert error.message == cls.default_message
        assert any("\u4e00" <= ch <= "\u9fff" for ch in error.message)
        assert error.detail_en == "detail"
        assert isinstance(error, errors.ApplicationError)


@pytest.mark.parametrize(
    ("cls", "status"),
    [
        (errors.PointNotFound, 404),
        (errors.CertificateNotFound, 404),
        (errors.AlreadySubmitted, 409),
        (errors.OpenApplicationExists, 409),
        (errors.TooManyCertificates, 422),
        (errors.DegreeShareExceeded, 422),
    ],
)
def test_statuses(cls: type[errors.ApplicationError], status: int) -> None:
    assert cls.status == status


# --- windows ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "stage", "applying", "resubmitting"),
    [
        (datetime(2025, 2, 28, tzinfo=UTC), WindowStage.NOT_OPEN, False, False),
        (datetime(2025, 3, 1, tzinfo=UTC), WindowStage.APPLYING, True, True),
        (datetime(2025, 3, 19, 23, 59, tzinfo=UTC), WindowStage.APPLYING, True, True),
        (datetime(2025, 3, 20, tzinfo=UTC), WindowStage.POINT_REVIEW, False, True),
        (datetime(2025, 4, 1, tzinfo=UTC), WindowStage.PROVINCE_REVIEW, False, False),
        (datetime(2025, 4, 16, tzinfo=UTC), WindowStage.AWAITING_RESULTS, False, False),
        (datetime(2025, 4, 20, tzinfo=UTC), WindowStage.RESULTS_PUBLISHED, False, False),
    ],
)
def test_window_stages(
    now: datetime, stage: WindowStage, applying: bool, resubmitting: bool
) -> None:
    assert WINDOW.stage(now) is stage
    assert WINDOW.accepting_applications(now) is applying
    assert WINDOW.accepting_resubmissions(now) is resubmitting
    assert stage.label


def test_window_closed_by_ops_accepts_nothing() -> None:
    window = make_window(closed_by_ops=True)
    assert window.stage(NOW) is WindowStage.CLOSED
    assert not window.accepting_applications(NOW)
    assert not window.accepting_resubmissions(NOW)


def test_window_stage_needs_an_aware_now() -> None:
    with pytest.raises(errors.InvalidInput):
        WINDOW.stage(datetime(2025, 3, 10))


@pytest.mark.parametrize(
    "changes",
    [
        {"opens_at": datetime(2025, 3, 20, tzinfo=UTC)},
        {"applications_close_at": datetime(2025, 4, 2, tzinfo=UTC)},
        {"point_review_close_at": datetime(2025, 4, 15, tzinfo=UTC)},
        {"results_published_at": datetime(2025, 4, 1, tzinfo=UTC)},
        {"opens_at": datetime(2025, 3, 1)},
        {"name": "  "},
    ],
)
def test_window_deadlines_are_validated(changes: dict[str, Any]) -> None:
    with pytest.raises(errors.InvalidWindow):
        make_window(**changes)


def test_window_in_another_timezone_compares_instants() -> None:
    beijing = timezone(timedelta(hours=8))
    assert WINDOW.stage(datetime(2025, 3, 20, 7, 59, tzinfo=beijing)) is WindowStage.APPLYING


# --- candidate, point, majors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "error"),
    [
        (make_candidate(enrolled=False), errors.CandidateNotEnrolled),
        (make_candidate(registered=False), errors.CandidateNotRegistered),
        (make_candidate(), None),
    ],
)
def test_candidate(candidate: CandidateFacts, error: type[Exception] | None) -> None:
    if error is None:
        rules.check_candidate(candidate)
    else:
        with pytest.raises(error):
            rules.check_candidate(candidate)


def test_point() -> None:
    rules.check_point(CATALOGUE, POINT)
    with pytest.raises(errors.PointNotFound):
        rules.check_point(CATALOGUE, "140106")


@pytest.mark.parametrize(
    ("plan", "codes", "error"),
    [
        (Plan.OLD, ["580401"], None),
        (Plan.OLD, ["580401", "030101K"], None),
        (Plan.NEW, ["580401"], None),
        (Plan.OLD, [], errors.NoMajors),
        (Plan.OLD, ["580401", "580401"], errors.DuplicateMajor),
        (Plan.OLD, ["580401", "030101K", "080901"], errors.TooManyMajors),
        (Plan.NEW, ["030101K"], errors.MajorNotFound),
        (Plan.OLD, ["999999"], errors.MajorNotFound),
        (Plan.OLD, ["590108"], errors.MajorSuspended),
    ],
)
def test_majors(plan: Plan, codes: list[str], error: type[Exception] | None) -> None:
    if error is None:
        assert [m.code for m in rules.check_majors(CATALOGUE, plan, codes)] == codes
    else:
        with pytest.raises(error):
            rules.check_majors(CATALOGUE, plan, codes)


# --- routes and certificate checks ------------------------------------------------------------


def test_route_lookup() -> None:
    assert rules.check_route(CATALOGUE, "CET4", "cet4_or_above").route_id == "CET4"
    with pytest.raises(errors.RouteNotFound):
        rules.check_route(CATALOGUE, "NOPE", "cet4_or_above")
    with pytest.raises(errors.RouteKindMismatch):
        rules.check_route(CATALOGUE, "CET4", "pets2_or_above")


@pytest.mark.parametrize(
    ("route_id", "check", "error"),
    [
        ("CET4", make_check(), None),
        ("CET4", make_check(exam="cet6"), None),
        ("CET6", make_check(exam="cet6"), None),
        ("CET6", make_check(exam="cet4"), errors.CheckWrongExam),
        ("CET4", make_check(exam="pets", level=3), errors.CheckWrongExam),
        ("CET4", make_check(verified=False, reason_code="holder_mismatch"), errors.CheckNotVerified),
        ("CET4", make_check(candidate_id=OTHER_ID), errors.CheckNotOwned),
        ("CET4-425", make_check(score=425), None),
        ("CET4-425", make_check(score=424), errors.CheckScoreTooLow),
        ("CET4-425", make_check(score=None), errors.CheckScoreTooLow),
        ("PETS2", make_check(exam="pets", level=2), None),
        ("PETS2", make_check(exam="pets", level=3), None),
        ("PETS2", make_check(exam="pets", level=1), errors.CheckLevelTooLow),
        ("PETS2", make_check(exam="pets", level=None), errors.CheckLevelTooLow),
        ("NCRE2-C", make_check(exam="ncre", level=2, subject="二级 C语言程序设计"), None),
        ("NCRE2-C", make_check(exam="ncre", level=3, subject="二级C语言程序设计"), None),
        ("NCRE2-C", make_check(exam="ncre", level=2, subject="二级Python"), errors.CheckSubjectMismatch),
        ("NCRE2-C", make_check(exam="ncre", level=2, subject=None), errors.CheckSubjectMismatch),
    ],
)  # fmt: skip
def test_certificate_conditions(
    route_id: str, check: CertificateCheckFacts, error: type[Exception] | None
) -> None:
    evidence = make_evidence(checks=[check])
    if error is None:
        assert rules.check_certificate_evidence(route(route_id), CHECK_CET4, CANDIDATE, evidence)
    else:
        with pytest.raises(error):
            rules.check_certificate_evidence(route(route_id), CHECK_CET4, CANDIDATE, evidence)


def test_certificate_check_missing_or_unknown() -> None:
    with pytest.raises(errors.EvidenceMissing):
        rules.check_certificate_evidence(route("CET4"), None, CANDIDATE, EVIDENCE)
    with pytest.raises(errors.CheckNotFound):
        rules.check_certificate_evidence(route("CET4"), uuid.uuid4(), CANDIDATE, EVIDENCE)


# --- courses ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route_id", "major", "code", "candidate", "error"),
    [
        ("CET4", LAW, "00012", CANDIDATE, None),
        ("CET4", BA_LAW, "00015", CANDIDATE, None),
        ("CET4", LAW, "00015", CANDIDATE, errors.CourseNotInMajor),
        ("CET4", LAW, "00242", CANDIDATE, errors.CourseNotCoveredByRoute),
        ("NCRE1", LAW, "00018", CANDIDATE, None),
        ("NCRE1", LAW, "00019", CANDIDATE, errors.CourseNotExemptible),
        ("NCRE2", CS, "00051", CANDIDATE, errors.MajorFamilyExcluded),
        ("NCRE2-C", CS, "00342", CANDIDATE, None),
        ("CET4", STOPPED, "00012", CANDIDATE, errors.MajorSuspended),
        ("CET4", LAW, "00012", make_candidate(passed_courses=frozenset({"00012"})), errors.CourseAlreadyPassed),
        ("CET4", LAW, "00012", make_candidate(exempted_courses=frozenset({"00012"})), errors.CourseAlreadyExempted),
    ],
)  # fmt: skip
def test_route_courses(
    route_id: str, major: Major, code: str, candidate: CandidateFacts, error: type[Exception] | None
) -> None:
    if error is None:
        assert rules.check_route_course(route(route_id), major, code, candidate).code == code
    else:
        with pytest.raises(error):
            rules.check_route_course(route(route_id), major, code, candidate)


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("00019", errors.CourseNotExemptible),  # practical
        ("06999", errors.CourseNotExemptible),  # thesis
        ("00261", errors.CourseNotExemptible),  # 考查
        ("00342", errors.CourseNotInMajor),
        ("00242", None),
    ],
)
def test_course_exemptible(code: str, error: type[Exception] | None) -> None:
    if error is None:
        rules.check_course(LAW, code, CANDIDATE)
    else:
        with pytest.raises(error):
            rules.check_course(LAW, code, CANDIDATE)


def test_a_route_naming_a_practical_component_does_not_exempt_it() -> None:
    # DOMAIN.md: practical components are never exempted, whatever a rule table names.
    ncre = Route(
        "NCRE1-P", "ncre1_or_above", "NCRE一级及以上", courses=(RouteCourse("00018"), RouteCourse("00019")),
        exam="ncre", min_level=1,
    )  # fmt: skip
    with pytest.raises(errors.CourseNotExemptible) as refused:
        rules.check_route_course(ncre, LAW, "00019", CANDIDATE)
    assert refused.value.code == "application.course_not_exemptible"
    assert rules.allowed_courses(ncre, LAW, CANDIDATE) == ("00018",)
    with pytest.raises(errors.CourseNotExemptible):
        rules.check_course(LAW, "00019", CANDIDATE)


def test_allowed_courses() -> None:
    passed = make_candidate(passed_courses=frozenset({"00012"}))
    assert rules.allowed_courses(route("CET4"), BA_LAW, CANDIDATE) == ("00015",)
    assert rules.allowed_courses(route("CET4"), LAW, CANDIDATE) == ("00012",)
    assert rules.allowed_courses(route("CET4"), LAW, passed) == ()
    assert rules.allowed_courses(route("NCRE1"), LAW, CANDIDATE) == ("00018",)
    assert rules.allowed_courses(route("NCRE2"), CS, CANDIDATE) == ()
    assert rules.allowed_courses(route("CET4"), STOPPED, CANDIDATE) == ()
    degree_courses = rules.allowed_courses(route("DEGREE"), LAW, CANDIDATE)
    assert "00242" in degree_courses
    assert not {"00019", "06999", "00261"} & set(degree_courses)


# --- the degree route ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("degree", "now", "error"),
    [
        (make_degree(), NOW, None),
        (make_degree(candidate_id=OTHER_ID), NOW, errors.DegreeNotOwned),
        (make_degree(holder_matches_candidate=False), NOW, errors.DegreeNotOwned),
        (make_degree(conclusion="结业"), NOW, errors.DegreeNotGraduated),
        (make_degree(conclusion="肄业"), NOW, errors.DegreeNotGraduated),
        (make_degree(valid_until=date(2025, 3, 9)), NOW, errors.DegreeVerificationExpired),
        (make_degree(valid_until=date(2025, 3, 10)), NOW, None),
        (make_degree(valid_until=None), NOW, None),
        (make_degree(level="phd"), NOW, errors.InvalidInput),
    ],
)
def test_degree(degree: VerifiedDegreeFacts, now: datetime, error: type[Exception] | None) -> None:
    evidence = make_evidence(degrees=[degree])
    if error is None:
        assert rules.check_degree(DEGREE_REF, CANDIDATE, evidence, now) is degree
    else:
        with pytest.raises(error):
            rules.check_degree(DEGREE_REF, CANDIDATE, evidence, now)


def test_degree_missing_or_unknown() -> None:
    with pytest.raises(errors.EvidenceMissing):
        rules.check_degree(None, CANDIDATE, EVIDENCE, NOW)
    with pytest.raises(errors.DegreeNotFound):
        rules.check_degree(uuid.uuid4(), CANDIDATE, EVIDENCE, NOW)


def law_course(code: str) -> Course:
    found = LAW.course(code)
    assert found is not None
    return found


def ba_course(code: str) -> Course:
    found = BA_LAW.course(code)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("degree", "source", "target", "major", "error"),
    [
        (make_degree(), "民法学", law_course("00242"), LAW, None),
        (make_degree(), " 民法学 ", law_course("00242"), LAW, None),
        (make_degree(), None, law_course("00242"), LAW, errors.SourceCourseRequired),
        (make_degree(), "  ", law_course("00242"), LAW, errors.SourceCourseRequired),
        (make_degree(), "婚姻法", law_course("00242"), LAW, errors.TranscriptCourseNotFound),
        (make_degree(), "中国法制史", law_course("00223"), LAW, errors.TranscriptScoreNotNumeric),
        (make_degree(), "刑法学", law_course("00245"), LAW, None),  # 108 hours = 6 credits
        (make_degree(), "大学语文", law_course("04729"), LAW, errors.TranscriptCourseNotExamined),
        (make_degree(), "法理学", law_course("05677"), LAW, errors.TranscriptScoreTooLow),
        (make_degree(), "民事诉讼法学", law_course("00243"), LAW, errors.TranscriptCreditsTooLow),
        (make_degree(), "法理学（一）", law_course("05677"), LAW, errors.TranscriptNameMismatch),
        (make_degree(), "民法学", law_course("00245"), LAW, errors.TranscriptNameMismatch),
        (make_degree(transcript=(line("民法学", "101"),)), "民法学", law_course("00242"), LAW, errors.TranscriptScoreNotNumeric),
        (make_degree(transcript=(line("民法学", "合格"),)), "民法学", law_course("00242"), LAW, errors.TranscriptScoreNotNumeric),
        (make_degree(transcript=(line("民法学", "60"),)), "民法学", law_course("00242"), LAW, None),
        (make_degree(transcript=(line("民法学", "82", None),)), "民法学", law_course("00242"), LAW, errors.TranscriptCreditsTooLow),
        (make_degree(transcript=(line("民法学", "82", None, hours=126),)), "民法学", law_course("00242"), LAW, None),
        (make_degree(transcript=(line("民法学", "82", None, hours=125),)), "民法学", law_course("00242"), LAW, errors.TranscriptCreditsTooLow),
        (make_degree(transcript=(line("民法学", "82", assessment=None),)), "民法学", law_course("00242"), LAW, None),
        (make_degree(level="bachelor"), "民法学", ba_course("00242"), BA_LAW, None),
        (make_degree(level="master"), "民法学", ba_course("00242"), BA_LAW, None),
        (make_degree(level="doctor"), "民法学", law_course("00242"), LAW, None),
        # 专科 for 本科: identical code and credits
        (make_degree(), "民法学", ba_course("00242"), BA_LAW, None),
        (make_degree(transcript=(line("民法学", "82", 7),)), "民法学", ba_course("00242"), BA_LAW, errors.JuniorCollegeMismatch),
        (make_degree(transcript=(line("民法学", "82", 8, code="00242"),)), "民法学", ba_course("00242"), BA_LAW, errors.JuniorCollegeMismatch),
        (make_degree(transcript=(line("民法学", "82", None, hours=126, code="00242"),)), "民法学", ba_course("00242"), BA_LAW, errors.JuniorCollegeMismatch),
    ],
)  # fmt: skip
def test_degree_course(
    degree: VerifiedDegreeFacts,
    source: str | None,
    target: Course,
    major: Major,
    error: type[Exception] | None,
) -> None:
    check: Callable[[], TranscriptLine] = lambda: rules.check_degree_course(  # noqa: E731
        degree, source, target, major, DegreeRules()
    )
    if error is None:
        assert check().name.strip()
    else:
        with pytest.raises(error):
            check()


def test_junior_college_degree_needs_the_identical_code_for_a_bachelor_major() -> None:
    high = Major(
        "010101", "哲学", Level.BACHELOR, Plan.OLD, courses=(course("00242", "民法学", 7),)
    )
    degree = make_degree(
        level="junior_college", transcript=(line("民法学", "82", 7, code="00243"),)
    )
    with pytest.raises(errors.JuniorCollegeMismatch):
        rules.check_degree_course(
            degree, "民法学", course("00242", "民法学", 7), high, DegreeRules()
        )


def test_degree_level_rank() -> None:
    assert (
        rules.LEVEL_RANK["master"]
        >= rules.LEVEL_RANK["bachelor"]
        > rules.LEVEL_RANK["junior_college"]
    )


@pytest.mark.parametrize(
    ("count", "share", "error"),
    [
        (5, 0.5, None),  # 11 courses (practical, thesis, 考查 included): at most 5
        (6, 0.5, errors.DegreeShareExceeded),
        (11, 1.0, None),
        (1, 0.0, errors.DegreeShareExceeded),
    ],
)
def test_degree_share(count: int, share: float, error: type[Exception] | None) -> None:
    degree_rules = DegreeRules(max_share_for_non_zikao=share)
    if error is None:
        rules.check_degree_share(LAW, count, degree_rules)
    else:
        with pytest.raises(error):
            rules.check_degree_share(LAW, count, degree_rules)


def test_zikao_degree_flag() -> None:
    assert make_degree(category="高等教育自学考试").is_zikao
    assert not make_degree().is_zikao


# --- photos -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("photos", "facts", "used", "error"),
    [
        ([photo(1)], [PhotoFacts(photo(1), CANDIDATE_ID)], [], None),
        ([photo(1), photo(2)], [PhotoFacts(photo(1), CANDIDATE_ID), PhotoFacts(photo(2), CANDIDATE_ID)], [], None),
        ([], [], [], errors.PhotoRequired),
        ([photo(1)], [], [], errors.PhotoNotFound),
        ([photo(1)], [PhotoFacts(photo(1), OTHER_ID)], [], errors.PhotoNotOwned),
        ([photo(1)], [PhotoFacts(photo(1), CANDIDATE_ID, deleted=True)], [], errors.PhotoDeleted),
        ([photo(1), photo(1)], [PhotoFacts(photo(1), CANDIDATE_ID)], [], errors.PhotoReused),
        ([photo(1)], [PhotoFacts(photo(1), CANDIDATE_ID)], [photo(1)], errors.PhotoReused),
    ],
)  # fmt: skip
def test_photos(
    photos: list[uuid.UUID],
    facts: list[PhotoFacts],
    used: list[uuid.UUID],
    error: type[Exception] | None,
) -> None:
    evidence = make_evidence(photos=facts)
    if error is None:
        rules.check_photos(photos, CANDIDATE, evidence, used)
    else:
        with pytest.raises(error):
            rules.check_photos(photos, CANDIDATE, evidence, used)


def test_a_certificate_the_authority_cannot_find_goes_to_the_reviewers() -> None:
    # Issue 5: an unverifiable certificate (not in the online query) still goes to a reviewer
    # with its photo; a holder mismatch does not.
    unverifiable = make_check(verified=False, reason_code="not_found")
    evidence = make_evidence(checks=[unverifiable])
    found = rules.check_certificate_evidence(
        route("CET4"), unverifiable.check_id, CANDIDATE, evidence
    )
    assert found.reason_code == "not_found"
