"""The application service's JSON API: catalogue, windows, and the candidate's applications."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, status
from pydantic import BaseModel, Field

from application_service import bootstrap
from application_service.adapters import catalogue_store
from application_service.domain import rules
from application_service.domain.application import (
    CertificateInput,
    CourseClaim,
    ExemptionApplication,
)
from application_service.domain.catalogue import Catalogue, Level, Major, Plan
from application_service.domain.errors import ApplicationError
from application_service.domain.windows import ApplicationWindow
from application_service.entrypoints.portal import base as portal_base
from application_service.entrypoints.portal import install_portal, make_portal
from application_service.service_layer.applications import (
    NoActiveCatalogue,
    TimelineEntry,
)
from application_service.settings import ApplicationSettings
from contracts.base import CertificateKind
from eventkit.envelope import Actor
from servicekit.app import create_app, identity_verified_lifespan
from servicekit.auth import CurrentCandidate, Principal, TokenVerifier, require_roles
from servicekit.context import correlation_id_of
from servicekit.health import platform_kafka_check
from servicekit.models import RequiredText, StrictRequest
from servicekit.types import SaneDatetime

BASE = "/api/applications"
CATALOGUE = "/api/catalogue"
WINDOWS = "/api/windows"

EVENT_LABELS = {
    "ApplicationDrafted": "创建申请",
    "CertificateAdded": "新增免考课程",
    "CertificateRemoved": "删除课程",
    "ApplicationSubmitted": "提交申请",
    "ApplicationResubmitted": "重新申请",
    "ApplicationWithdrawn": "撤回申请",
    "ApplicationReturnedToCandidate": "被退回",
    "ApplicationDecided": "审核完成",
}


class Strict(StrictRequest):
    """Request bodies: unknown fields and control characters refused (servicekit)."""


# --- catalogue ------------------------------------------------------------------------------


class CourseRead(BaseModel):
    code: str
    name: str
    credits: float | None
    kind: str
    assessment: str
    practical: bool
    thesis: bool
    exemptible: bool


class MajorRead(BaseModel):
    code: str
    name: str
    level: str
    level_label: str
    plan: str
    suspended: bool = Field(description="停考: shown as 停, not applicable")
    label: str


class MajorDetail(MajorRead):
    courses: list[CourseRead]


class PointRead(BaseModel):
    point_id: str
    name: str


class RouteRead(BaseModel):
    route_id: str
    kind: str
    name: str
    exam: str | None
    min_level: int | None
    min_score: int | None
    subject: str | None
    note: str | None


class RouteCourses(BaseModel):
    """The courses of a major a route may exempt for the caller (passed/exempted left out)."""

    route_id: str
    major_code: str
    courses: list[CourseRead]


class CatalogueRead(BaseModel):
    version: str
    majors: int
    points: int
    routes: int


def _course(course: Any) -> CourseRead:
    return CourseRead(
        code=course.code,
        name=course.name,
        credits=course.credits,
        kind=course.kind.value,
        assessment=course.assessment.value,
        practical=course.practical,
        thesis=course.thesis,
        exemptible=course.exemptible,
    )


def _major(major: Major) -> MajorRead:
    return MajorRead(
        code=major.code,
        name=major.name,
        level=major.level.value,
        level_label=major.level.label,
        plan=major.plan.value,
        suspended=major.suspended,
        label=major.label,
    )


# --- windows --------------------------------------------------------------------------------


class WindowRead(BaseModel):
    window_id: uuid.UUID
    name: str
    opens_at: datetime
    applications_close_at: datetime
    point_review_close_at: datetime
    province_review_close_at: datetime
    results_published_at: datetime
    stage: str
    stage_label: str

    @classmethod
    def of(cls, window: ApplicationWindow, now: datetime) -> WindowRead:
        stage = window.stage(now)
        return cls(
            window_id=window.window_id,
            name=window.name,
            opens_at=window.opens_at,
            applications_close_at=window.applications_close_at,
            point_review_close_at=window.point_review_close_at,
            province_review_close_at=window.province_review_close_at,
            results_published_at=window.results_published_at,
            stage=stage.value,
            stage_label=stage.label,
        )


class WindowCreate(Strict):
    name: RequiredText = Field(max_length=100)
    opens_at: SaneDatetime
    applications_close_at: SaneDatetime
    point_review_close_at: SaneDatetime
    province_review_close_at: SaneDatetime
    results_published_at: SaneDatetime


class WindowClose(Strict):
    reason: RequiredText = Field(max_length=500)


# --- applications ---------------------------------------------------------------------------


class DraftCreate(Strict):
    """第一步: 免考确认点, 新旧计划, 专业 (at most two)."""

    window_id: uuid.UUID
    confirmation_point_id: str = Field(pattern=r"^\d{6}$")
    plan: Plan
    major_codes: list[str] = Field(min_length=1, max_length=2)


class ClaimIn(Strict):
    course_code: str = Field(pattern=r"^\d{5}$")
    major_code: str = Field(pattern=r"^\d{6}[A-Z]?$")
    source_course_name: str | None = Field(default=None, min_length=1, max_length=200)


class CertificateCreate(Strict):
    """第二步: one certificate, the courses it exempts, its photos and its evidence."""

    kind: CertificateKind
    route_id: str = Field(min_length=1, max_length=64)
    courses: list[ClaimIn] = Field(min_length=1, max_length=40)
    photo_ids: list[uuid.UUID] = Field(min_length=1, max_length=6)
    degree_ref: uuid.UUID | None = None
    certificate_check_ref: uuid.UUID | None = None


class SubmitRequest(Strict):
    declaration_accepted: bool = Field(description="承诺书 ticked")


class WithdrawRequest(Strict):
    reason: str | None = Field(default=None, max_length=500)


class TimelineRead(BaseModel):
    event_type: str
    label: str
    occurred_at: datetime
    actor_kind: str


class ReturnRead(BaseModel):
    stage: str
    reason: str
    submission_number: int


class MajorRef(BaseModel):
    code: str
    name: str
    label: str


class ApplicationRead(BaseModel):
    application_id: uuid.UUID
    case_number: str | None
    status: str
    status_label: str
    window_id: uuid.UUID
    confirmation_point_id: str
    plan: str
    major_codes: list[str]
    catalogue_version: str
    submission_number: int
    certificates: list[dict[str, Any]]
    course_codes: list[str]
    last_return: ReturnRead | None
    decisions: list[dict[str, Any]]
    objection_deadline: date | None
    withdrawn_reason: str | None
    timeline: list[TimelineRead] = Field(default_factory=list)
    confirmation_point_name: str | None = Field(default=None, description="for the print view")
    majors: list[MajorRef] = Field(default_factory=list, description="for the print view")

    @classmethod
    def of(
        cls,
        app: ExemptionApplication,
        timeline: list[TimelineEntry] | None = None,
        catalogue: Catalogue | None = None,
    ) -> ApplicationRead:
        point = catalogue.point(app.confirmation_point_id) if catalogue else None
        majors = [
            MajorRef(code=m.code, name=m.name, label=m.label)
            for code in app.major_codes
            if catalogue and (m := catalogue.major(code, Plan(app.plan.value))) is not None
        ]
        return cls(
            confirmation_point_name=point.name if point else None,
            majors=majors,
            application_id=app.application_id,
            case_number=app.case_number,
            status=app.status.value,
            status_label=app.status.label,
            window_id=app.window_id,
            confirmation_point_id=app.confirmation_point_id,
            plan=app.plan.value,
            major_codes=list(app.major_codes),
            catalogue_version=app.catalogue_version,
            submission_number=app.submission_number,
            certificates=[c.model_dump(mode="json") for c in app.certificates],
            course_codes=list(app.course_codes),
            last_return=ReturnRead(
                stage=app.last_return.stage.value,
                reason=app.last_return.reason,
                submission_number=app.last_return.submission_number,
            )
            if app.last_return
            else None,
            decisions=[d.model_dump(mode="json") for d in app.decisions],
            objection_deadline=app.objection_deadline,
            withdrawn_reason=app.withdrawn_reason,
            timeline=[
                TimelineRead(
                    event_type=t.event_type,
                    label=EVENT_LABELS.get(t.event_type, t.event_type),
                    occurred_at=t.occurred_at,
                    actor_kind=t.actor_kind,
                )
                for t in timeline or []
            ],
        )


class ApplicationList(BaseModel):
    applications: list[ApplicationRead]


class CatalogueNotFound(ApplicationError):
    """A catalogue item that does not exist."""

    code = "application.catalogue_item_not_found"
    status = 404
    default_message = "目录中不存在该项"


def _service(request: Request) -> bootstrap.ApplicationService:
    service: bootstrap.ApplicationService = request.app.state.application
    return service


Service = Annotated[bootstrap.ApplicationService, Depends(_service)]


def _bearer_token(request: Request) -> str | None:
    """The caller's own token (already verified), to act at media on their behalf."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


Ops = Annotated[Principal, Depends(require_roles("ops"))]


async def _active_catalogue(service: bootstrap.ApplicationService) -> Catalogue:
    version = await catalogue_store.active_version(service.pool)
    if version is None:
        raise NoActiveCatalogue("no active catalogue version")
    return await catalogue_store.load(service.pool, version)


def attach(app: FastAPI, service: bootstrap.ApplicationService, verifier: TokenVerifier) -> None:
    """Give the app its wired service and token verifier (and the portal its parts)."""
    app.state.application = service
    app.state.token_verifier = verifier
    if service.identity is not None:
        app.state.portal = make_portal(service, verifier)


def build_app(
    start: Callable[[], Awaitable[bootstrap.ApplicationService]] = bootstrap.start,
) -> FastAPI:
    """The application API; `start` builds the wired service (tests give their own)."""

    lifespan = identity_verified_lifespan(
        "application", start, attach, lambda: ApplicationSettings().identity_url
    )

    async def database_ready() -> None:
        await app.state.application.pool.fetchval("SELECT 1")

    app = create_app(
        "application",
        version="0.1.0",
        max_body_bytes=64 * 1024,
        body_limits={"/apply/": portal_base.FORM_BYTES},  # the certificate photo upload
        health_checks={"postgres": database_ready},
        advisory_checks={"kafka": platform_kafka_check()},  # the outbox holds writes
        lifespan=lifespan,
    )
    install_portal(app, ApplicationSettings().photo_origins)

    # -- catalogue ------------------------------------------------------------------------

    @app.get(CATALOGUE, response_model=CatalogueRead, tags=["catalogue"])
    async def catalogue_info(service: Service) -> CatalogueRead:
        """The active catalogue version."""
        catalogue = await _active_catalogue(service)
        return CatalogueRead(
            version=catalogue.version,
            majors=len(catalogue.majors),
            points=len(catalogue.points),
            routes=len(catalogue.routes),
        )

    @app.get(f"{CATALOGUE}/majors", response_model=list[MajorRead], tags=["catalogue"])
    async def majors(
        service: Service, plan: Plan, level: Annotated[Level | None, Query()] = None
    ) -> list[MajorRead]:
        """专业 of a plan (and level), with 停 marked."""
        catalogue = await _active_catalogue(service)
        return [_major(m) for m in catalogue.majors_of(plan, level)]

    @app.get(f"{CATALOGUE}/majors/{{code}}", response_model=MajorDetail, tags=["catalogue"])
    async def major(code: str, plan: Plan, service: Service) -> MajorDetail:
        """One major with its courses."""
        catalogue = await _active_catalogue(service)
        found = catalogue.major(code, plan)
        if found is None:
            raise CatalogueNotFound(f"major {code} of plan {plan} not in the catalogue")
        courses = [_course(c) for c in found.courses]
        return MajorDetail(**_major(found).model_dump(), courses=courses)

    @app.get(f"{CATALOGUE}/points", response_model=list[PointRead], tags=["catalogue"])
    async def points(service: Service) -> list[PointRead]:
        """免考确认点."""
        catalogue = await _active_catalogue(service)
        return [
            PointRead(point_id=p.point_id, name=p.name)
            for p in sorted(catalogue.points.values(), key=lambda p: p.point_id)
        ]

    @app.get(f"{CATALOGUE}/routes", response_model=list[RouteRead], tags=["catalogue"])
    async def routes(
        service: Service, kind: Annotated[CertificateKind | None, Query()] = None
    ) -> list[RouteRead]:
        """免考规则: the routes, optionally of one certificate type."""
        catalogue = await _active_catalogue(service)
        found = (
            catalogue.routes_of_kind(kind.value)
            if kind
            else sorted(catalogue.routes.values(), key=lambda r: r.route_id)
        )
        return [
            RouteRead(
                route_id=r.route_id,
                kind=r.kind,
                name=r.name,
                exam=r.exam,
                min_level=r.min_level,
                min_score=r.min_score,
                subject=r.subject,
                note=r.note,
            )
            for r in found
        ]

    @app.get(
        f"{CATALOGUE}/routes/{{route_id}}/courses", response_model=RouteCourses, tags=["catalogue"]
    )
    async def route_courses(
        route_id: str, major: str, plan: Plan, service: Service, candidate: CurrentCandidate
    ) -> RouteCourses:
        """The courses of `major` this route may exempt for the signed-in candidate."""
        catalogue = await _active_catalogue(service)
        found_route = catalogue.route(route_id)
        found_major = catalogue.major(major, plan)
        if found_route is None or found_major is None:
            raise CatalogueNotFound(f"route {route_id} or major {major} not in the catalogue")
        facts = await service.applications.candidate_facts(uuid.UUID(candidate.account_id))
        codes = rules.allowed_courses(found_route, found_major, facts)
        courses = [c for code in codes if (c := found_major.course(code)) is not None]
        return RouteCourses(
            route_id=route_id, major_code=major, courses=[_course(c) for c in courses]
        )

    # -- windows --------------------------------------------------------------------------

    @app.get(WINDOWS, response_model=list[WindowRead], tags=["windows"])
    async def windows(service: Service) -> list[WindowRead]:
        """申请时段, newest first, with their current stage."""
        now = datetime.now().astimezone()
        return [WindowRead.of(w, now) for w in await service.windows.all()]

    @app.post(
        WINDOWS, status_code=status.HTTP_201_CREATED, response_model=WindowRead, tags=["windows"]
    )
    async def open_window(body: WindowCreate, service: Service, ops: Ops) -> WindowRead:
        """Ops open a window with its per-stage deadlines."""
        window = ApplicationWindow(window_id=uuid.uuid4(), **body.model_dump())
        await service.windows.open(window, Actor(kind="ops", id=ops.account_id))
        return WindowRead.of(window, datetime.now().astimezone())

    @app.post(f"{WINDOWS}/{{window_id}}/close", response_model=WindowRead, tags=["windows"])
    async def close_window(
        window_id: uuid.UUID, body: WindowClose, service: Service, ops: Ops
    ) -> WindowRead:
        """Ops close a window early."""
        await service.windows.close(window_id, body.reason, Actor(kind="ops", id=ops.account_id))
        return WindowRead.of(await service.windows.get(window_id), datetime.now().astimezone())

    # -- applications ---------------------------------------------------------------------

    @app.post(
        BASE, status_code=status.HTTP_201_CREATED, response_model=ApplicationRead, tags=["apply"]
    )
    async def draft(
        body: DraftCreate, request: Request, service: Service, candidate: CurrentCandidate
    ) -> ApplicationRead:
        """第一步: start an application."""
        app_ = await service.applications.draft(
            uuid.UUID(candidate.account_id),
            window_id=body.window_id,
            confirmation_point_id=body.confirmation_point_id,
            plan=body.plan.value,
            major_codes=body.major_codes,
            correlation_id=correlation_id_of(request),
        )
        return ApplicationRead.of(app_)

    @app.get(BASE, response_model=ApplicationList, tags=["apply"])
    async def mine(service: Service, candidate: CurrentCandidate) -> ApplicationList:
        """我的免考申请."""
        apps = await service.applications.mine(uuid.UUID(candidate.account_id))
        return ApplicationList(applications=[ApplicationRead.of(a) for a in apps])

    @app.get(f"{BASE}/{{application_id}}", response_model=ApplicationRead, tags=["apply"])
    async def details(
        application_id: uuid.UUID, service: Service, candidate: CurrentCandidate
    ) -> ApplicationRead:
        """申请详情: status, reasons, per-course results and the timeline."""
        app_, timeline = await service.applications.details(
            uuid.UUID(candidate.account_id), application_id
        )
        catalogue = await catalogue_store.load(service.pool, app_.catalogue_version)
        return ApplicationRead.of(app_, timeline, catalogue)

    @app.post(
        f"{BASE}/{{application_id}}/certificates",
        status_code=status.HTTP_201_CREATED,
        response_model=ApplicationRead,
        tags=["apply"],
    )
    async def add_certificate(
        application_id: uuid.UUID,
        body: CertificateCreate,
        request: Request,
        service: Service,
        candidate: CurrentCandidate,
    ) -> ApplicationRead:
        """新增免考课程: a certificate with its courses, photos and evidence."""
        certificate = CertificateInput(
            certificate_id=uuid.uuid4(),
            kind=body.kind,
            route_id=body.route_id,
            courses=[
                CourseClaim(c.course_code, c.major_code, c.source_course_name) for c in body.courses
            ],
            photo_ids=body.photo_ids,
            degree_ref=body.degree_ref,
            certificate_check_ref=body.certificate_check_ref,
        )
        app_ = await service.applications.add_certificate(
            uuid.UUID(candidate.account_id),
            application_id,
            certificate,
            correlation_id=correlation_id_of(request),
            credential=_bearer_token(request),  # media records the photos' citation with it
        )
        return ApplicationRead.of(app_)

    @app.delete(
        f"{BASE}/{{application_id}}/certificates/{{certificate_id}}",
        response_model=ApplicationRead,
        tags=["apply"],
    )
    async def remove_certificate(
        application_id: uuid.UUID,
        certificate_id: uuid.UUID,
        request: Request,
        service: Service,
        candidate: CurrentCandidate,
    ) -> ApplicationRead:
        """删除课程: remove a certificate and its courses."""
        app_ = await service.applications.remove_certificate(
            uuid.UUID(candidate.account_id),
            application_id,
            certificate_id,
            correlation_id=correlation_id_of(request),
        )
        return ApplicationRead.of(app_)

    @app.post(f"{BASE}/{{application_id}}/submit", response_model=ApplicationRead, tags=["apply"])
    async def submit(
        application_id: uuid.UUID,
        body: SubmitRequest,
        request: Request,
        service: Service,
        candidate: CurrentCandidate,
    ) -> ApplicationRead:
        """提交 with the 承诺书; for a returned application, 重新申请."""
        app_ = await service.applications.submit(
            uuid.UUID(candidate.account_id),
            application_id,
            declaration_accepted=body.declaration_accepted,
            correlation_id=correlation_id_of(request),
        )
        return ApplicationRead.of(app_)

    @app.post(f"{BASE}/{{application_id}}/withdraw", response_model=ApplicationRead, tags=["apply"])
    async def withdraw(
        application_id: uuid.UUID,
        body: WithdrawRequest,
        request: Request,
        service: Service,
        candidate: CurrentCandidate,
    ) -> ApplicationRead:
        """撤回申请."""
        app_ = await service.applications.withdraw(
            uuid.UUID(candidate.account_id),
            application_id,
            reason=body.reason,
            correlation_id=correlation_id_of(request),
        )
        return ApplicationRead.of(app_)

    return app


app = build_app()
