"""Review's JSON API for staff: the case view, claims, decisions and returns, reason templates.

Staff authenticate with identity's tokens; a reviewer sees only the cases of their confirmation
points (others answer 404), a senior reviewer the province; candidates and ops get 403.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field

from contracts.base import CourseOutcome
from review_service import bootstrap
from review_service.adapters.evidence import CertificateEvidence, evidence_for
from review_service.adapters.queue import CaseStatus as QueueStatus
from review_service.adapters.queue import QueueFilters, QueuePageRequest, QueueSort
from review_service.domain.case import ReviewCase, Verdict
from review_service.domain.templates import DENIAL_REASONS, RETURN_REASONS
from review_service.entrypoints.web import (
    install_web,
    make_web,
    reviewer_of,
    security_headers,
)
from review_service.service_layer.queue import queue_page
from review_service.settings import ReviewSettings
from servicekit.app import create_app, identity_verified_lifespan
from servicekit.auth import Principal, TokenVerifier, require_roles
from servicekit.health import platform_kafka_check
from servicekit.models import StrictRequest
from servicekit.openapi import errors
from servicekit.types import SaneDate

BASE = "/api/review"


class Strict(StrictRequest):
    """Request bodies: unknown fields and control characters refused (servicekit)."""


class VerdictIn(Strict):
    course_code: str = Field(pattern=r"^\d{5}$")
    major_code: str | None = Field(default=None, pattern=r"^\d{6}[A-Z]?$")
    outcome: CourseOutcome = Field(description="granted (同意免考) or denied (不同意)")
    reason: str | None = Field(default=None, max_length=500)


class ClaimRequest(Strict):
    submission_number: int = Field(ge=1)


class InitialReviewRequest(Strict):
    submission_number: int = Field(ge=1)
    decisions: list[VerdictIn] = Field(min_length=1, max_length=60)
    note: str | None = Field(default=None, max_length=500)


class ReturnRequest(Strict):
    submission_number: int = Field(ge=1)
    reason: str = Field(min_length=1, max_length=500)
    course_notes: dict[str, str] = Field(default_factory=dict, max_length=60)


class ApproveRequest(Strict):
    submission_number: int = Field(ge=1)
    decisions: list[VerdictIn] = Field(min_length=1, max_length=60)
    objection_deadline: SaneDate | None = None


class TemplateRead(BaseModel):
    template_id: str
    kind: str
    text: str


class CaseRead(BaseModel):
    """A case as the reviewer sees it: the current snapshot, where it stands, its history."""

    application_id: uuid.UUID
    case_number: str
    candidate_id: uuid.UUID
    confirmation_point_id: str
    window_id: uuid.UUID
    submission_number: int
    status: str
    status_label: str
    acting_stage: str | None
    claimed_by: uuid.UUID | None
    claim_expires_at: datetime | None
    certificates: list[dict[str, Any]]
    point_decisions: list[dict[str, Any]]
    point_note: str | None
    final_decisions: list[dict[str, Any]]
    last_return: dict[str, Any] | None
    earlier_rounds: int
    changes_since_last_return: dict[str, Any] | None

    @classmethod
    def of(cls, case: ReviewCase, now: datetime, lease: Any) -> CaseRead:
        claim = case.active_claim
        live = claim is not None and claim.live(now, lease)
        changes = case.changes_since_last_return()
        last = case.last_return
        return cls(
            application_id=case.application_id,
            case_number=case.case_number,
            candidate_id=case.candidate_id,
            confirmation_point_id=case.confirmation_point_id,
            window_id=case.window_id,
            submission_number=case.submission_number,
            status=case.status.value,
            status_label=case.status.label,
            acting_stage=case.acting_stage.value if case.acting_stage else None,
            claimed_by=claim.holder_id if claim and live else None,
            claim_expires_at=claim.expires_at(lease) if claim and live else None,
            certificates=[c.model_dump(mode="json") for c in case.certificates],
            point_decisions=[d.model_dump(mode="json") for d in case.point_decisions],
            point_note=case.point_note,
            final_decisions=[d.model_dump(mode="json") for d in case.final_decisions],
            last_return={
                "stage": last.stage.value,
                "reason": last.reason,
                "submission_number": last.submission_number,
                "returned_at": last.returned_at.isoformat(),
            }
            if last
            else None,
            earlier_rounds=len(case.earlier_rounds),
            changes_since_last_return={
                "from_submission": changes.from_submission,
                "to_submission": changes.to_submission,
                "added_courses": [c.course_code for c in changes.added_courses],
                "removed_courses": [c.course_code for c in changes.removed_courses],
                "changed_certificates": [
                    str(c.certificate_id) for c in changes.changed_certificates
                ],
            }
            if changes
            else None,
        )


class CaseEvidenceRead(BaseModel):
    """The evidence of the current snapshot: each certificate next to what was verified."""

    application_id: uuid.UUID
    candidate_id: uuid.UUID
    submission_number: int
    certificates: list[CertificateEvidence]


class TrailEntry(BaseModel):
    event_type: str
    occurred_at: datetime
    actor_kind: str
    actor_id: str
    submission_number: int | None


class CaseHistory(BaseModel):
    case: CaseRead
    trail: list[TrailEntry]


class QueueRowRead(BaseModel):
    application_id: uuid.UUID
    case_number: str
    confirmation_point_id: str
    status: str
    submission_number: int
    resubmissions: int
    days_waiting: int
    deadline: datetime | None
    overdue: bool
    major_codes: list[str]
    route_ids: list[str]
    course_count: int
    claimed_by: uuid.UUID | None
    claim_expires_at: datetime | None
    last_return_reason: str | None


class QueueRead(BaseModel):
    rows: list[QueueRowRead]
    next_cursor: str | None
    counts: dict[str, int]
    overdue: int
    claimed: int


def _verdicts(items: list[VerdictIn]) -> list[Verdict]:
    return [Verdict(v.course_code, v.outcome, v.reason, v.major_code) for v in items]


def _service(request: Request) -> bootstrap.Review:
    service: bootstrap.Review = request.app.state.review
    return service


Service = Annotated[bootstrap.Review, Depends(_service)]
Staff = Annotated[Principal, Depends(require_roles("reviewer", "senior_reviewer"))]


def attach(app: FastAPI, service: bootstrap.Review, verifier: TokenVerifier) -> None:
    """Give the app its wired service and token verifier (and the reviewer UI its parts)."""
    app.state.review = service
    app.state.token_verifier = verifier
    if service.identity is not None and service.media is not None:
        app.state.web = make_web(service, verifier)


def build_app(start: Callable[[], Awaitable[bootstrap.Review]] = bootstrap.start) -> FastAPI:
    """The review API; `start` builds the wired service (tests give their own)."""

    lifespan = identity_verified_lifespan(
        "review", start, attach, lambda: ReviewSettings().identity_url
    )

    async def database_ready() -> None:
        await app.state.review.pool.fetchval("SELECT 1")

    app = create_app(
        "review",
        version="0.1.0",
        max_body_bytes=64 * 1024,
        health_checks={"postgres": database_ready},
        advisory_checks={"kafka": platform_kafka_check()},  # the outbox holds writes
        lifespan=lifespan,
    )

    security_headers(app, ReviewSettings())
    install_web(app)

    def now() -> datetime:
        return datetime.now().astimezone()

    @app.get(f"{BASE}/templates", response_model=list[TemplateRead], tags=["review"])
    async def templates(staff: Staff) -> list[TemplateRead]:
        """常用退回原因与不同意原因."""
        return [
            TemplateRead(template_id=t.template_id, kind=t.kind.value, text=t.text)
            for t in (*RETURN_REASONS, *DENIAL_REASONS)
        ]

    @app.get(
        f"{BASE}/queue", response_model=QueueRead, tags=["review"], responses=errors(400)
    )  # 400 review.invalid_query: a paging cursor that is not one of ours
    async def queue(
        service: Service,
        staff: Staff,
        status: Annotated[list[QueueStatus] | None, Query()] = None,
        major: Annotated[str | None, Query(pattern=r"^\d{6}[A-Z]?$")] = None,
        route: Annotated[str | None, Query(max_length=64)] = None,
        overdue: bool | None = None,
        claim: Literal["any", "claimed", "unclaimed", "mine"] = "any",
        q: Annotated[str | None, Query(max_length=20, description="办件编号 prefix")] = None,
        sort: QueueSort = QueueSort.WAITING,
        size: Annotated[int, Query(ge=1, le=100)] = 20,
        after: Annotated[str | None, Query(max_length=200)] = None,
    ) -> QueueRead:
        """待审列表: the reviewer's queue with filters, sorting and counts."""
        reviewer = reviewer_of(staff)
        filters = QueueFilters(
            statuses=tuple(QueueStatus(s) for s in status) if status else None,
            major_code=major,
            route_id=route,
            overdue=overdue,
            claim=claim,
            reviewer_id=reviewer.staff_id,
            case_number_prefix=q,
        )
        view = await queue_page(
            service.pool, reviewer, filters, sort, QueuePageRequest(size=size, after=after),
            now=now(), lease=service.cases.lease,
        )  # fmt: skip
        page, totals = view.page, view.totals
        return QueueRead(
            rows=[
                QueueRowRead(
                    application_id=r.application_id,
                    case_number=r.case_number,
                    confirmation_point_id=r.confirmation_point_id,
                    status=r.status.value,
                    submission_number=r.submission_number,
                    resubmissions=r.resubmissions,
                    days_waiting=r.days_waiting,
                    deadline=r.deadline,
                    overdue=r.overdue,
                    major_codes=r.major_codes,
                    route_ids=r.route_ids,
                    course_count=r.course_count,
                    claimed_by=r.claimed_by if r.claim_live else None,
                    claim_expires_at=r.claim_expires_at if r.claim_live else None,
                    last_return_reason=r.last_return_reason,
                )
                for r in page.rows
            ],
            next_cursor=page.next_cursor,
            counts={k.value: v for k, v in totals.by_status.items()},
            overdue=totals.overdue,
            claimed=totals.claimed,
        )

    @app.get(f"{BASE}/cases/{{application_id}}", response_model=CaseRead, tags=["review"])
    async def case(application_id: uuid.UUID, service: Service, staff: Staff) -> CaseRead:
        """申请详情 for a reviewer who may see it."""
        found = await service.cases.view(reviewer_of(staff), application_id)
        return CaseRead.of(found, now(), service.cases.lease)

    @app.get(
        f"{BASE}/cases/{{application_id}}/evidence",
        response_model=CaseEvidenceRead,
        tags=["review"],
    )
    async def evidence(
        application_id: uuid.UUID, service: Service, staff: Staff
    ) -> CaseEvidenceRead:
        """证书核验信息: the verified degree or certificate check behind each certificate."""
        found = await service.cases.view(reviewer_of(staff), application_id)
        async with service.pool.acquire() as conn:
            certificates = await evidence_for(conn, found)
        return CaseEvidenceRead(
            application_id=found.application_id,
            candidate_id=found.candidate_id,
            submission_number=found.submission_number,
            certificates=certificates,
        )

    @app.get(
        f"{BASE}/cases/{{application_id}}/history", response_model=CaseHistory, tags=["review"]
    )
    async def history(application_id: uuid.UUID, service: Service, staff: Staff) -> CaseHistory:
        """审核记录: every step of the case, who and when."""
        found, trail = await service.cases.history(reviewer_of(staff), application_id)
        return CaseHistory(
            case=CaseRead.of(found, now(), service.cases.lease),
            trail=[
                TrailEntry(
                    event_type=e.event_type,
                    occurred_at=e.occurred_at,
                    actor_kind=e.actor.kind,
                    actor_id=e.actor.id,
                    submission_number=e.payload.get("submission_number"),
                )
                for e in trail
            ],
        )

    async def _claim_action(
        action: Literal["claim", "release"],
        application_id: uuid.UUID,
        body: ClaimRequest,
        service: Any,
        staff: Any,
    ) -> CaseRead:
        cases = service.cases
        act = cases.claim if action == "claim" else cases.release
        found = await act(
            reviewer_of(staff), application_id, submission_number=body.submission_number
        )
        return CaseRead.of(found, now(), cases.lease)

    @app.post(f"{BASE}/cases/{{application_id}}/claim", response_model=CaseRead, tags=["review"])
    async def claim(
        application_id: uuid.UUID, body: ClaimRequest, service: Service, staff: Staff
    ) -> CaseRead:
        """领取 (or renew): a lease so two reviewers never work one case unknowingly."""
        return await _claim_action("claim", application_id, body, service, staff)

    @app.post(f"{BASE}/cases/{{application_id}}/release", response_model=CaseRead, tags=["review"])
    async def release(
        application_id: uuid.UUID, body: ClaimRequest, service: Service, staff: Staff
    ) -> CaseRead:
        """释放: give the case back to the queue."""
        return await _claim_action("release", application_id, body, service, staff)

    @app.post(
        f"{BASE}/cases/{{application_id}}/initial-review", response_model=CaseRead, tags=["review"]
    )
    async def initial_review(
        application_id: uuid.UUID, body: InitialReviewRequest, service: Service, staff: Staff
    ) -> CaseRead:
        """初审: the point's per-course opinion; the case goes to the province."""
        found = await service.cases.complete_initial_review(
            reviewer_of(staff),
            application_id,
            submission_number=body.submission_number,
            verdicts=_verdicts(body.decisions),
            note=body.note,
        )
        return CaseRead.of(found, now(), service.cases.lease)

    @app.post(f"{BASE}/cases/{{application_id}}/return", response_model=CaseRead, tags=["review"])
    async def return_case(
        application_id: uuid.UUID, body: ReturnRequest, service: Service, staff: Staff
    ) -> CaseRead:
        """退回: the whole application back to the candidate, with a reason."""
        found = await service.cases.return_to_candidate(
            reviewer_of(staff),
            application_id,
            submission_number=body.submission_number,
            reason=body.reason,
            course_notes=body.course_notes or None,
        )
        return CaseRead.of(found, now(), service.cases.lease)

    @app.post(f"{BASE}/cases/{{application_id}}/approve", response_model=CaseRead, tags=["review"])
    async def approve(
        application_id: uuid.UUID, body: ApproveRequest, service: Service, staff: Staff
    ) -> CaseRead:
        """复审: the province's final per-course decision."""
        found = await service.cases.approve(
            reviewer_of(staff),
            application_id,
            submission_number=body.submission_number,
            verdicts=_verdicts(body.decisions),
            objection_deadline=body.objection_deadline,
        )
        return CaseRead.of(found, now(), service.cases.lease)

    return app


app = build_app()
