"""The review case (审核办件): one application under two-tier review, as decide/evolve.

The case is folded from the application's submission events (ApplicationSubmitted /
ApplicationResubmitted carry the whole snapshot, ApplicationWithdrawn ends it) and the review
events this service records. Contract events carry no time, so the fold takes each event with the
time it occurred (the envelope's `occurred_at`): `ReviewCase.from_events([(event, at), ...])`.

Every command validates the reviewer, the submission they looked at and the state, and either
raises a `ReviewError` or returns the new events (a list). Nothing is applied by a command: the
caller appends the events with the case's `decision_version` as the expected version (two
concurrent decisions: one append wins, the other gets a concurrency conflict, reloads and sees
`AlreadyDecided`) and folds them with `apply`.

Claims are leases: a ReviewClaimed at time t is live until t + lease. The lease length is a policy
of the service, passed to the commands that judge it (`lease=`), so the fold needs no policy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from enum import StrEnum

from contracts.application import (
    ApplicationCertificate,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    ClaimedCourse,
)
from contracts.base import ContractEvent, CourseDecision, CourseOutcome, ReviewStage
from contracts.review import (
    DECISION_STREAM,
    ApplicationApproved,
    ApplicationReturned,
    CourseNote,
    InitialReviewCompleted,
    ReviewClaimed,
    ReviewReleased,
)
from eventkit.text import clean_text, has_control_characters
from review_service.domain import errors
from review_service.domain.access import Reviewer, may_act, may_view

DEFAULT_LEASE = timedelta(minutes=30)
MAX_LEASE = timedelta(hours=8)
MAX_REASON = 500

Recorded = tuple[ContractEvent, datetime]  # an event and when it occurred


class CaseStatus(StrEnum):
    """Where the case stands."""

    AWAITING_POINT = "awaiting_point"  # 待确认点初审
    AWAITING_PROVINCE = "awaiting_province"  # 待省级复审
    DECIDED = "decided"  # 已出结果 (final)
    RETURNED = "returned"  # 已退回考生, until a resubmission
    WITHDRAWN = "withdrawn"  # 考生已撤回

    @property
    def label(self) -> str:
        """The Chinese label."""
        return {
            "awaiting_point": "待确认点初审",
            "awaiting_province": "待省级复审",
            "decided": "已出结果",
            "returned": "已退回",
            "withdrawn": "已撤回",
        }[self.value]


ACTING_STAGE: Mapping[CaseStatus, ReviewStage] = {
    CaseStatus.AWAITING_POINT: ReviewStage.CONFIRMATION_POINT,
    CaseStatus.AWAITING_PROVINCE: ReviewStage.PROVINCIAL,
}
STAGE_LABEL: Mapping[ReviewStage, str] = {
    ReviewStage.CONFIRMATION_POINT: "确认点初审",
    ReviewStage.PROVINCIAL: "省级复审",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """A reviewer's input for one course: 同意免考 (granted) or 不同意 (denied, with a reason).

    `major_code` may be left out: a course is claimed once per application, so its code names it.
    """

    course_code: str
    outcome: CourseOutcome | str
    reason: str | None = None
    major_code: str | None = None


@dataclass(frozen=True, slots=True)
class Round:
    """One submission's snapshot, as the reviewers judged it."""

    submission_number: int
    certificates: tuple[ApplicationCertificate, ...]
    submitted_at: datetime

    @property
    def courses(self) -> tuple[ClaimedCourse, ...]:
        """Every claimed course, in the order claimed."""
        return tuple(course for c in self.certificates for course in c.courses)


@dataclass(frozen=True, slots=True)
class Claim:
    """A reviewer's lease on the case at one stage; live until `expires_at(lease)`."""

    holder_id: uuid.UUID
    stage: ReviewStage
    submission_number: int
    claimed_at: datetime

    def expires_at(self, lease: timedelta = DEFAULT_LEASE) -> datetime:
        """When the lease runs out."""
        return self.claimed_at + lease

    def live(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> bool:
        """Still held at `now`."""
        return now < self.expires_at(lease)


@dataclass(frozen=True, slots=True)
class ReturnInfo:
    """The last return to the candidate."""

    stage: ReviewStage
    reviewer_id: uuid.UUID
    reason: str
    course_notes: tuple[CourseNote, ...]
    submission_number: int
    returned_at: datetime


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """办件进度: one thing that happened to the case, by whom and when."""

    at: datetime
    event_type: str
    actor_id: uuid.UUID  # the candidate for application events, the reviewer for review events
    submission_number: int
    stage: ReviewStage | None = None


@dataclass(frozen=True, slots=True)
class RoundChanges:
    """What changed between two submissions (the returned one and its resubmission)."""

    from_submission: int
    to_submission: int
    added_courses: tuple[ClaimedCourse, ...]
    removed_courses: tuple[ClaimedCourse, ...]
    added_certificates: tuple[ApplicationCertificate, ...]
    removed_certificates: tuple[ApplicationCertificate, ...]
    changed_certificates: tuple[ApplicationCertificate, ...]  # same id, new content (photos…)

    @property
    def unchanged(self) -> bool:
        """Nothing was changed at all."""
        return not (
            self.added_courses
            or self.removed_courses
            or self.added_certificates
            or self.removed_certificates
            or self.changed_certificates
        )


# --- input helpers ------------------------------------------------------------------------------


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise errors.InvalidInput("now must be timezone-aware")


def _require_lease(lease: timedelta) -> None:
    if not timedelta(0) < lease <= MAX_LEASE:
        raise errors.InvalidInput(f"lease {lease} outside (0, {MAX_LEASE}]")


def _text(value: str | None, *, required: bool, what: str) -> str | None:
    if value is not None and has_control_characters(value):
        raise errors.InvalidInput(f"{what} contains a control character")
    text = clean_text(value)  # blank also when only zero-width characters or a BOM
    if not text:
        if required:
            raise errors.ReasonRequired(f"{what} is required")
        return None
    if len(text) > MAX_REASON:
        raise errors.ReasonTooLong(f"{what} longer than {MAX_REASON} characters")
    return text


def _outcome(value: CourseOutcome | str) -> CourseOutcome:
    try:
        return CourseOutcome(value)
    except ValueError:
        raise errors.InvalidInput(f"outcome {value!r} unknown") from None


# --- the aggregate ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReviewCase:
    """The state of one application under review, folded from its events."""

    application_id: uuid.UUID
    case_number: str
    candidate_id: uuid.UUID
    confirmation_point_id: str
    window_id: uuid.UUID
    submission_number: int
    certificates: tuple[ApplicationCertificate, ...]
    status: CaseStatus = CaseStatus.AWAITING_POINT
    active_claim: Claim | None = None
    point_decisions: tuple[CourseDecision, ...] = ()
    point_note: str | None = None
    point_reviewer_id: uuid.UUID | None = None
    final_decisions: tuple[CourseDecision, ...] = ()
    objection_deadline: date | None = None
    decided_by: uuid.UUID | None = None
    last_return: ReturnInfo | None = None
    rounds: tuple[Round, ...] = ()  # every submission's snapshot, oldest first; the last is current
    timeline: tuple[TimelineEntry, ...] = ()
    version: int = 1  # events folded, of both streams
    decision_version: int = 0  # events of the review.decision stream: the append's expectation

    # --- folding ----------------------------------------------------------------------------

    @classmethod
    def from_events(cls, recorded: Iterable[Recorded]) -> ReviewCase:
        """Fold a case; it starts with a submission snapshot."""
        iterator = iter(recorded)
        first = next(iterator, None)
        if first is None or not isinstance(first[0], ApplicationSubmitted | ApplicationResubmitted):
            raise ValueError("a review case starts with a submission snapshot")
        state = cls.started(first[0], first[1])
        for event, at in iterator:
            state = state.apply(event, at)
        return state

    @classmethod
    def started(
        cls, event: ApplicationSubmitted | ApplicationResubmitted, at: datetime
    ) -> ReviewCase:
        """The case a submission opens."""
        _check_time(at)
        snapshot = Round(event.submission_number, tuple(event.certificates), at)
        return cls(
            application_id=event.application_id,
            case_number=event.case_number,
            candidate_id=event.candidate_id,
            confirmation_point_id=event.confirmation_point_id,
            window_id=event.window_id,
            submission_number=event.submission_number,
            certificates=snapshot.certificates,
            rounds=(snapshot,),
            timeline=(
                TimelineEntry(at, event.event_type, event.candidate_id, event.submission_number),
            ),
        )

    def apply(self, event: ContractEvent, at: datetime) -> ReviewCase:
        """The state after `event`, which occurred at `at` (evolve)."""
        _check_time(at)
        if getattr(event, "application_id", None) != self.application_id:
            raise ValueError("event of another application")
        if isinstance(event, ApplicationSubmitted):
            raise ValueError("an application is submitted once; later rounds are resubmissions")
        if isinstance(event, ApplicationResubmitted):
            return self._resubmitted(event, at)
        if isinstance(event, ApplicationWithdrawn):
            # The application service is the authority on withdrawal: whatever review did
            # meanwhile, a withdrawn application is not worked on.
            return self._moved(
                event, at, self.candidate_id, None, status=CaseStatus.WITHDRAWN, active_claim=None
            )
        if event.stream_type != DECISION_STREAM.stream_type:
            raise ValueError(f"not a review event: {type(event).__name__}")
        if getattr(event, "submission_number", None) != self.submission_number:
            raise ValueError("review event of another submission")
        if isinstance(event, ReviewClaimed):
            return self._claimed(event, at)
        if isinstance(event, ReviewReleased):
            if self.active_claim is None or self.active_claim.holder_id != event.reviewer_id:
                raise ValueError("release of a claim not held")
            return self._moved(event, at, event.reviewer_id, event.stage, active_claim=None)
        if isinstance(event, InitialReviewCompleted):
            self._expect(CaseStatus.AWAITING_POINT, event)
            return self._moved(
                event,
                at,
                event.reviewer_id,
                ReviewStage.CONFIRMATION_POINT,
                status=CaseStatus.AWAITING_PROVINCE,
                active_claim=None,
                point_decisions=tuple(event.decisions),
                point_note=event.note,
                point_reviewer_id=event.reviewer_id,
            )
        if isinstance(event, ApplicationReturned):
            if self.acting_stage is not event.stage:
                raise ValueError(f"return at {event.stage} while {self.status}")
            info = ReturnInfo(
                event.stage,
                event.reviewer_id,
                event.reason,
                tuple(event.course_notes),
                event.submission_number,
                at,
            )
            return self._moved(
                event,
                at,
                event.reviewer_id,
                event.stage,
                status=CaseStatus.RETURNED,
                active_claim=None,
                last_return=info,
            )
        if isinstance(event, ApplicationApproved):
            if not event.final or event.stage is not ReviewStage.PROVINCIAL:
                raise ValueError("review records 初审 as InitialReviewCompleted; approval is final")
            self._expect(CaseStatus.AWAITING_PROVINCE, event)
            return self._moved(
                event,
                at,
                event.reviewer_id,
                ReviewStage.PROVINCIAL,
                status=CaseStatus.DECIDED,
                active_claim=None,
                final_decisions=tuple(event.decisions),
                objection_deadline=event.objection_deadline,
                decided_by=event.reviewer_id,
            )
        raise ValueError(f"not a review case event: {type(event).__name__}")

    def apply_all(self, recorded: Iterable[Recorded]) -> ReviewCase:
        """The state after every event of `recorded`, in order."""
        state = self
        for event, at in recorded:
            state = state.apply(event, at)
        return state

    def _resubmitted(self, event: ApplicationResubmitted, at: datetime) -> ReviewCase:
        if self.status is not CaseStatus.RETURNED:
            raise ValueError(f"resubmission while {self.status}")
        if event.submission_number <= self.submission_number:
            raise ValueError("resubmission does not advance the submission number")
        snapshot = Round(event.submission_number, tuple(event.certificates), at)
        return replace(
            self,
            submission_number=event.submission_number,
            certificates=snapshot.certificates,
            confirmation_point_id=event.confirmation_point_id,
            status=CaseStatus.AWAITING_POINT,
            active_claim=None,
            point_decisions=(),
            point_note=None,
            point_reviewer_id=None,
            rounds=(*self.rounds, snapshot),
            timeline=(
                *self.timeline,
                TimelineEntry(at, event.event_type, event.candidate_id, event.submission_number),
            ),
            version=self.version + 1,
        )

    def _claimed(self, event: ReviewClaimed, at: datetime) -> ReviewCase:
        if self.acting_stage is not event.stage:
            raise ValueError(f"claim at {event.stage} while {self.status}")
        if self.active_claim is not None and self.active_claim.holder_id != event.reviewer_id:
            raise ValueError("a claim is taken over only after the old one is released")
        claim = Claim(event.reviewer_id, event.stage, event.submission_number, at)
        return self._moved(event, at, event.reviewer_id, event.stage, active_claim=claim)

    def _expect(self, status: CaseStatus, event: ContractEvent) -> None:
        if self.status is not status:
            raise ValueError(f"{event.event_type} while {self.status}")

    def _moved(
        self,
        event: ContractEvent,
        at: datetime,
        actor_id: uuid.UUID,
        stage: ReviewStage | None,
        **changes: object,
    ) -> ReviewCase:
        review = event.stream_type == DECISION_STREAM.stream_type
        entry = TimelineEntry(at, event.event_type, actor_id, self.submission_number, stage)
        return replace(
            self,
            timeline=(*self.timeline, entry),
            version=self.version + 1,
            decision_version=self.decision_version + (1 if review else 0),
            **changes,  # type: ignore[arg-type]
        )

    # --- queries ----------------------------------------------------------------------------

    @property
    def acting_stage(self) -> ReviewStage | None:
        """The stage that acts on the case now; None when none does."""
        return ACTING_STAGE.get(self.status)

    @property
    def courses(self) -> tuple[ClaimedCourse, ...]:
        """Every claimed course of the current submission, in the order claimed."""
        return tuple(course for c in self.certificates for course in c.courses)

    @property
    def earlier_rounds(self) -> tuple[Round, ...]:
        """The snapshots of the submissions before the current one."""
        return self.rounds[:-1]

    def holder(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> uuid.UUID | None:
        """Who holds a live claim at `now`, if anyone."""
        if self.active_claim is not None and self.active_claim.live(now, lease):
            return self.active_claim.holder_id
        return None

    def changes_since_last_return(self) -> RoundChanges | None:
        """What the candidate changed between the last two submissions; None before any
        resubmission."""
        if len(self.rounds) < 2:
            return None
        before, after = self.rounds[-2], self.rounds[-1]
        old_courses = {(c.course_code, c.major_code): c for c in before.courses}
        new_courses = {(c.course_code, c.major_code): c for c in after.courses}
        old_certs = {c.certificate_id: c for c in before.certificates}
        new_certs = {c.certificate_id: c for c in after.certificates}
        return RoundChanges(
            from_submission=before.submission_number,
            to_submission=after.submission_number,
            added_courses=tuple(c for k, c in new_courses.items() if k not in old_courses),
            removed_courses=tuple(c for k, c in old_courses.items() if k not in new_courses),
            added_certificates=tuple(c for k, c in new_certs.items() if k not in old_certs),
            removed_certificates=tuple(c for k, c in old_certs.items() if k not in new_certs),
            changed_certificates=tuple(
                c for k, c in new_certs.items() if k in old_certs and old_certs[k] != c
            ),
        )

    # --- commands ---------------------------------------------------------------------------

    def claim(
        self,
        reviewer: Reviewer,
        now: datetime,
        *,
        submission_number: int,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[ContractEvent]:
        """领取: take the case at its stage; the holder renews; a lapsed claim is taken over."""
        _require_aware(now)
        _require_lease(lease)
        self._check_reviewer(reviewer, submission_number)
        if self.status is CaseStatus.RETURNED:
            raise errors.NotClaimable(f"case returned at submission {self.submission_number}")
        if self.status is CaseStatus.DECIDED:
            raise errors.AlreadyDecided("case decided", "该申请已有审核结果，不能再领取")
        stage = self._check_may_act(reviewer)
        events: list[ContractEvent] = []
        current = self.active_claim
        if current is not None:
            if current.live(now, lease):
                if current.holder_id != reviewer.staff_id:
                    raise errors.AlreadyClaimed(current.holder_id, current.expires_at(lease))
            else:
                events.append(self._released(current.holder_id, stage, lapsed=True))
        events.append(
            ReviewClaimed(
                application_id=self.application_id,
                case_number=self.case_number,
                submission_number=self.submission_number,
                stage=stage,
                confirmation_point_id=self.confirmation_point_id,
                reviewer_id=reviewer.staff_id,
            )
        )
        return events

    def release(
        self,
        reviewer: Reviewer,
        now: datetime,
        *,
        submission_number: int,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[ContractEvent]:
        """释放: the holder gives the case back to the queue (recorded as lapsed if it had)."""
        _require_aware(now)
        _require_lease(lease)
        self._check_reviewer(reviewer, submission_number)
        current = self.active_claim
        if current is None:
            raise errors.ClaimRequired("no claim to release", "您未领取该申请")
        if current.holder_id != reviewer.staff_id:
            if current.live(now, lease):
                raise errors.AlreadyClaimed(current.holder_id, current.expires_at(lease))
            raise errors.ClaimRequired("the claim is someone else's", "您未领取该申请")
        lapsed = not current.live(now, lease)
        return [self._released(current.holder_id, current.stage, lapsed=lapsed)]

    def lapse(self, now: datetime, lease: timedelta = DEFAULT_LEASE) -> list[ContractEvent]:
        """For a sweeper: record an expired claim as lapsed; nothing when none has expired."""
        _require_aware(now)
        _require_lease(lease)
        current = self.active_claim
        if current is None or current.live(now, lease):
            return []
        return [self._released(current.holder_id, current.stage, lapsed=True)]

    def complete_initial_review(
        self,
        reviewer: Reviewer,
        now: datetime,
        decisions: Sequence[Verdict],
        note: str | None = None,
        *,
        submission_number: int,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[ContractEvent]:
        """初审完成: the point's opinion on every course goes to the province."""
        _require_aware(now)
        _require_lease(lease)
        self._check_reviewer(reviewer, submission_number)
        self._check_open()
        if self.status is CaseStatus.AWAITING_PROVINCE:
            raise errors.AlreadyDecided("initial review already completed", "该申请初审已完成")
        self._check_may_act(reviewer)
        self._check_holder(reviewer, now, lease)
        built = self._decisions(decisions)
        return [
            InitialReviewCompleted(
                application_id=self.application_id,
                case_number=self.case_number,
                submission_number=self.submission_number,
                confirmation_point_id=self.confirmation_point_id,
                reviewer_id=reviewer.staff_id,
                decisions=built,
                note=_text(note, required=False, what="note"),
            )
        ]

    def return_to_candidate(
        self,
        reviewer: Reviewer,
        now: datetime,
        reason: str,
        course_notes: Mapping[str, str] | None = None,
        *,
        submission_number: int,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[ContractEvent]:
        """退回: either stage returns the whole application with a reason (and course notes)."""
        _require_aware(now)
        _require_lease(lease)
        self._check_reviewer(reviewer, submission_number)
        self._check_open()
        stage = self._check_may_act(reviewer)
        self._check_holder(reviewer, now, lease)
        text = _text(reason, required=True, what="return reason")
        assert text is not None
        claimed = {c.course_code for c in self.courses}
        notes: list[CourseNote] = []
        for course_code, note in (course_notes or {}).items():
            if course_code not in claimed:
                raise errors.InvalidInput(
                    f"course {course_code} not claimed", "备注的课程不在本申请之内"
                )
            note_text = _text(note, required=True, what=f"note on {course_code}")
            assert note_text is not None
            notes.append(CourseNote(course_code=course_code, note=note_text))
        return [
            ApplicationReturned(
                application_id=self.application_id,
                case_number=self.case_number,
                submission_number=self.submission_number,
                stage=stage,
                reviewer_id=reviewer.staff_id,
                reason=text,
                course_notes=notes,
            )
        ]

    def approve(
        self,
        reviewer: Reviewer,
        now: datetime,
        decisions: Sequence[Verdict],
        objection_deadline: date | None = None,
        *,
        submission_number: int,
        lease: timedelta = DEFAULT_LEASE,
    ) -> list[ContractEvent]:
        """复审结论: the province decides every course; final."""
        _require_aware(now)
        _require_lease(lease)
        self._check_reviewer(reviewer, submission_number)
        self._check_open()
        if self.status is CaseStatus.AWAITING_POINT:
            raise errors.Forbidden(
                "initial review not completed", "该申请尚未完成确认点初审，暂不能复审"
            )
        self._check_may_act(reviewer)
        self._check_holder(reviewer, now, lease)
        if objection_deadline is not None and objection_deadline < now.date():
            raise errors.InvalidInput(
                f"objection deadline {objection_deadline} in the past", "核查截止日期不能早于今天"
            )
        built = self._decisions(decisions)
        return [
            ApplicationApproved(
                application_id=self.application_id,
                case_number=self.case_number,
                submission_number=self.submission_number,
                stage=ReviewStage.PROVINCIAL,
                reviewer_id=reviewer.staff_id,
                decisions=built,
                final=True,
                objection_deadline=objection_deadline,
            )
        ]

    # --- checks -----------------------------------------------------------------------------

    def _check_reviewer(self, reviewer: Reviewer, submission_number: int) -> None:
        """Role, visibility (404, never revealing another point's case), then freshness."""
        if not reviewer.reviews:
            raise errors.Forbidden(f"roles {sorted(reviewer.roles)} do not review")
        if not may_view(reviewer, self):
            raise errors.CaseNotFound(f"case {self.application_id} not visible to reviewer")
        if self.status is CaseStatus.WITHDRAWN:
            raise errors.StaleSubmission("application withdrawn", "考生已撤回该申请")
        if submission_number != self.submission_number:
            raise errors.StaleSubmission(
                f"submission {submission_number} is not the current {self.submission_number}"
            )

    def _check_open(self) -> None:
        if self.status is CaseStatus.DECIDED:
            raise errors.AlreadyDecided("case decided", "该申请已有审核结果，不能再修改")
        if self.status is CaseStatus.RETURNED:
            raise errors.AlreadyDecided("case returned", "该申请已退回考生，等待重新申请")

    def _check_may_act(self, reviewer: Reviewer) -> ReviewStage:
        stage = self.acting_stage
        assert stage is not None  # callers refused the other states
        if not may_act(reviewer, self):
            raise errors.Forbidden(
                f"reviewer may not act at {stage}",
                f"该申请当前处于{STAGE_LABEL[stage]}阶段，您无权办理",
            )
        return stage

    def _check_holder(self, reviewer: Reviewer, now: datetime, lease: timedelta) -> None:
        current = self.active_claim
        if current is None:
            raise errors.ClaimRequired("no claim")
        live = current.live(now, lease)
        if current.holder_id != reviewer.staff_id:
            if live:
                raise errors.AlreadyClaimed(current.holder_id, current.expires_at(lease))
            raise errors.ClaimRequired("the lapsed claim is someone else's")
        if not live:
            raise errors.ClaimExpired(f"claim expired at {current.expires_at(lease).isoformat()}")

    def _decisions(self, verdicts: Sequence[Verdict]) -> list[CourseDecision]:
        """One decision per claimed course, in the order claimed; denied ones with a reason."""
        claimed = {c.course_code: c for c in self.courses}
        given: dict[str, Verdict] = {}
        for verdict in verdicts:
            course = claimed.get(verdict.course_code)
            if course is None:
                raise errors.DecisionIncomplete(f"course {verdict.course_code} not claimed")
            if verdict.course_code in given:
                raise errors.DecisionIncomplete(f"course {verdict.course_code} decided twice")
            if verdict.major_code is not None and verdict.major_code != course.major_code:
                raise errors.DecisionIncomplete(
                    f"course {verdict.course_code} claimed under {course.major_code}"
                )
            given[verdict.course_code] = verdict
        missing = [code for code in claimed if code not in given]
        if missing:
            raise errors.DecisionIncomplete(f"courses {missing} undecided")
        built: list[CourseDecision] = []
        for code, course in claimed.items():
            verdict = given[code]
            outcome = _outcome(verdict.outcome)
            reason = _text(
                verdict.reason,
                required=outcome is CourseOutcome.DENIED,
                what=f"reason for denying {code}",
            )
            built.append(
                CourseDecision(
                    course_code=code, major_code=course.major_code, outcome=outcome, reason=reason
                )
            )
        return built

    def _released(
        self, holder_id: uuid.UUID, stage: ReviewStage, *, lapsed: bool
    ) -> ReviewReleased:
        return ReviewReleased(
            application_id=self.application_id,
            case_number=self.case_number,
            submission_number=self.submission_number,
            stage=stage,
            reviewer_id=holder_id,
            lapsed=lapsed,
        )


def _check_time(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("event times are timezone-aware")


__all__ = [
    "ACTING_STAGE",
    "DEFAULT_LEASE",
    "MAX_LEASE",
    "MAX_REASON",
    "CaseStatus",
    "Claim",
    "Recorded",
    "ReturnInfo",
    "ReviewCase",
    "Round",
    "RoundChanges",
    "TimelineEntry",
    "Verdict",
]
