"""The ExemptionApplication aggregate (免考申请), as decide/evolve on the contract events.

`ExemptionApplication.from_events` folds a stream; every command validates its inputs against
the state, the catalogue version the application was drafted with and the evidence, and either
raises an `ApplicationError` or returns the new events (a list, empty for a no-op). Nothing is
applied by a command: the caller appends the events and folds them with `apply`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import NoReturn

from pydantic import ValidationError

from application_service.domain import errors, rules
from application_service.domain.catalogue import Catalogue, Plan
from application_service.domain.evidence import CandidateFacts, Evidence, VerifiedDegreeFacts
from application_service.domain.windows import ApplicationWindow
from contracts.application import (
    MAX_CERTIFICATES,
    ApplicationCertificate,
    ApplicationDecided,
    ApplicationDrafted,
    ApplicationResubmitted,
    ApplicationReturnedToCandidate,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CertificateAdded,
    CertificateRemoved,
    ClaimedCourse,
    DegreeSummary,
)
from contracts.base import CertificateKind, ContractEvent, CourseDecision, ReviewStage, StudyPlan
from contracts.credential import DegreeLevel
from eventkit.text import clean_text, has_control_characters

CASE_NUMBER = re.compile(r"^MK\d{10}$")
MAX_REASON = 500

ApplicationEvent = (
    ApplicationDrafted
    | CertificateAdded
    | CertificateRemoved
    | ApplicationSubmitted
    | ApplicationResubmitted
    | ApplicationWithdrawn
    | ApplicationReturnedToCandidate
    | ApplicationDecided
)


class ApplicationStatus(StrEnum):
    """The application's state; a resubmitted application is `submitted` again."""

    DRAFT = "draft"  # 草稿
    SUBMITTED = "submitted"  # 审核中
    RETURNED = "returned"  # 被退回
    DECIDED = "decided"  # 已出结果
    WITHDRAWN = "withdrawn"  # 已撤回

    @property
    def label(self) -> str:
        """The Chinese label."""
        return {
            "draft": "草稿",
            "submitted": "审核中",
            "returned": "被退回",
            "decided": "已出结果",
            "withdrawn": "已撤回",
        }[self.value]


OPEN_STATUSES = frozenset(
    {ApplicationStatus.DRAFT, ApplicationStatus.SUBMITTED, ApplicationStatus.RETURNED}
)
EDITABLE_STATUSES = frozenset({ApplicationStatus.DRAFT, ApplicationStatus.RETURNED})


@dataclass(frozen=True, slots=True)
class CourseClaim:
    """One course the candidate ticks for a certificate: under which major, from which line."""

    course_code: str
    major_code: str
    source_course_name: str | None = None  # degree route: the transcript course ticked (√)


@dataclass(frozen=True, slots=True)
class CertificateInput:
    """What the wizard sends for one certificate (step 2)."""

    certificate_id: uuid.UUID
    kind: CertificateKind
    route_id: str
    courses: Sequence[CourseClaim]
    photo_ids: Sequence[uuid.UUID]
    degree_ref: uuid.UUID | None = None
    certificate_check_ref: uuid.UUID | None = None

    @classmethod
    def of(cls, certificate: ApplicationCertificate) -> CertificateInput:
        """The input that added `certificate`, to validate it again."""
        return cls(
            certificate_id=certificate.certificate_id,
            kind=certificate.kind,
            route_id=certificate.route_id,
            courses=[
                CourseClaim(c.course_code, c.major_code, c.source_course_name)
                for c in certificate.courses
            ],
            photo_ids=list(certificate.photo_ids),
            degree_ref=certificate.degree.degree_ref if certificate.degree else None,
            certificate_check_ref=certificate.certificate_check_ref,
        )


@dataclass(frozen=True, slots=True)
class ReturnInfo:
    """The last return: by which stage, why, and which submission."""

    stage: ReviewStage
    reason: str
    submission_number: int


def _reason(reason: str | None, *, required: bool) -> str | None:
    if reason is not None and has_control_characters(reason):
        raise errors.InvalidInput("a reason contains a control character", "原因包含不允许的字符")
    text = clean_text(reason)  # blank also when only zero-width characters or a BOM
    if not text:
        if required:
            raise errors.InvalidInput("a reason is required", "请填写原因")
        return None
    if len(text) > MAX_REASON:
        raise errors.InvalidInput(f"reason longer than {MAX_REASON}", "原因不能超过500字")
    return text


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise errors.InvalidInput("now must be timezone-aware")


def _window_for(window: ApplicationWindow, window_id: uuid.UUID) -> None:
    if window.window_id != window_id:
        raise errors.WrongWindow(f"window {window.window_id} is not {window_id}")


@dataclass(frozen=True, slots=True)
class ExemptionApplication:
    """The state of one application, folded from its events."""

    application_id: uuid.UUID
    candidate_id: uuid.UUID
    window_id: uuid.UUID
    confirmation_point_id: str
    plan: StudyPlan
    major_codes: tuple[str, ...]
    catalogue_version: str
    status: ApplicationStatus = ApplicationStatus.DRAFT
    certificates: tuple[ApplicationCertificate, ...] = ()
    case_number: str | None = None
    submission_number: int = 0
    last_return: ReturnInfo | None = None
    decisions: tuple[CourseDecision, ...] = ()
    objection_deadline: date | None = None
    withdrawn_reason: str | None = None
    version: int = field(default=1, compare=False)

    # --- folding ----------------------------------------------------------------------------

    @classmethod
    def from_events(cls, events: Iterable[ContractEvent]) -> ExemptionApplication:
        """Fold a stream; it starts with ApplicationDrafted."""
        iterator = iter(events)
        first = next(iterator, None)
        if not isinstance(first, ApplicationDrafted):
            raise ValueError("an application stream starts with ApplicationDrafted")
        state = cls._started(first)
        for event in iterator:
            state = state.apply(event)
        return state

    @classmethod
    def _started(cls, event: ApplicationDrafted) -> ExemptionApplication:
        return cls(
            application_id=event.application_id,
            candidate_id=event.candidate_id,
            window_id=event.window_id,
            confirmation_point_id=event.confirmation_point_id,
            plan=event.plan,
            major_codes=tuple(event.major_codes),
            catalogue_version=event.catalogue_version,
        )

    def apply(self, event: ContractEvent) -> ExemptionApplication:
        """The state after `event` (evolve)."""
        if getattr(event, "application_id", None) != self.application_id:
            raise ValueError("event of another application")
        following = self.version + 1
        if isinstance(event, ApplicationDrafted):
            raise ValueError("an application is drafted once")
        if isinstance(event, CertificateAdded):
            return replace(
                self, certificates=(*self.certificates, event.certificate), version=following
            )
        if isinstance(event, CertificateRemoved):
            kept = tuple(c for c in self.certificates if c.certificate_id != event.certificate_id)
            return replace(self, certificates=kept, version=following)
        if isinstance(event, ApplicationSubmitted | ApplicationResubmitted):
            return replace(
                self,
                status=ApplicationStatus.SUBMITTED,
                certificates=tuple(event.certificates),
                case_number=event.case_number,
                submission_number=event.submission_number,
                version=following,
            )
        if isinstance(event, ApplicationReturnedToCandidate):
            info = ReturnInfo(event.stage, event.reason, event.submission_number)
            return replace(
                self, status=ApplicationStatus.RETURNED, last_return=info, version=following
            )
        if isinstance(event, ApplicationDecided):
            return replace(
                self,
                status=ApplicationStatus.DECIDED,
                decisions=tuple(event.decisions),
                objection_deadline=event.objection_deadline,
                version=following,
            )
        if isinstance(event, ApplicationWithdrawn):
            return replace(
                self,
                status=ApplicationStatus.WITHDRAWN,
                withdrawn_reason=event.reason,
                version=following,
            )
        raise ValueError(f"not an application event: {type(event).__name__}")

    def apply_all(self, events: Iterable[ContractEvent]) -> ExemptionApplication:
        """The state after every event of `events`, in order."""
        state = self
        for event in events:
            state = state.apply(event)
        return state

    # --- queries ----------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Counts as the candidate's one open application of its window (draft, in review,
        returned); the service layer keeps a unique constraint on (candidate, window) for it."""
        return self.status in OPEN_STATUSES

    @property
    def claimed_courses(self) -> tuple[ClaimedCourse, ...]:
        """Every claimed course, in the order claimed."""
        return tuple(course for c in self.certificates for course in c.courses)

    @property
    def course_codes(self) -> tuple[str, ...]:
        """Every claimed course code, in the order claimed."""
        return tuple(course.course_code for course in self.claimed_courses)

    @property
    def photo_ids(self) -> tuple[uuid.UUID, ...]:
        """Every photo cited, in order."""
        return tuple(photo for c in self.certificates for photo in c.photo_ids)

    def certificate(self, certificate_id: uuid.UUID) -> ApplicationCertificate | None:
        """One certificate by id."""
        for certificate in self.certificates:
            if certificate.certificate_id == certificate_id:
                return certificate
        return None

    # --- commands ---------------------------------------------------------------------------

    @staticmethod
    def draft(
        *,
        application_id: uuid.UUID,
        candidate: CandidateFacts,
        window: ApplicationWindow,
        confirmation_point_id: str,
        plan: StudyPlan | str,
        major_codes: Sequence[str],
        catalogue: Catalogue,
        now: datetime,
    ) -> list[ContractEvent]:
        """Wizard step 1: point, plan and one or two majors of it, in an accepting window."""
        _require_aware(now)
        if not window.accepting_applications(now):
            raise errors.WindowClosed(f"window {window.window_id} not accepting at {now}")
        rules.check_candidate(candidate)
        rules.check_point(catalogue, confirmation_point_id)
        try:
            study_plan = StudyPlan(plan)
        except ValueError:
            raise errors.InvalidInput(f"plan {plan!r} unknown") from None
        rules.check_majors(catalogue, Plan(study_plan.value), list(major_codes))
        try:
            event = ApplicationDrafted(
                application_id=application_id,
                candidate_id=candidate.candidate_id,
                window_id=window.window_id,
                confirmation_point_id=confirmation_point_id,
                plan=study_plan,
                major_codes=list(major_codes),
                catalogue_version=catalogue.version,
            )
        except ValidationError as exc:
            raise errors.InvalidInput(str(exc)) from None
        return [event]

    def add_certificate(
        self,
        certificate: CertificateInput,
        *,
        candidate: CandidateFacts,
        evidence: Evidence,
        catalogue: Catalogue,
        now: datetime,
    ) -> list[ContractEvent]:
        """Wizard step 2: a certificate, its photos and courses, checked by every rule."""
        if self.status not in EDITABLE_STATUSES:
            self._refuse_edit()
        self._check_context(candidate, catalogue)
        _require_aware(now)
        if self.certificate(certificate.certificate_id) is not None:
            raise errors.DuplicateCertificate(f"certificate {certificate.certificate_id} exists")
        if len(self.certificates) >= MAX_CERTIFICATES:
            raise errors.TooManyCertificates(f"already {len(self.certificates)} certificates")
        built = self._validated(certificate, self.certificates, candidate, evidence, catalogue, now)
        return [CertificateAdded(application_id=self.application_id, certificate=built)]

    def remove_certificate(self, certificate_id: uuid.UUID) -> list[ContractEvent]:
        """Wizard step 3: delete a certificate and its courses."""
        if self.status not in EDITABLE_STATUSES:
            self._refuse_edit()
        if self.certificate(certificate_id) is None:
            raise errors.CertificateNotFound(f"certificate {certificate_id} not in application")
        return [
            CertificateRemoved(application_id=self.application_id, certificate_id=certificate_id)
        ]

    def submit(
        self,
        *,
        declaration_accepted: bool,
        case_number: str,
        now: datetime,
        window: ApplicationWindow,
        candidate: CandidateFacts,
        evidence: Evidence,
        catalogue: Catalogue,
    ) -> list[ContractEvent]:
        """Confirm and submit a draft: the whole snapshot, validated again, submission 1."""
        if self.status is not ApplicationStatus.DRAFT:
            self._refuse(
                {
                    ApplicationStatus.SUBMITTED: errors.AlreadySubmitted,
                    ApplicationStatus.RETURNED: errors.AlreadySubmitted,
                }
            )
        _require_aware(now)
        _window_for(window, self.window_id)
        if not window.accepting_applications(now):
            raise errors.WindowClosed(f"window {window.window_id} not accepting at {now}")
        if not CASE_NUMBER.match(case_number or ""):
            raise errors.InvalidInput(f"case number {case_number!r} is malformed")
        snapshot = self._snapshot(declaration_accepted, candidate, evidence, catalogue, now)
        return [ApplicationSubmitted(case_number=case_number, submission_number=1, **snapshot)]

    def resubmit(
        self,
        *,
        declaration_accepted: bool,
        now: datetime,
        window: ApplicationWindow,
        candidate: CandidateFacts,
        evidence: Evidence,
        catalogue: Catalogue,
    ) -> list[ContractEvent]:
        """重新申请: a returned application, fixed, submitted again under its case number."""
        if self.status is not ApplicationStatus.RETURNED:
            self._refuse(
                {
                    ApplicationStatus.DRAFT: errors.NotReturned,
                    ApplicationStatus.SUBMITTED: errors.AlreadySubmitted,
                }
            )
        _require_aware(now)
        _window_for(window, self.window_id)
        if not window.accepting_resubmissions(now):
            raise errors.ResubmissionClosed(f"window {window.window_id} closed to resubmissions")
        snapshot = self._snapshot(declaration_accepted, candidate, evidence, catalogue, now)
        assert self.case_number is not None  # set by the first submission
        return [
            ApplicationResubmitted(
                case_number=self.case_number,
                submission_number=self.submission_number + 1,
                **snapshot,
            )
        ]

    def withdraw(self, reason: str | None = None) -> list[ContractEvent]:
        """撤回: allowed until a decision."""
        if self.status not in OPEN_STATUSES:
            self._refuse({})
        return [
            ApplicationWithdrawn(
                application_id=self.application_id,
                candidate_id=self.candidate_id,
                case_number=self.case_number,
                reason=_reason(reason, required=False),
            )
        ]

    # --- policies reacting to review ------------------------------------------------------------

    def returned(
        self, stage: ReviewStage | str, reason: str, submission_number: int
    ) -> list[ContractEvent]:
        """Review returned submission `submission_number`; stale or duplicate returns are no-ops."""
        try:
            review_stage = ReviewStage(stage)
        except ValueError:
            raise errors.InvalidInput(f"review stage {stage!r} unknown") from None
        text = _reason(reason, required=True)
        if submission_number < 1:
            raise errors.InvalidInput(f"submission number {submission_number} < 1")
        if (
            self.status is not ApplicationStatus.SUBMITTED
            or submission_number != self.submission_number
        ):
            return []
        assert self.case_number is not None and text is not None
        return [
            ApplicationReturnedToCandidate(
                application_id=self.application_id,
                case_number=self.case_number,
                candidate_id=self.candidate_id,
                stage=review_stage,
                reason=text,
                submission_number=submission_number,
            )
        ]

    def decided(
        self, decisions: Sequence[CourseDecision], objection_deadline: date | None = None
    ) -> list[ContractEvent]:
        """The province decided every claimed course; a duplicate or stale decision is a no-op.

        Exactly one decision per claimed (course, major); a decision arriving after the
        application was decided, withdrawn or returned is ignored; one for a draft is refused.
        """
        if self.status in (
            ApplicationStatus.DECIDED,
            ApplicationStatus.WITHDRAWN,
            ApplicationStatus.RETURNED,
        ):
            return []
        if self.status is not ApplicationStatus.SUBMITTED:
            raise errors.NotUnderReview(f"application {self.application_id} is {self.status}")
        claimed = {(c.course_code, c.major_code) for c in self.claimed_courses}
        given = [(d.course_code, d.major_code) for d in decisions]
        if len(given) != len(set(given)) or set(given) != claimed:
            raise errors.DecisionsMismatch(f"decisions {given} for claimed {sorted(claimed)}")
        assert self.case_number is not None
        return [
            ApplicationDecided(
                application_id=self.application_id,
                case_number=self.case_number,
                candidate_id=self.candidate_id,
                decisions=list(decisions),
                objection_deadline=objection_deadline,
            )
        ]

    # --- internals ------------------------------------------------------------------------------

    def _refuse(self, mapping: dict[ApplicationStatus, type[errors.ApplicationError]]) -> NoReturn:
        base: dict[ApplicationStatus, type[errors.ApplicationError]] = {
            ApplicationStatus.DECIDED: errors.AlreadyDecided,
            ApplicationStatus.WITHDRAWN: errors.AlreadyWithdrawn,
        }
        error = {**base, **mapping}.get(self.status, errors.NotEditable)
        raise error(f"application {self.application_id} is {self.status.value}")

    def _refuse_edit(self) -> NoReturn:
        self._refuse({ApplicationStatus.SUBMITTED: errors.NotEditable})

    def _check_context(self, candidate: CandidateFacts, catalogue: Catalogue) -> None:
        if candidate.candidate_id != self.candidate_id:
            raise errors.CandidateMismatch(f"candidate {candidate.candidate_id} is not the owner")
        rules.check_candidate(candidate)
        if catalogue.version != self.catalogue_version:
            raise errors.CatalogueMismatch(
                f"catalogue {catalogue.version} is not {self.catalogue_version}"
            )

    def _validated(
        self,
        certificate: CertificateInput,
        others: Sequence[ApplicationCertificate],
        candidate: CandidateFacts,
        evidence: Evidence,
        catalogue: Catalogue,
        now: datetime,
    ) -> ApplicationCertificate:
        """`certificate` checked by every rule against the others; the contract value."""
        try:
            kind = CertificateKind(certificate.kind)
        except ValueError:
            raise errors.InvalidInput(f"certificate kind {certificate.kind!r} unknown") from None
        route = rules.check_route(catalogue, certificate.route_id, kind.value)
        if not certificate.courses:
            raise errors.NoCourses("a certificate exempts at least one course")
        degree: VerifiedDegreeFacts | None = None
        if route.is_degree_route:
            if certificate.certificate_check_ref is not None:
                raise errors.InvalidInput("a degree certificate cites no certificate check")
            degree = rules.check_degree(certificate.degree_ref, candidate, evidence, now)
        else:
            if certificate.degree_ref is not None:
                raise errors.InvalidInput("only a degree certificate cites a verified degree")
            rules.check_certificate_evidence(
                route, certificate.certificate_check_ref, candidate, evidence
            )
        claimed_before = {c.course_code for other in others for c in other.courses}
        seen: set[str] = set()
        plan = Plan(self.plan.value)
        courses: list[ClaimedCourse] = []
        for claim in certificate.courses:
            if claim.course_code in claimed_before or claim.course_code in seen:
                raise errors.CourseClaimedTwice(f"course {claim.course_code} claimed twice")
            seen.add(claim.course_code)
            if claim.major_code not in self.major_codes:
                raise errors.MajorNotInApplication(f"major {claim.major_code} not drafted")
            major = rules.check_major(catalogue, plan, claim.major_code)
            if degree is not None:
                course = rules.check_course(major, claim.course_code, candidate)
                rules.check_degree_course(
                    degree, claim.source_course_name, course, major, catalogue.degree_rules
                )
                source = claim.source_course_name
            else:
                if claim.source_course_name is not None:
                    raise errors.InvalidInput("only degree claims name a transcript course")
                course = rules.check_route_course(route, major, claim.course_code, candidate)
                source = None
            try:
                courses.append(
                    ClaimedCourse(
                        course_code=course.code,
                        course_name=course.name,
                        major_code=major.code,
                        source_course_name=source,
                    )
                )
            except ValidationError as exc:
                raise errors.InvalidInput(str(exc)) from None
        if degree is not None and not degree.is_zikao:
            self._check_degree_share(courses, others, evidence, catalogue)
        rules.check_photos(
            list(certificate.photo_ids),
            candidate,
            evidence,
            used_elsewhere=(p for other in others for p in other.photo_ids),
        )
        try:
            return ApplicationCertificate(
                certificate_id=certificate.certificate_id,
                kind=kind,
                route_id=route.route_id,
                degree=_summary(degree) if degree is not None else None,
                certificate_check_ref=certificate.certificate_check_ref,
                photo_ids=list(certificate.photo_ids),
                courses=courses,
            )
        except ValidationError as exc:
            raise errors.InvalidInput(str(exc)) from None

    def _check_degree_share(
        self,
        courses: Sequence[ClaimedCourse],
        others: Sequence[ApplicationCertificate],
        evidence: Evidence,
        catalogue: Catalogue,
    ) -> None:
        """The non-自考 cap over this certificate's and the other non-自考 degree certificates'
        courses, per major (see rules.check_degree_share)."""
        counted = list(courses)
        for other in others:
            if other.degree is None:
                continue
            facts = evidence.degrees.get(other.degree.degree_ref)
            if facts is None or not facts.is_zikao:
                counted.extend(other.courses)
        plan = Plan(self.plan.value)
        for major_code in {c.major_code for c in courses}:
            major = catalogue.major(major_code, plan)
            assert major is not None  # checked by the claims
            count = len({c.course_code for c in counted if c.major_code == major_code})
            rules.check_degree_share(major, count, catalogue.degree_rules)

    def _snapshot(
        self,
        declaration_accepted: bool,
        candidate: CandidateFacts,
        evidence: Evidence,
        catalogue: Catalogue,
        now: datetime,
    ) -> dict[str, object]:
        self._check_context(candidate, catalogue)
        if declaration_accepted is not True:
            raise errors.DeclarationRequired("the declaration was not accepted")
        if not self.certificates:
            raise errors.NoCertificates("no certificate to submit")
        if len(self.certificates) > MAX_CERTIFICATES:
            raise errors.TooManyCertificates(f"{len(self.certificates)} certificates")
        rules.check_point(catalogue, self.confirmation_point_id)
        rules.check_majors(catalogue, Plan(self.plan.value), list(self.major_codes))
        validated: list[ApplicationCertificate] = []
        for certificate in self.certificates:
            validated.append(
                self._validated(
                    CertificateInput.of(certificate),
                    validated,
                    candidate,
                    evidence,
                    catalogue,
                    now,
                )
            )
        return {
            "application_id": self.application_id,
            "candidate_id": self.candidate_id,
            "window_id": self.window_id,
            "confirmation_point_id": self.confirmation_point_id,
            "plan": self.plan,
            "major_codes": list(self.major_codes),
            "catalogue_version": self.catalogue_version,
            "certificates": validated,
            "course_codes": [c.course_code for cert in validated for c in cert.courses],
            "photo_ids": [p for cert in validated for p in cert.photo_ids],
            "declaration_accepted": True,
        }


def _summary(degree: VerifiedDegreeFacts) -> DegreeSummary:
    return DegreeSummary(
        degree_ref=degree.degree_ref,
        institution=degree.institution,
        major_name=degree.major_name,
        level=DegreeLevel(degree.level),
        graduation_year=degree.graduation_year,
        certificate_number=degree.certificate_number,
        holder_matches_candidate=degree.holder_matches_candidate,
    )
