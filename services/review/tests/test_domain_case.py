"""The ReviewCase aggregate: every command in every state, leases, the fold and its invariants."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.application import (
    ApplicationCertificate,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    ClaimedCourse,
)
from contracts.base import CertificateKind, ContractEvent, CourseOutcome, ReviewStage, StudyPlan
from contracts.review import (
    ApplicationApproved,
    ApplicationReturned,
    InitialReviewCompleted,
    ReviewClaimed,
    ReviewReleased,
)
from review_service.domain import errors
from review_service.domain.access import OPS, REVIEWER, SENIOR_REVIEWER, Reviewer
from review_service.domain.case import (
    DEFAULT_LEASE,
    CaseStatus,
    Recorded,
    ReviewCase,
    Verdict,
)

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 5, 1, 0, tzinfo=UTC)
POINT, OTHER_POINT = "140105", "140106"
APP = uuid.UUID("2d9a6e3c-bf41-4c5d-ae7f-8091a2b3c4d5")
CANDIDATE = uuid.UUID("6f1c2a9e-3b4d-4e5f-8a7b-1c2d3e4f5a6b")
WINDOW = uuid.UUID("3eab7f4d-c052-4d6e-bf80-91a2b3c4d5e6")
CET = uuid.UUID("83f0c495-15a7-42b3-c4d5-e6f708192a3b")
NCRE = uuid.UUID("72efb384-0496-41a2-b3c4-d5e6f708192a")
MAJOR = "580401"

POINT_A = Reviewer(uuid.uuid4(), frozenset({REVIEWER}), frozenset({POINT}))
POINT_B = Reviewer(uuid.uuid4(), frozenset({REVIEWER}), frozenset({POINT, OTHER_POINT}))
ELSEWHERE = Reviewer(uuid.uuid4(), frozenset({REVIEWER}), frozenset({OTHER_POINT}))
SENIOR_A = Reviewer(uuid.uuid4(), frozenset({SENIOR_REVIEWER}))
SENIOR_B = Reviewer(uuid.uuid4(), frozenset({SENIOR_REVIEWER}))
OPS_STAFF = Reviewer(uuid.uuid4(), frozenset({OPS}), frozenset({POINT}))

ALL_GRANTED = [Verdict("00012", "granted"), Verdict("00018", CourseOutcome.GRANTED)]
ONE_DENIED = [
    Verdict("00012", "granted"),
    Verdict("00018", "denied", "证书级别或成绩未达到免考要求", major_code=MAJOR),
]


def certificate(
    certificate_id: uuid.UUID, codes: Sequence[str], photo: uuid.UUID | None = None
) -> ApplicationCertificate:
    return ApplicationCertificate(
        certificate_id=certificate_id,
        kind=CertificateKind.CET4_OR_ABOVE,
        route_id="CET4",
        certificate_check_ref=uuid.UUID(int=certificate_id.int ^ 1),
        photo_ids=[photo or uuid.UUID(int=certificate_id.int ^ 2)],
        courses=[
            ClaimedCourse(course_code=code, course_name=f"课程{code}", major_code=MAJOR)
            for code in codes
        ],
    )


FIRST_CERTS = [certificate(CET, ["00012"]), certificate(NCRE, ["00018"])]


def snapshot(
    number: int = 1, certificates: Sequence[ApplicationCertificate] = FIRST_CERTS
) -> ApplicationSubmitted | ApplicationResubmitted:
    kind = ApplicationSubmitted if number == 1 else ApplicationResubmitted
    return kind(
        application_id=APP,
        case_number="MK2025000123",
        candidate_id=CANDIDATE,
        window_id=WINDOW,
        confirmation_point_id=POINT,
        plan=StudyPlan.OLD,
        major_codes=[MAJOR],
        catalogue_version="2025.1",
        certificates=list(certificates),
        course_codes=[c.course_code for cert in certificates for c in cert.courses],
        photo_ids=[p for cert in certificates for p in cert.photo_ids],
        declaration_accepted=True,
        submission_number=number,
    )


def new_case() -> ReviewCase:
    return ReviewCase.from_events([(snapshot(), T0)])


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def step(case: ReviewCase, events: Sequence[ContractEvent], when: datetime) -> ReviewCase:
    return case.apply_all([(event, when) for event in events])


def claimed(case: ReviewCase, who: Reviewer, minutes: float = 1) -> ReviewCase:
    when = at(minutes)
    return step(case, case.claim(who, when, submission_number=case.submission_number), when)


def at_province(minutes: float = 2) -> ReviewCase:
    case = claimed(new_case(), POINT_A)
    when = at(minutes)
    events = case.complete_initial_review(
        POINT_A, when, ONE_DENIED, "原件已核验", submission_number=1
    )
    return step(case, events, when)


def decided() -> ReviewCase:
    case = claimed(at_province(), SENIOR_A, 3)
    events = case.approve(SENIOR_A, at(4), ALL_GRANTED, submission_number=1)
    return step(case, events, at(4))


def returned(by_province: bool = False) -> ReviewCase:
    if by_province:
        case, who = claimed(at_province(), SENIOR_A, 3), SENIOR_A
    else:
        case, who = claimed(new_case(), POINT_A), POINT_A
    events = case.return_to_candidate(who, at(4), "证书照片不清晰，请重新上传", submission_number=1)
    return step(case, events, at(4))


# --- the fold -----------------------------------------------------------------------------------


def test_a_submission_opens_a_case_at_the_point() -> None:
    case = new_case()
    assert case.status is CaseStatus.AWAITING_POINT
    assert case.acting_stage is ReviewStage.CONFIRMATION_POINT
    assert [c.course_code for c in case.courses] == ["00012", "00018"]
    assert (case.version, case.decision_version, case.submission_number) == (1, 0, 1)
    assert case.active_claim is None and case.earlier_rounds == ()
    assert case.changes_since_last_return() is None
    assert case.timeline[0].actor_id == CANDIDATE and case.timeline[0].at == T0
    assert CaseStatus.AWAITING_POINT.label == "待确认点初审"


def test_the_fold_refuses_what_cannot_happen() -> None:
    case = new_case()
    claim = case.claim(POINT_A, at(1), submission_number=1)[0]
    with pytest.raises(ValueError, match="starts with"):
        ReviewCase.from_events([])
    with pytest.raises(ValueError, match="starts with"):
        ReviewCase.from_events([(claim, T0)])
    with pytest.raises(ValueError, match="timezone"):
        case.apply(claim, datetime(2025, 3, 5))
    with pytest.raises(ValueError, match="submitted once"):
        case.apply(snapshot(), at(1))
    with pytest.raises(ValueError, match="resubmission while"):
        case.apply(snapshot(2), at(1))
    with pytest.raises(ValueError, match="another application"):
        case.apply(claim.model_copy(update={"application_id": uuid.uuid4()}), at(1))
    with pytest.raises(ValueError, match="another submission"):
        case.apply(claim.model_copy(update={"submission_number": 2}), at(1))
    with pytest.raises(ValueError, match="claim at"):
        case.apply(claim.model_copy(update={"stage": ReviewStage.PROVINCIAL}), at(1))
    held = case.apply(claim, at(1))
    other = claim.model_copy(update={"reviewer_id": POINT_B.staff_id})
    with pytest.raises(ValueError, match="released"):
        held.apply(other, at(40))
    with pytest.raises(ValueError, match="not held"):
        case.apply(held.release(POINT_A, at(2), submission_number=1)[0], at(2))
    province = at_province()
    approve = claimed(province, SENIOR_A, 3).approve(
        SENIOR_A, at(4), ALL_GRANTED, submission_number=1
    )[0]
    with pytest.raises(ValueError, match="final"):
        province.apply(approve.model_copy(update={"final": False}), at(4))
    with pytest.raises(ValueError, match="ApplicationApproved while"):
        case.apply(approve, at(4))
    with pytest.raises(ValueError, match="not a review event"):
        case.apply(  # a contract event of another stream
            __import__("contracts.application", fromlist=["x"]).CertificateRemoved(
                application_id=APP, certificate_id=CET
            ),
            at(1),
        )


# --- claims -------------------------------------------------------------------------------------


def test_claim_renew_and_take_over_after_the_lease() -> None:
    case = new_case()
    [event] = case.claim(POINT_A, at(1), submission_number=1)
    assert isinstance(event, ReviewClaimed)
    assert event.stage is ReviewStage.CONFIRMATION_POINT and event.reviewer_id == POINT_A.staff_id
    case = step(case, [event], at(1))
    assert case.holder(at(30)) == POINT_A.staff_id and case.holder(at(31)) is None
    assert case.decision_version == 1
    # renewal: one new ReviewClaimed, extending the lease
    renewed = step(case, case.claim(POINT_A, at(20), submission_number=1), at(20))
    assert renewed.active_claim is not None
    assert renewed.active_claim.expires_at() == at(50)
    # someone else while it is live: told who and until when (Beijing time)
    with pytest.raises(errors.AlreadyClaimed) as info:
        renewed.claim(POINT_B, at(49), submission_number=1)
    assert info.value.holder_id == POINT_A.staff_id
    assert "审核员" in info.value.message and "（至 09:50）" in info.value.message
    # after expiry: the lapse is recorded first, then the new claim
    released, taken = renewed.claim(POINT_B, at(50), submission_number=1)
    assert isinstance(released, ReviewReleased) and released.lapsed
    assert released.reviewer_id == POINT_A.staff_id
    assert isinstance(taken, ReviewClaimed) and taken.reviewer_id == POINT_B.staff_id
    after = step(renewed, [released, taken], at(50))
    assert after.holder(at(51)) == POINT_B.staff_id
    # the holder coming back after their own lapse also records it
    lapsed_self = claimed(new_case(), POINT_A).claim(POINT_A, at(40), submission_number=1)
    assert [type(e) for e in lapsed_self] == [ReviewReleased, ReviewClaimed]


def test_the_lease_is_a_parameter() -> None:
    case = claimed(new_case(), POINT_A)
    short = timedelta(minutes=10)
    assert len(case.claim(POINT_B, at(11), submission_number=1, lease=short)) == 2
    with pytest.raises(errors.AlreadyClaimed):
        case.claim(POINT_B, at(11), submission_number=1)
    for bad in (timedelta(0), timedelta(hours=9)):
        with pytest.raises(errors.InvalidInput):
            case.claim(POINT_A, at(2), submission_number=1, lease=bad)
    with pytest.raises(errors.InvalidInput):
        case.claim(POINT_A, datetime(2025, 3, 5), submission_number=1)


def test_release_and_lapse() -> None:
    case = new_case()
    with pytest.raises(errors.ClaimRequired):
        case.release(POINT_A, at(1), submission_number=1)
    assert case.lapse(at(1)) == []
    held = claimed(case, POINT_A)
    [event] = held.release(POINT_A, at(5), submission_number=1)
    assert isinstance(event, ReviewReleased) and not event.lapsed
    assert step(held, [event], at(5)).active_claim is None
    with pytest.raises(errors.AlreadyClaimed):
        held.release(POINT_B, at(5), submission_number=1)
    with pytest.raises(errors.ClaimRequired):
        held.release(POINT_B, at(40), submission_number=1)
    [late] = held.release(POINT_A, at(40), submission_number=1)
    assert isinstance(late, ReviewReleased) and late.lapsed
    assert held.lapse(at(30)) == []
    [swept] = held.lapse(at(31))
    assert isinstance(swept, ReviewReleased) and swept.lapsed
    assert step(held, [swept], at(31)).active_claim is None


def test_claims_follow_the_stage() -> None:
    province = at_province()
    assert province.active_claim is None  # the point's claim ends with its decision
    with pytest.raises(errors.Forbidden) as info:
        province.claim(POINT_A, at(3), submission_number=1)
    assert "省级复审" in info.value.message
    [event] = province.claim(SENIOR_A, at(3), submission_number=1)
    assert isinstance(event, ReviewClaimed) and event.stage is ReviewStage.PROVINCIAL
    with pytest.raises(errors.Forbidden):
        new_case().claim(SENIOR_A, at(1), submission_number=1)
    with pytest.raises(errors.NotClaimable):
        returned().claim(POINT_A, at(5), submission_number=1)
    with pytest.raises(errors.AlreadyDecided):
        decided().claim(SENIOR_A, at(5), submission_number=1)


# --- visibility, roles and freshness, for every command ------------------------------------------


def commands(case: ReviewCase, who: Reviewer, number: int = 1) -> list[object]:
    when = at(2)
    return [
        lambda: case.claim(who, when, submission_number=number),
        lambda: case.release(who, when, submission_number=number),
        lambda: case.complete_initial_review(who, when, ALL_GRANTED, submission_number=number),
        lambda: case.return_to_candidate(who, when, "原因", submission_number=number),
        lambda: case.approve(who, when, ALL_GRANTED, submission_number=number),
    ]


@pytest.mark.parametrize(
    ("who", "error"),
    [(ELSEWHERE, errors.CaseNotFound), (OPS_STAFF, errors.Forbidden)],
)
@pytest.mark.parametrize("state", ["point", "province", "returned", "decided", "withdrawn"])
def test_outsiders_learn_nothing(
    who: Reviewer, error: type[errors.ReviewError], state: str
) -> None:
    case = {
        "point": claimed(new_case(), POINT_A),
        "province": at_province(),
        "returned": returned(),
        "decided": decided(),
        "withdrawn": withdrawn(new_case()),
    }[state]
    for command in commands(case, who):
        with pytest.raises(error):
            command()  # type: ignore[operator]


def withdrawn(case: ReviewCase) -> ReviewCase:
    event = ApplicationWithdrawn(application_id=APP, candidate_id=CANDIDATE, reason="不申请了")
    return case.apply(event, at(3))


@pytest.mark.parametrize("who", [POINT_A, SENIOR_A])
def test_stale_and_withdrawn_cases_for_every_command(who: Reviewer) -> None:
    for command in commands(claimed(new_case(), POINT_A), who, number=2):
        with pytest.raises(errors.StaleSubmission) as info:
            command()  # type: ignore[operator]
        assert info.value.message == errors.StaleSubmission.default_message
    for command in commands(withdrawn(claimed(new_case(), POINT_A)), who):
        with pytest.raises(errors.StaleSubmission) as info:
            command()  # type: ignore[operator]
        assert info.value.message == "考生已撤回该申请"


def test_withdrawal_ends_the_case_in_any_state() -> None:
    for case in (new_case(), at_province(), returned(), decided()):
        after = withdrawn(case)
        assert after.status is CaseStatus.WITHDRAWN and after.active_claim is None
        assert after.acting_stage is None and after.decision_version == case.decision_version


# --- 初审 ----------------------------------------------------------------------------------------


def test_initial_review_moves_the_case_to_the_province() -> None:
    case = claimed(new_case(), POINT_A)
    [event] = case.complete_initial_review(
        POINT_A, at(2), ONE_DENIED, " 原件已核验 ", submission_number=1
    )
    assert isinstance(event, InitialReviewCompleted)
    assert event.note == "原件已核验" and event.confirmation_point_id == POINT
    assert [(d.course_code, d.outcome, d.reason) for d in event.decisions] == [
        ("00012", CourseOutcome.GRANTED, None),
        ("00018", CourseOutcome.DENIED, "证书级别或成绩未达到免考要求"),
    ]
    after = step(case, [event], at(2))
    assert after.status is CaseStatus.AWAITING_PROVINCE
    assert after.point_decisions == tuple(event.decisions)
    assert after.point_reviewer_id == POINT_A.staff_id and after.point_note == "原件已核验"
    with pytest.raises(errors.AlreadyDecided):
        after.complete_initial_review(POINT_A, at(3), ALL_GRANTED, submission_number=1)


def test_deciding_needs_the_live_claim_of_the_reviewer() -> None:
    case = new_case()
    with pytest.raises(errors.ClaimRequired):
        case.complete_initial_review(POINT_A, at(2), ALL_GRANTED, submission_number=1)
    held = claimed(case, POINT_A)
    with pytest.raises(errors.AlreadyClaimed):
        held.complete_initial_review(POINT_B, at(2), ALL_GRANTED, submission_number=1)
    with pytest.raises(errors.ClaimRequired):
        held.complete_initial_review(POINT_B, at(40), ALL_GRANTED, submission_number=1)
    with pytest.raises(errors.ClaimExpired):
        held.complete_initial_review(POINT_A, at(31), ALL_GRANTED, submission_number=1)
    with pytest.raises(errors.ClaimExpired):
        held.return_to_candidate(POINT_A, at(31), "原因", submission_number=1)
    assert held.complete_initial_review(
        POINT_A, at(30.9), ALL_GRANTED, submission_number=1, lease=DEFAULT_LEASE
    )


@pytest.mark.parametrize(
    ("verdicts", "error"),
    [
        ([Verdict("00012", "granted")], errors.DecisionIncomplete),
        ([*ALL_GRANTED, Verdict("00012", "granted")], errors.DecisionIncomplete),
        ([*ALL_GRANTED, Verdict("00015", "granted")], errors.DecisionIncomplete),
        (
            [Verdict("00012", "granted", major_code="030101K"), ALL_GRANTED[1]],
            errors.DecisionIncomplete,
        ),
        ([], errors.DecisionIncomplete),
        ([Verdict("00012", "granted"), Verdict("00018", "denied")], errors.ReasonRequired),
        ([Verdict("00012", "granted"), Verdict("00018", "denied", "  ")], errors.ReasonRequired),
        (
            [Verdict("00012", "granted"), Verdict("00018", "denied", "长" * 501)],
            errors.ReasonTooLong,
        ),
        ([Verdict("00012", "maybe"), ALL_GRANTED[1]], errors.InvalidInput),
    ],
)
@pytest.mark.parametrize("stage", ["point", "province"])
def test_decisions_cover_every_course_once_with_reasons(
    verdicts: list[Verdict], error: type[errors.ReviewError], stage: str
) -> None:
    if stage == "point":
        case = claimed(new_case(), POINT_A)
        with pytest.raises(error):
            case.complete_initial_review(POINT_A, at(2), verdicts, submission_number=1)
    else:
        case = claimed(at_province(), SENIOR_A, 3)
        with pytest.raises(error):
            case.approve(SENIOR_A, at(4), verdicts, submission_number=1)


def test_a_note_too_long_is_refused() -> None:
    case = claimed(new_case(), POINT_A)
    with pytest.raises(errors.ReasonTooLong):
        case.complete_initial_review(POINT_A, at(2), ALL_GRANTED, "长" * 501, submission_number=1)


# --- 复审 ----------------------------------------------------------------------------------------


def test_the_province_decides_finally() -> None:
    case = claimed(at_province(), SENIOR_A, 3)
    [event] = case.approve(SENIOR_A, at(4), ONE_DENIED, date(2025, 3, 12), submission_number=1)
    assert isinstance(event, ApplicationApproved)
    assert event.final and event.stage is ReviewStage.PROVINCIAL
    assert event.objection_deadline == date(2025, 3, 12)
    after = step(case, [event], at(4))
    assert after.status is CaseStatus.DECIDED and after.decided_by == SENIOR_A.staff_id
    assert after.final_decisions == tuple(event.decisions) and after.active_claim is None
    assert after.objection_deadline == date(2025, 3, 12)


def test_approval_is_refused_before_and_outside_the_province() -> None:
    with pytest.raises(errors.Forbidden):
        claimed(new_case(), POINT_A).approve(SENIOR_A, at(2), ALL_GRANTED, submission_number=1)
    with pytest.raises(errors.Forbidden):
        at_province().approve(POINT_A, at(3), ALL_GRANTED, submission_number=1)
    with pytest.raises(errors.AlreadyDecided):  # the point's 初审 is done
        at_province().complete_initial_review(POINT_A, at(3), ALL_GRANTED, submission_number=1)
    with pytest.raises(errors.InvalidInput):
        claimed(at_province(), SENIOR_A, 3).approve(
            SENIOR_A, at(4), ALL_GRANTED, date(2025, 3, 4), submission_number=1
        )


def test_a_decided_case_refuses_every_decision() -> None:
    case = decided()
    for who in (SENIOR_A, SENIOR_B, POINT_A):
        for command in commands(case, who)[2:]:
            with pytest.raises(errors.AlreadyDecided):
                command()  # type: ignore[operator]
        with pytest.raises(errors.ClaimRequired):
            case.release(who, at(5), submission_number=1)


def test_two_concurrent_decisions_one_wins() -> None:
    """Both seniors load the case; A holds it; B's decision conflicts, and after A's wins it
    is AlreadyDecided; the append itself is guarded by `decision_version`."""
    case = claimed(at_province(), SENIOR_A, 3)
    with pytest.raises(errors.AlreadyClaimed):
        case.approve(SENIOR_B, at(4), ALL_GRANTED, submission_number=1)
    won = step(case, case.approve(SENIOR_A, at(4), ALL_GRANTED, submission_number=1), at(4))
    assert won.decision_version == case.decision_version + 1
    with pytest.raises(errors.AlreadyDecided):
        won.approve(SENIOR_B, at(5), ALL_GRANTED, submission_number=1)
    with pytest.raises(errors.AlreadyDecided):
        won.return_to_candidate(SENIOR_A, at(5), "原因", submission_number=1)


# --- 退回 and resubmission -----------------------------------------------------------------------


@pytest.mark.parametrize("by_province", [False, True])
def test_either_stage_returns_with_a_reason(by_province: bool) -> None:
    case = returned(by_province)
    assert case.status is CaseStatus.RETURNED and case.active_claim is None
    assert case.last_return is not None
    assert case.last_return.reason == "证书照片不清晰，请重新上传"
    expected = ReviewStage.PROVINCIAL if by_province else ReviewStage.CONFIRMATION_POINT
    assert case.last_return.stage is expected
    who = SENIOR_A if by_province else POINT_A
    for command in commands(case, who)[2:]:
        with pytest.raises(errors.AlreadyDecided):
            command()  # type: ignore[operator]


def test_return_reasons_and_course_notes() -> None:
    case = claimed(new_case(), POINT_A)
    with pytest.raises(errors.ReasonRequired):
        case.return_to_candidate(POINT_A, at(2), " ", submission_number=1)
    with pytest.raises(errors.ReasonTooLong):
        case.return_to_candidate(POINT_A, at(2), "长" * 501, submission_number=1)
    with pytest.raises(errors.InvalidInput):
        case.return_to_candidate(POINT_A, at(2), "原因", {"00015": "无"}, submission_number=1)
    with pytest.raises(errors.ReasonRequired):
        case.return_to_candidate(POINT_A, at(2), "原因", {"00012": ""}, submission_number=1)
    with pytest.raises(errors.ClaimRequired):
        new_case().return_to_candidate(POINT_A, at(2), "原因", submission_number=1)
    [event] = case.return_to_candidate(
        POINT_A,
        at(2),
        "成绩单未加盖学校公章",
        {"00018": "成绩单未勾选对应课程"},
        submission_number=1,
    )
    assert isinstance(event, ApplicationReturned)
    assert [(n.course_code, n.note) for n in event.course_notes] == [
        ("00018", "成绩单未勾选对应课程")
    ]


def test_a_resubmission_starts_a_new_round_and_shows_what_changed() -> None:
    case = returned(by_province=True)
    new_photo = uuid.uuid4()
    added = uuid.uuid4()
    certs = [
        certificate(CET, ["00012"], photo=new_photo),  # photo replaced
        certificate(added, ["00015"]),  # NCRE removed, a new certificate added
    ]
    again = case.apply(snapshot(2, certs), at(60))
    assert again.status is CaseStatus.AWAITING_POINT and again.submission_number == 2
    assert again.point_decisions == () and again.active_claim is None
    assert [r.submission_number for r in again.rounds] == [1, 2]
    assert [r.submission_number for r in again.earlier_rounds] == [1]
    assert again.earlier_rounds[0].courses[1].course_code == "00018"
    changes = again.changes_since_last_return()
    assert changes is not None and not changes.unchanged
    assert (changes.from_submission, changes.to_submission) == (1, 2)
    assert [c.course_code for c in changes.added_courses] == ["00015"]
    assert [c.course_code for c in changes.removed_courses] == ["00018"]
    assert [c.certificate_id for c in changes.added_certificates] == [added]
    assert [c.certificate_id for c in changes.removed_certificates] == [NCRE]
    assert [c.certificate_id for c in changes.changed_certificates] == [CET]
    with pytest.raises(errors.StaleSubmission):
        again.claim(POINT_A, at(61), submission_number=1)
    assert again.claim(POINT_A, at(61), submission_number=2)
    same = returned().apply(snapshot(2), at(60)).changes_since_last_return()
    assert same is not None and same.unchanged
    with pytest.raises(ValueError, match="advance"):
        returned().apply(snapshot(2).model_copy(update={"submission_number": 1}), at(60))


def test_every_action_is_in_the_timeline_with_actor_and_time() -> None:
    case = decided()
    assert [(e.event_type, e.actor_id) for e in case.timeline] == [
        ("ApplicationSubmitted", CANDIDATE),
        ("ReviewClaimed", POINT_A.staff_id),
        ("InitialReviewCompleted", POINT_A.staff_id),
        ("ReviewClaimed", SENIOR_A.staff_id),
        ("ApplicationApproved", SENIOR_A.staff_id),
    ]
    assert [e.at for e in case.timeline] == [T0, at(1), at(2), at(3), at(4)]
    assert (case.version, case.decision_version) == (5, 4)


# --- properties ---------------------------------------------------------------------------------

STAFF = [POINT_A, POINT_B, SENIOR_A, SENIOR_B, ELSEWHERE, OPS_STAFF]
ACTIONS = ["claim", "release", "lapse", "initial", "return", "approve", "resubmit", "withdraw"]
VERDICTS = [ALL_GRANTED, ONE_DENIED, [Verdict("00012", "granted")]]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(ACTIONS),
            st.sampled_from(STAFF),
            st.integers(min_value=0, max_value=40),
            st.sampled_from(VERDICTS),
            st.booleans(),
        ),
        max_size=30,
    )
)
def test_random_command_sequences_keep_the_invariants(
    steps: list[tuple[str, Reviewer, int, list[Verdict], bool]],
) -> None:
    recorded: list[Recorded] = [(snapshot(), T0)]
    case = ReviewCase.from_events(recorded)
    now = T0
    for action, who, minutes, verdicts, stale in steps:
        now += timedelta(minutes=minutes)
        number = case.submission_number + (1 if stale else 0) if action != "lapse" else 0
        before = case
        try:
            if action == "claim":
                events = case.claim(who, now, submission_number=number)
            elif action == "release":
                events = case.release(who, now, submission_number=number)
            elif action == "lapse":
                events = case.lapse(now)
            elif action == "initial":
                events = case.complete_initial_review(who, now, verdicts, submission_number=number)
            elif action == "return":
                events = case.return_to_candidate(who, now, "原因", submission_number=number)
            elif action == "approve":
                events = case.approve(who, now, verdicts, submission_number=number)
            elif action == "resubmit":
                if case.status is not CaseStatus.RETURNED:
                    continue
                events = [snapshot(case.submission_number + 1)]
            else:
                if case.status in (CaseStatus.DECIDED, CaseStatus.WITHDRAWN):
                    continue  # the application service refuses these
                events = [ApplicationWithdrawn(application_id=APP, candidate_id=CANDIDATE)]
        except errors.ReviewError:
            continue
        assert not stale or action in ("lapse", "resubmit", "withdraw")
        for event in events:
            if isinstance(
                event, InitialReviewCompleted | ApplicationReturned | ApplicationApproved
            ):
                # decisions only by the holder of a live claim
                assert before.holder(now) == event.reviewer_id == who.staff_id
            if isinstance(event, ReviewClaimed):
                # at most one live claim: nobody else held a live one
                assert before.holder(now) in (None, who.staff_id)
        if before.status is CaseStatus.DECIDED:
            raise AssertionError("a decided case emitted events")
        recorded.extend((event, now) for event in events)
        case = case.apply_all((event, now) for event in events)
        assert ReviewCase.from_events(recorded) == case
        assert case.version == len(recorded)
        assert case.active_claim is None or case.acting_stage is case.active_claim.stage
        if case.status is not CaseStatus.DECIDED:
            assert case.final_decisions == ()
