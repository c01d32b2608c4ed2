# ruff: noqa: E501
"""The ExemptionApplication aggregate: every command in every state, and its properties."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from application_builders import (
    APPLICATION_ID,
    CANDIDATE,
    CANDIDATE_ID,
    CATALOGUE,
    CHECK_CET4,
    CHECK_NCRE2,
    DEGREE_REF,
    EVIDENCE,
    LAW_COURSES,
    NOW,
    OTHER_ID,
    POINT,
    WINDOW,
    line,
    make_candidate,
    make_catalogue,
    make_check,
    make_degree,
    make_evidence,
    make_window,
    photo,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import event as note_label
from hypothesis import strategies as st

from application_service.domain import errors
from application_service.domain.application import (
    ApplicationStatus,
    CertificateInput,
    CourseClaim,
    ExemptionApplication,
)
from application_service.domain.evidence import (
    CandidateFacts,
    Evidence,
    PhotoFacts,
)
from contracts.application import (
    MAX_CERTIFICATES,
    MAX_MAJORS,
    ApplicationDecided,
    ApplicationDrafted,
    ApplicationResubmitted,
    ApplicationReturnedToCandidate,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CertificateAdded,
    CertificateRemoved,
)
from contracts.base import (
    CertificateKind,
    ContractEvent,
    CourseDecision,
    CourseOutcome,
    ReviewStage,
)

pytestmark = pytest.mark.unit

# --- builders of this module (the shared ones are in application_builders.py) ------------


CASE = "MK2025000123"
CERT_A = uuid.UUID(int=1)
CERT_B = uuid.UUID(int=2)
CERT_C = uuid.UUID(int=3)


def cet4(
    cert_id: uuid.UUID = CERT_A, photo_n: int = 1, major: str = "580401", code: str = "00012"
) -> CertificateInput:
    return CertificateInput(
        certificate_id=cert_id,
        kind=CertificateKind.CET4_OR_ABOVE,
        route_id="CET4",
        courses=[CourseClaim(code, major)],
        photo_ids=[photo(photo_n)],
        certificate_check_ref=CHECK_CET4,
    )


def degree_cert(
    cert_id: uuid.UUID = CERT_B,
    photo_n: int = 2,
    claims: Sequence[tuple[str, str]] = (("00242", "民法学"),),
    major: str = "580401",
) -> CertificateInput:
    return CertificateInput(
        certificate_id=cert_id,
        kind=CertificateKind.DEGREE,
        route_id="DEGREE",
        courses=[CourseClaim(code, major, source) for code, source in claims],
        photo_ids=[photo(photo_n)],
        degree_ref=DEGREE_REF,
    )


def drafted(majors: Sequence[str] = ("580401",), **changes: Any) -> list[ContractEvent]:
    values: dict[str, Any] = {
        "application_id": APPLICATION_ID,
        "candidate": CANDIDATE,
        "window": WINDOW,
        "confirmation_point_id": POINT,
        "plan": "old",
        "major_codes": list(majors),
        "catalogue": CATALOGUE,
        "now": NOW,
    }
    values.update(changes)
    return ExemptionApplication.draft(**values)


def fold(events: Sequence[ContractEvent]) -> ExemptionApplication:
    return ExemptionApplication.from_events(events)


def run(app: ExemptionApplication, events: list[ContractEvent]) -> ExemptionApplication:
    return app.apply_all(events)


def add(
    app: ExemptionApplication, cert: CertificateInput, evidence: Evidence = EVIDENCE, **kw: Any
) -> list[ContractEvent]:
    return app.add_certificate(
        cert,
        candidate=kw.get("candidate", CANDIDATE),
        evidence=evidence,
        catalogue=kw.get("catalogue", CATALOGUE),
        now=kw.get("now", NOW),
    )


def submit(
    app: ExemptionApplication, evidence: Evidence = EVIDENCE, **kw: Any
) -> list[ContractEvent]:
    values: dict[str, Any] = {
        "declaration_accepted": True,
        "case_number": CASE,
        "now": NOW,
        "window": WINDOW,
        "candidate": CANDIDATE,
        "evidence": evidence,
        "catalogue": CATALOGUE,
    }
    values.update(kw)
    return app.submit(**values)


def resubmit(app: ExemptionApplication, **kw: Any) -> list[ContractEvent]:
    values: dict[str, Any] = {
        "declaration_accepted": True,
        "now": datetime(2025, 3, 25, tzinfo=UTC),
        "window": WINDOW,
        "candidate": CANDIDATE,
        "evidence": EVIDENCE,
        "catalogue": CATALOGUE,
    }
    values.update(kw)
    return app.resubmit(**values)


def draft_app() -> ExemptionApplication:
    return fold(drafted())


def with_cert() -> ExemptionApplication:
    app = draft_app()
    return run(app, add(app, cet4()))


def submitted_app() -> ExemptionApplication:
    app = with_cert()
    return run(app, submit(app))


def returned_app() -> ExemptionApplication:
    app = submitted_app()
    return run(app, app.returned(ReviewStage.CONFIRMATION_POINT, "照片不清晰", 1))


def decision(
    code: str = "00012", major: str = "580401", outcome: CourseOutcome = CourseOutcome.GRANTED
) -> CourseDecision:
    return CourseDecision(course_code=code, major_code=major, outcome=outcome)


def decided_app() -> ExemptionApplication:
    app = submitted_app()
    return run(app, app.decided([decision()]))


def withdrawn_app() -> ExemptionApplication:
    app = draft_app()
    return run(app, app.withdraw())


STATES = {
    "draft": draft_app,
    "submitted": submitted_app,
    "returned": returned_app,
    "decided": decided_app,
    "withdrawn": withdrawn_app,
}


# --- draft --------------------------------------------------------------------------------------


def test_draft_records_point_plan_majors_and_catalogue_version() -> None:
    [event] = drafted(["580401", "030101K"])
    assert isinstance(event, ApplicationDrafted)
    assert event.major_codes == ["580401", "030101K"]
    assert event.catalogue_version == "2025.1"
    app = fold([event])
    assert app.status is ApplicationStatus.DRAFT
    assert app.is_open
    assert app.version == 1


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"now": datetime(2025, 3, 20, tzinfo=UTC)}, errors.WindowClosed),
        ({"now": datetime(2025, 2, 1, tzinfo=UTC)}, errors.WindowClosed),
        ({"window": make_window(closed_by_ops=True)}, errors.WindowClosed),
        ({"now": datetime(2025, 3, 10)}, errors.InvalidInput),
        ({"candidate": make_candidate(enrolled=False)}, errors.CandidateNotEnrolled),
        ({"candidate": make_candidate(registered=False)}, errors.CandidateNotRegistered),
        ({"confirmation_point_id": "999999"}, errors.PointNotFound),
        ({"plan": "future"}, errors.InvalidInput),
        ({"major_codes": []}, errors.NoMajors),
        ({"major_codes": ["580401", "580401"]}, errors.DuplicateMajor),
        ({"major_codes": ["580401", "030101K", "080901"]}, errors.TooManyMajors),
        ({"major_codes": ["590108"]}, errors.MajorSuspended),
        ({"major_codes": ["123456"]}, errors.MajorNotFound),
        ({"plan": "new", "major_codes": ["080901"]}, errors.MajorNotFound),
    ],
)
def test_draft_refusals(changes: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        drafted(**changes)


def test_from_events_needs_a_draft_first() -> None:
    with pytest.raises(ValueError, match="starts with"):
        fold([])
    with pytest.raises(ValueError, match="starts with"):
        fold(add(draft_app(), cet4()))


# --- add and remove certificates ----------------------------------------------------------------


def test_add_certificate_builds_the_contract_value() -> None:
    app = draft_app()
    [event] = add(app, cet4())
    assert isinstance(event, CertificateAdded)
    cert = event.certificate
    assert cert.kind is CertificateKind.CET4_OR_ABOVE
    assert cert.certificate_check_ref == CHECK_CET4
    assert [(c.course_code, c.course_name, c.major_code) for c in cert.courses] == [
        ("00012", "英语(一)", "580401")
    ]
    assert cert.degree is None
    assert run(app, [event]).certificates == (cert,)


def test_add_degree_certificate_carries_a_degree_summary() -> None:
    app = draft_app()
    [event] = add(app, degree_cert(claims=[("00242", "民法学"), ("00245", "刑法学")]))
    assert isinstance(event, CertificateAdded)
    summary = event.certificate.degree
    assert summary is not None
    assert summary.degree_ref == DEGREE_REF
    assert summary.level.value == "junior_college"
    assert summary.holder_matches_candidate
    assert [c.source_course_name for c in event.certificate.courses] == ["民法学", "刑法学"]


def test_four_certificates_at_most() -> None:
    app = fold(drafted(["580401", "080901"]))
    inputs = [
        cet4(uuid.UUID(int=1), 1),
        degree_cert(uuid.UUID(int=2), 2),
        CertificateInput(
            uuid.UUID(int=3),
            CertificateKind.NCRE2_OR_ABOVE,
            "NCRE2-C",
            [CourseClaim("00342", "080901")],
            [photo(3)],
            certificate_check_ref=CHECK_NCRE2,
        ),
        degree_cert(uuid.UUID(int=4), 4, claims=[("00245", "刑法学")]),
    ]
    for cert in inputs:
        app = run(app, add(app, cert))
    assert len(app.certificates) == MAX_CERTIFICATES
    with pytest.raises(errors.TooManyCertificates):
        add(
            app,
            CertificateInput(
                uuid.UUID(int=5),
                CertificateKind.NCRE1_OR_ABOVE,
                "NCRE1",
                [CourseClaim("00018", "580401")],
                [photo(5)],
                certificate_check_ref=CHECK_NCRE2,
            ),
        )


@pytest.mark.parametrize(
    ("cert", "evidence", "error"),
    [
        (cet4(CERT_A), EVIDENCE, errors.DuplicateCertificate),
        (cet4(CERT_B, 2), EVIDENCE, errors.CourseClaimedTwice),
        (cet4(CERT_B, 1, code="00018"), EVIDENCE, errors.CourseNotCoveredByRoute),
        (cet4(CERT_B, 2, major="030101K", code="00015"), EVIDENCE, errors.MajorNotInApplication),
        (CertificateInput(CERT_B, CertificateKind.CET4_OR_ABOVE, "CET4", [], [photo(2)], certificate_check_ref=CHECK_CET4), EVIDENCE, errors.NoCourses),
        (CertificateInput(CERT_B, CertificateKind.PETS2_OR_ABOVE, "CET4", [CourseClaim("00018", "580401")], [photo(2)], certificate_check_ref=CHECK_CET4), EVIDENCE, errors.RouteKindMismatch),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NONE", [CourseClaim("00018", "580401")], [photo(2)], certificate_check_ref=CHECK_CET4), EVIDENCE, errors.RouteNotFound),
        (CertificateInput(CERT_B, "nonsense", "NCRE1", [CourseClaim("00018", "580401")], [photo(2)], certificate_check_ref=CHECK_CET4), EVIDENCE, errors.InvalidInput),  # type: ignore[arg-type]
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00018", "580401")], [photo(2)]), EVIDENCE, errors.EvidenceMissing),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00018", "580401")], [photo(2)], certificate_check_ref=CHECK_CET4), EVIDENCE, errors.CheckWrongExam),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00018", "580401")], [photo(2)], degree_ref=DEGREE_REF, certificate_check_ref=CHECK_NCRE2), EVIDENCE, errors.InvalidInput),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00018", "580401", "计算机")], [photo(2)], certificate_check_ref=CHECK_NCRE2), EVIDENCE, errors.InvalidInput),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00019", "580401")], [photo(2)], certificate_check_ref=CHECK_NCRE2), EVIDENCE, errors.CourseNotExemptible),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00018", "580401")], [photo(1)], certificate_check_ref=CHECK_NCRE2), EVIDENCE, errors.PhotoReused),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00018", "580401")], [], certificate_check_ref=CHECK_NCRE2), EVIDENCE, errors.PhotoRequired),
        (CertificateInput(CERT_B, CertificateKind.NCRE1_OR_ABOVE, "NCRE1", [CourseClaim("00018", "580401")], [photo(99)], certificate_check_ref=CHECK_NCRE2), EVIDENCE, errors.PhotoNotFound),
        (degree_cert(claims=[("00242", "民法学"), ("00242", "民法学")]), EVIDENCE, errors.CourseClaimedTwice),
        (degree_cert(claims=[("00223", "中国法制史")]), EVIDENCE, errors.TranscriptScoreNotNumeric),
        (replace(degree_cert(), certificate_check_ref=CHECK_CET4), EVIDENCE, errors.InvalidInput),
        (replace(degree_cert(), degree_ref=None), EVIDENCE, errors.EvidenceMissing),
        (degree_cert(), make_evidence(degrees=[make_degree(conclusion="结业")], checks=[make_check()]), errors.DegreeNotGraduated),
    ],
)  # fmt: skip
def test_add_certificate_refusals(
    cert: CertificateInput, evidence: Evidence, error: type[Exception]
) -> None:
    app = with_cert()
    with pytest.raises(error):
        add(app, cert, evidence)


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        (
            {"candidate": CandidateFacts(candidate_id=OTHER_ID, name="李四")},
            errors.CandidateMismatch,
        ),
        ({"candidate": make_candidate(enrolled=False)}, errors.CandidateNotEnrolled),
        ({"catalogue": make_catalogue("2025.2")}, errors.CatalogueMismatch),
        ({"now": datetime(2025, 3, 10)}, errors.InvalidInput),
    ],
)
def test_add_certificate_context_refusals(kw: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        add(draft_app(), cet4(), **kw)


def test_degree_share_counts_every_non_zikao_degree_certificate() -> None:
    # LAW has 11 courses: a non-自考 graduate gets at most 5 by degree
    transcript = tuple(line(c.name, "90", 10, code=c.code) for c in LAW_COURSES)
    evidence = make_evidence(degrees=[make_degree(transcript=transcript)], checks=[make_check()])
    app = draft_app()
    five = [
        (c, n)
        for c, n in [
            ("00223", "中国法制史"),
            ("00242", "民法学"),
            ("00243", "民事诉讼法学"),
            ("00245", "刑法学"),
            ("04729", "大学语文"),
        ]
    ]
    app = run(app, add(app, degree_cert(CERT_A, 1, claims=five[:3]), evidence))
    app = run(app, add(app, degree_cert(CERT_B, 2, claims=five[3:]), evidence))
    with pytest.raises(errors.DegreeShareExceeded):
        add(app, degree_cert(CERT_C, 3, claims=[("05677", "法理学")]), evidence)
    zikao = make_evidence(
        degrees=[make_degree(transcript=transcript, category="高等教育自学考试")],
        checks=[make_check()],
    )
    assert add(app, degree_cert(CERT_C, 3, claims=[("05677", "法理学")]), zikao)


@pytest.mark.parametrize("state", ["submitted", "decided", "withdrawn"])
def test_add_and_remove_refused_outside_draft_or_returned(state: str) -> None:
    app = STATES[state]()
    expected = {
        "submitted": errors.NotEditable,
        "decided": errors.AlreadyDecided,
        "withdrawn": errors.AlreadyWithdrawn,
    }[state]
    with pytest.raises(expected):
        add(app, cet4(CERT_B, 2, code="00018"))
    with pytest.raises(expected):
        app.remove_certificate(CERT_A)


def test_remove_certificate() -> None:
    app = with_cert()
    [event] = app.remove_certificate(CERT_A)
    assert isinstance(event, CertificateRemoved)
    app = run(app, [event])
    assert app.certificates == ()
    with pytest.raises(errors.CertificateNotFound):
        app.remove_certificate(CERT_A)
    assert add(app, cet4()), "the course may be claimed again"


def test_returned_application_is_editable() -> None:
    app = returned_app()
    app = run(app, app.remove_certificate(CERT_A))
    app = run(app, add(app, cet4(CERT_B, 2)))
    assert [c.certificate_id for c in app.certificates] == [CERT_B]


# --- submit and resubmit ------------------------------------------------------------------------


def test_submit_freezes_the_whole_snapshot() -> None:
    app = fold(drafted(["580401", "080901"]))
    app = run(
        app, add(app, degree_cert(CERT_A, 1, claims=[("00245", "刑法学"), ("00242", "民法学")]))
    )
    app = run(app, add(app, cet4(CERT_B, 2)))
    [event] = submit(app)
    assert isinstance(event, ApplicationSubmitted)
    assert event.submission_number == 1
    assert event.case_number == CASE
    assert event.course_codes == ["00245", "00242", "00012"]
    assert event.photo_ids == [photo(1), photo(2)]
    assert event.certificates == list(app.certificates)
    assert event.declaration_accepted
    after = run(app, [event])
    assert after.status is ApplicationStatus.SUBMITTED
    assert after.is_open
    assert after.case_number == CASE


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"declaration_accepted": False}, errors.DeclarationRequired),
        ({"case_number": "2025000123"}, errors.InvalidInput),
        ({"now": datetime(2025, 3, 21, tzinfo=UTC)}, errors.WindowClosed),
        ({"window": make_window(window_id=uuid.uuid4())}, errors.WrongWindow),
        ({"candidate": make_candidate(passed_courses=frozenset({"00012"}))}, errors.CourseAlreadyPassed),
        ({"evidence": make_evidence(checks=[make_check()], photos=[PhotoFacts(photo(1), CANDIDATE_ID, deleted=True)])}, errors.PhotoDeleted),
        ({"evidence": make_evidence(checks=[make_check(verified=False)])}, errors.CheckNotVerified),
        ({"catalogue": make_catalogue("2025.2")}, errors.CatalogueMismatch),
    ],
)  # fmt: skip
def test_submit_revalidates(kw: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        submit(with_cert(), **kw)


def test_submit_needs_a_certificate() -> None:
    with pytest.raises(errors.NoCertificates):
        submit(draft_app())


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("submitted", errors.AlreadySubmitted),
        ("returned", errors.AlreadySubmitted),
        ("decided", errors.AlreadyDecided),
        ("withdrawn", errors.AlreadyWithdrawn),
    ],
)
def test_submit_only_a_draft(state: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        submit(STATES[state]())


def test_resubmit_after_return() -> None:
    app = returned_app()
    assert app.last_return is not None
    assert app.last_return.reason == "照片不清晰"
    [event] = resubmit(app)
    assert isinstance(event, ApplicationResubmitted)
    assert event.submission_number == 2
    assert event.case_number == CASE
    app = run(app, [event])
    assert app.status is ApplicationStatus.SUBMITTED
    assert app.submission_number == 2
    # a return of the first submission is now stale
    assert app.returned(ReviewStage.PROVINCIAL, "重复", 1) == []
    app = run(app, app.returned(ReviewStage.PROVINCIAL, "学分不足", 2))
    assert resubmit(app)[0].submission_number == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("kw", "error"),
    [
        ({"now": datetime(2025, 4, 1, tzinfo=UTC)}, errors.ResubmissionClosed),
        ({"window": make_window(closed_by_ops=True)}, errors.ResubmissionClosed),
        ({"declaration_accepted": False}, errors.DeclarationRequired),
        ({"window": make_window(window_id=uuid.uuid4())}, errors.WrongWindow),
    ],
)
def test_resubmit_refusals(kw: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        resubmit(returned_app(), **kw)


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("draft", errors.NotReturned),
        ("submitted", errors.AlreadySubmitted),
        ("decided", errors.AlreadyDecided),
        ("withdrawn", errors.AlreadyWithdrawn),
    ],
)
def test_resubmit_only_a_returned_application(state: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        resubmit(STATES[state]())


# --- withdraw -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["draft", "submitted", "returned"])
def test_withdraw_an_open_application(state: str) -> None:
    app = STATES[state]()
    [event] = app.withdraw("  证书有误  ")
    assert isinstance(event, ApplicationWithdrawn)
    assert event.reason == "证书有误"
    assert event.case_number == (None if state == "draft" else CASE)
    after = run(app, [event])
    assert after.status is ApplicationStatus.WITHDRAWN
    assert not after.is_open


@pytest.mark.parametrize(
    ("state", "error"), [("decided", errors.AlreadyDecided), ("withdrawn", errors.AlreadyWithdrawn)]
)
def test_withdraw_refusals(state: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        STATES[state]().withdraw()


def test_withdraw_reason_is_validated() -> None:
    assert draft_app().withdraw("   ")[0].reason is None  # type: ignore[attr-defined]
    with pytest.raises(errors.InvalidInput):
        draft_app().withdraw("长" * 501)


# --- review policies ----------------------------------------------------------------------------


def test_returned_only_for_the_current_submission() -> None:
    app = submitted_app()
    [event] = app.returned("confirmation_point", "照片不清晰", 1)
    assert isinstance(event, ApplicationReturnedToCandidate)
    assert event.submission_number == 1
    after = run(app, [event])
    assert after.status is ApplicationStatus.RETURNED
    assert after.is_open
    assert after.returned(ReviewStage.CONFIRMATION_POINT, "照片不清晰", 1) == []  # duplicate
    assert app.returned(ReviewStage.CONFIRMATION_POINT, "x", 2) == []
    for state in ("draft", "decided", "withdrawn"):
        assert STATES[state]().returned(ReviewStage.PROVINCIAL, "x", 1) == []


@pytest.mark.parametrize(
    ("stage", "reason", "number"),
    [("nowhere", "x", 1), ("provincial", " ", 1), ("provincial", "x", 0)],
)
def test_returned_inputs_are_validated(stage: str, reason: str, number: int) -> None:
    with pytest.raises(errors.InvalidInput):
        submitted_app().returned(stage, reason, number)


def test_decided_one_decision_per_claimed_course() -> None:
    app = submitted_app()
    [event] = app.decided([decision(outcome=CourseOutcome.DENIED)], date(2025, 4, 27))
    assert isinstance(event, ApplicationDecided)
    after = run(app, [event])
    assert after.status is ApplicationStatus.DECIDED
    assert not after.is_open
    assert after.objection_deadline == date(2025, 4, 27)
    assert after.decided([decision()]) == []  # duplicate


@pytest.mark.parametrize(
    "decisions",
    [
        [],
        [decision(), decision()],
        [decision("00018")],
        [decision(major="030101K")],
        [decision(), decision("00018")],
    ],
)
def test_decided_must_match_the_claimed_courses(decisions: list[CourseDecision]) -> None:
    with pytest.raises(errors.DecisionsMismatch):
        submitted_app().decided(decisions)


def test_decided_in_other_states() -> None:
    with pytest.raises(errors.NotUnderReview):
        draft_app().decided([decision()])
    assert returned_app().decided([decision()]) == []
    assert withdrawn_app().decided([decision()]) == []


def test_apply_refuses_foreign_events() -> None:
    app = draft_app()
    with pytest.raises(ValueError, match="drafted once"):
        app.apply(drafted()[0])
    other = ExemptionApplication.draft(
        application_id=uuid.uuid4(),
        candidate=CANDIDATE,
        window=WINDOW,
        confirmation_point_id=POINT,
        plan="old",
        major_codes=["580401"],
        catalogue=CATALOGUE,
        now=NOW,
    )
    with pytest.raises(ValueError, match="another application"):
        app.apply(other[0])


# --- properties ---------------------------------------------------------------------------------

COMMAND_CERTS = [
    cet4(uuid.UUID(int=11), 1),
    cet4(uuid.UUID(int=12), 2, major="030101K", code="00015"),
    degree_cert(uuid.UUID(int=13), 3),
    degree_cert(uuid.UUID(int=14), 4, claims=[("00242", "民法学")], major="030101K"),
    degree_cert(uuid.UUID(int=15), 5, claims=[("00245", "刑法学")]),
    CertificateInput(
        uuid.UUID(int=16),
        CertificateKind.NCRE2_OR_ABOVE,
        "NCRE2-C",
        [CourseClaim("00342", "080901")],
        [photo(6)],
        certificate_check_ref=CHECK_NCRE2,
    ),
    CertificateInput(
        uuid.UUID(int=17),
        CertificateKind.NCRE1_OR_ABOVE,
        "NCRE1",
        [CourseClaim("00018", "580401")],
        [photo(7)],
        certificate_check_ref=CHECK_NCRE2,
    ),
    CertificateInput(
        uuid.UUID(int=18),
        CertificateKind.NCRE1_OR_ABOVE,
        "NCRE1",
        [CourseClaim("00018", "080901")],
        [photo(8)],
        certificate_check_ref=CHECK_NCRE2,
    ),
    degree_cert(uuid.UUID(int=19), 9, claims=[("00242", "民法学"), ("00245", "刑法学")]),
]

command = st.one_of(
    st.tuples(st.just("add"), st.sampled_from(range(len(COMMAND_CERTS)))),
    st.tuples(st.just("remove"), st.sampled_from(range(len(COMMAND_CERTS)))),
    st.tuples(st.just("submit"), st.just(0)),
    st.tuples(st.just("resubmit"), st.just(0)),
    st.tuples(st.just("return"), st.integers(0, 3)),
    st.tuples(st.just("decide"), st.just(0)),
    st.tuples(st.just("withdraw"), st.integers(0, 9)),
)


def attempt(app: ExemptionApplication, name: str, arg: int) -> list[ContractEvent]:
    if name == "add":
        return add(app, COMMAND_CERTS[arg])
    if name == "remove":
        return app.remove_certificate(COMMAND_CERTS[arg].certificate_id)
    if name == "submit":
        return submit(app)
    if name == "resubmit":
        return resubmit(app)
    if name == "return":
        return app.returned(ReviewStage.CONFIRMATION_POINT, "请补充材料", arg)
    if name == "decide":
        return app.decided([decision(c.course_code, c.major_code) for c in app.claimed_courses])
    if arg == 0:  # rarely, so sequences reach review
        return app.withdraw()
    return []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    majors=st.sampled_from([["580401"], ["580401", "030101K"], ["080901", "580401"]]),
    commands=st.lists(command, max_size=25),
)
def test_any_valid_command_sequence_keeps_the_invariants(
    majors: list[str], commands: list[tuple[str, int]]
) -> None:
    events: list[ContractEvent] = list(drafted(majors))
    app = fold(events)
    for name, arg in commands:
        try:
            new = attempt(app, name, arg)
        except errors.ApplicationError:
            continue  # refused: nothing applied
        events.extend(new)
        app = app.apply_all(new)
        assert len(app.certificates) <= MAX_CERTIFICATES
        assert len({c.major_code for c in app.claimed_courses}) <= MAX_MAJORS
        assert set(c.major_code for c in app.claimed_courses) <= set(app.major_codes)
        assert len(app.course_codes) == len(set(app.course_codes))
        assert len(app.photo_ids) == len(set(app.photo_ids))
        for event in new:
            if isinstance(event, ApplicationSubmitted | ApplicationResubmitted):
                assert event.course_codes == [
                    c.course_code for cert in event.certificates for c in cert.courses
                ]
                assert set(event.course_codes) == {
                    c.course_code for cert in event.certificates for c in cert.courses
                }
                assert event.photo_ids == [p for cert in event.certificates for p in cert.photo_ids]
    note_label(f"status={app.status.value}, submissions={app.submission_number}")
    folded = fold(events)
    assert folded == app
    assert folded.version == len(events)
    assert app.is_open == (
        app.status not in (ApplicationStatus.DECIDED, ApplicationStatus.WITHDRAWN)
    )


@settings(max_examples=50, deadline=None)
@given(
    codes=st.lists(
        st.sampled_from(["00012", "00018", "00242", "00245", "00015", "00342"]),
        min_size=1,
        max_size=6,
    )
)
def test_no_duplicate_course_can_be_added(codes: list[str]) -> None:
    app = fold(drafted(["580401", "030101K"]))
    for i, code in enumerate(codes):
        major = "030101K" if code == "00015" else "580401"
        cert = degree_cert(
            uuid.UUID(int=100 + i),
            i,
            claims=[(code, {"00242": "民法学", "00245": "刑法学"}.get(code, "民法学"))],
            major=major,
        )
        with contextlib.suppress(errors.ApplicationError):
            app = app.apply_all(add(app, cert))
        assert len(app.course_codes) == len(set(app.course_codes))
