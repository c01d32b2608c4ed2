"""免考申请信息详情 and its print view (打印): the signed-in candidate's own cases only.

    GET /my/applications/{application_id}        details: status, return reason, certificates
                                                 with their courses and photos, per-course
                                                 results, 办件进度, 核查 deadline
    GET /my/applications/{application_id}/print  the A4 print view (print.css, print.js)

Another candidate's application, an unknown id and a malformed id are all the same 404 page:
nothing tells them apart. The presentation reuses the JSON API's `ApplicationRead` (status
label, point and major names, timeline labels); photos are linked through media with the
candidate's token, and a photo that cannot be linked shows a placeholder with the reason.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from application_service.adapters import catalogue_store
from application_service.adapters.evidence import load_evidence
from application_service.adapters.peers import PhotoViewRecord
from application_service.domain.application import ApplicationStatus, ExemptionApplication
from application_service.domain.catalogue import Catalogue, Plan
from application_service.domain.evidence import Evidence
from application_service.domain.windows import ApplicationWindow
from application_service.entrypoints.portal.base import Visitor, VisitorDep, page, service_of
from application_service.entrypoints.portal.centre import identity_peer
from application_service.service_layer.applications import ApplicationNotFound, TimelineEntry
from application_service.service_layer.windows import WindowNotFound
from contracts.application import ApplicationCertificate
from contracts.base import CertificateKind, CourseDecision, CourseOutcome
from contracts.credential import DegreeLevel
from servicekit.peers import PeerRefused, PeerUnavailable

if TYPE_CHECKING:
    from application_service.entrypoints.api import ApplicationRead

# 证书类型: the seed's eight types.
KIND_LABELS = {kind.value: kind.label for kind in CertificateKind}
LEVEL_LABELS = {level.value: level.label for level in DegreeLevel}
EXAM_LABELS = {
    "cet4": "大学英语四级",
    "cet6": "大学英语六级",
    "pets": "全国英语等级考试",
    "ncre": "全国计算机等级考试",
    "nit": "全国计算机应用技术证书考试",
}
PLAN_LABELS = {"old": "旧计划", "new": "新计划"}
STAGE_LABELS = {"confirmation_point": "免考确认点初审", "provincial": "省级复审"}
OUTCOME_LABELS = {CourseOutcome.GRANTED: "同意免考", CourseOutcome.DENIED: "不同意"}
# Who took each step of 办件进度.
STEP_ACTORS = {
    "ApplicationDrafted": "考生",
    "CertificateAdded": "考生",
    "CertificateRemoved": "考生",
    "ApplicationSubmitted": "考生",
    "ApplicationResubmitted": "考生",
    "ApplicationWithdrawn": "考生",
    "ApplicationDecided": "省级复审",
}
NO_MEDIA = "照片服务未配置，暂时无法查看照片"
PHOTO_WAIT = 5.0  # seconds: a slow media service delays the details page no longer
SLOW_MEDIA = "照片服务响应超时，请稍后刷新页面"


@dataclass(frozen=True)
class PhotoView:
    """One certificate photo: its presigned links, or why they could not be made; and how often
    reviewers have been given it (None: media could not say)."""

    number: int
    display: str | None = None
    thumbnail: str | None = None
    original: str | None = None
    problem: str | None = None
    staff_views: int | None = None
    last_viewed_at: datetime | None = None
    last_viewed_by: str | None = None


# who was given a photo, as the candidate is told (by role; who exactly is kept for the audit)
VIEWER_LABELS = {"reviewer": "确认点审核人员", "senior_reviewer": "省级复审人员"}


def viewer_label(roles: tuple[str, ...]) -> str:
    """The candidate's word for the staff who viewed a photo."""
    return next((VIEWER_LABELS[r] for r in roles if r in VIEWER_LABELS), "工作人员")


@dataclass(frozen=True)
class CourseLine:
    """One claimed course and, once decided, its result."""

    code: str
    name: str
    major: str
    source_course_name: str | None
    outcome: str | None = None  # 同意免考 / 不同意
    granted: bool | None = None
    reason: str | None = None


@dataclass(frozen=True)
class CertificateView:
    """One certificate as the candidate reads it."""

    number: int
    kind: str
    route: str
    details: tuple[tuple[str, str], ...]
    courses: tuple[CourseLine, ...]
    photos: tuple[PhotoView, ...]  # linked on the details page only
    photo_count: int


@dataclass(frozen=True)
class Step:
    """One step of 办件进度."""

    label: str
    at: datetime
    who: str
    note: str | None = None


@dataclass(frozen=True)
class CaseView:
    """Everything the details and print pages show of one application."""

    application: ExemptionApplication
    read: ApplicationRead
    plan: str
    certificates: tuple[CertificateView, ...]
    steps: tuple[Step, ...]
    window: ApplicationWindow | None
    editable: bool  # the wizard accepts changes now (draft, or returned and resubmittable)
    return_stage: str | None
    granted: int
    denied: int

    @property
    def status(self) -> ApplicationStatus:
        return self.application.status


def application_id_of(raw: str) -> uuid.UUID:
    """The path's id; a malformed one is as unknown as a missing one (404)."""
    try:
        return uuid.UUID(raw[:64])
    except ValueError:
        raise ApplicationNotFound("malformed application id") from None


def _read(
    application: ExemptionApplication, timeline: list[TimelineEntry], catalogue: Catalogue
) -> ApplicationRead:
    # The API module imports the portal package (install_portal), so its presentation is
    # imported when a page is built, not when this module loads.
    from application_service.entrypoints.api import ApplicationRead

    return ApplicationRead.of(application, timeline, catalogue)


def _certificate_details(
    certificate: ApplicationCertificate, evidence: Evidence
) -> tuple[tuple[str, str], ...]:
    """证书信息: the verified degree, or the certificate check's result."""
    if certificate.degree is not None:
        degree = certificate.degree
        rows = [
            ("院校名称", degree.institution),
            ("专业名称", degree.major_name),
            ("层次", LEVEL_LABELS.get(degree.level.value, degree.level.value)),
            ("毕业年份", str(degree.graduation_year)),
            ("证书编号", degree.certificate_number or "—"),
            ("学信网核验", "本人学历，已验证" if degree.holder_matches_candidate else "已验证"),
        ]
        return tuple(rows)
    check = (
        evidence.checks.get(certificate.certificate_check_ref)
        if certificate.certificate_check_ref
        else None
    )
    if check is None:
        return (("证书核验", "—"),)
    rows = [("考试", EXAM_LABELS.get(check.exam, check.exam))]
    if check.level is not None:
        rows.append(("级别", f"{check.level}级"))
    if check.subject:
        rows.append(("科目", check.subject))
    if check.score is not None:
        rows.append(("成绩", f"{check.score}分"))
    if check.exam_session:
        rows.append(("考试时间", check.exam_session.replace("-", "年", 1) + "月"))
    rows.append(("证书核验", "已通过" if check.verified else "未通过"))
    return tuple(rows)


async def _photo(request: Request, visitor: Visitor, number: int, photo_id: uuid.UUID) -> PhotoView:
    media = service_of(request).media
    if media is None:
        return PhotoView(number, problem=NO_MEDIA)
    try:
        links = await asyncio.wait_for(media.links(visitor.token, photo_id), PHOTO_WAIT)
    except TimeoutError:
        return PhotoView(number, problem=SLOW_MEDIA)
    except PeerRefused as exc:
        return PhotoView(number, problem=exc.message or "照片无法查看")
    except PeerUnavailable as exc:
        return PhotoView(number, problem=exc.message)
    return PhotoView(number, links.display, links.thumbnail, links.original)


async def _views(request: Request, visitor: Visitor) -> list[PhotoViewRecord] | None:
    """Media's record of reviewers given the candidate's photos; None when it cannot say."""
    media = service_of(request).media
    if media is None:
        return None
    try:
        return await asyncio.wait_for(media.views(visitor.token), PHOTO_WAIT)
    except (TimeoutError, PeerRefused, PeerUnavailable):
        return None


def _with_views(
    shown: PhotoView, photo_id: uuid.UUID, views: list[PhotoViewRecord] | None
) -> PhotoView:
    if views is None or shown.display is None:
        return shown
    mine = [v for v in views if v.photo_id == photo_id]  # newest first
    return replace(
        shown,
        staff_views=len(mine),
        last_viewed_at=mine[0].viewed_at if mine else None,
        last_viewed_by=viewer_label(mine[0].roles) if mine else None,
    )


async def certificate_photos(
    request: Request, visitor: Visitor, certificates: tuple[ApplicationCertificate, ...]
) -> list[list[PhotoView]]:
    """Every certificate's photo links and media's record of reviewers' views, asked for
    together."""
    asked = [
        _photo(request, visitor, n, photo_id)
        for certificate in certificates
        for n, photo_id in enumerate(certificate.photo_ids, start=1)
    ]
    shown, views = await asyncio.gather(asyncio.gather(*asked), _views(request, visitor))
    found = iter(shown)
    return [
        [_with_views(next(found), photo_id, views) for photo_id in certificate.photo_ids]
        for certificate in certificates
    ]


def _courses(
    certificate: ApplicationCertificate,
    decisions: Mapping[tuple[str, str], CourseDecision],
    major_labels: Mapping[str, str],
) -> tuple[CourseLine, ...]:
    lines = []
    for course in certificate.courses:
        decision = decisions.get((course.course_code, course.major_code))
        lines.append(
            CourseLine(
                code=course.course_code,
                name=course.course_name,
                major=major_labels.get(course.major_code, course.major_code),
                source_course_name=course.source_course_name,
                outcome=OUTCOME_LABELS[decision.outcome] if decision else None,
                granted=decision.outcome is CourseOutcome.GRANTED if decision else None,
                reason=decision.reason if decision else None,
            )
        )
    return tuple(lines)


def _steps(timeline: list[TimelineEntry], read: ApplicationRead) -> tuple[Step, ...]:
    steps = []
    for entry, shown in zip(timeline, read.timeline, strict=True):
        who = STEP_ACTORS.get(entry.event_type, "系统")
        note: str | None = None
        payload: dict[str, Any] = entry.payload
        if entry.event_type == "ApplicationReturnedToCandidate":
            who = STAGE_LABELS.get(str(payload.get("stage")), "审核")
            note = f"退回原因：{payload.get('reason', '')}"
        elif entry.event_type in ("ApplicationSubmitted", "ApplicationResubmitted"):
            note = f"第{payload.get('submission_number', 1)}次提交"
        elif entry.event_type == "ApplicationWithdrawn" and payload.get("reason"):
            note = f"撤回原因：{payload['reason']}"
        steps.append(Step(shown.label, shown.occurred_at, who, note))
    return tuple(steps)


def _editable(application: ExemptionApplication, window: ApplicationWindow | None) -> bool:
    if window is None:
        return False
    now = datetime.now(UTC)
    if application.status is ApplicationStatus.DRAFT:
        return window.accepting_applications(now)
    if application.status is ApplicationStatus.RETURNED:
        return window.accepting_resubmissions(now)
    return False


async def case_view(
    request: Request, visitor: Visitor, raw_id: str, *, with_photos: bool
) -> CaseView:
    """The visitor's application `raw_id` for the pages (ApplicationNotFound otherwise)."""
    service = service_of(request)
    application, timeline = await service.applications.details(
        visitor.candidate_id, application_id_of(raw_id)
    )
    catalogue = await catalogue_store.load(service.pool, application.catalogue_version)
    read = _read(application, timeline, catalogue)
    try:
        window: ApplicationWindow | None = await service.windows.get(application.window_id)
    except WindowNotFound:
        window = None
    async with service.pool.acquire() as conn:
        evidence = await load_evidence(conn, visitor.candidate_id)
    photos = (
        await certificate_photos(request, visitor, application.certificates)
        if with_photos
        else [[] for _ in application.certificates]
    )
    decisions = {(d.course_code, d.major_code): d for d in application.decisions}
    plan = Plan(application.plan.value)
    major_labels = {
        code: major.label
        for code in application.major_codes
        if (major := catalogue.major(code, plan)) is not None
    }
    certificates = tuple(
        CertificateView(
            number=n,
            kind=KIND_LABELS.get(c.kind.value, c.kind.value),
            route=route.name if (route := catalogue.route(c.route_id)) else c.route_id,
            details=_certificate_details(c, evidence),
            courses=_courses(c, decisions, major_labels),
            photos=tuple(shown),
            photo_count=len(c.photo_ids),
        )
        for n, (c, shown) in enumerate(zip(application.certificates, photos, strict=True), 1)
    )
    last_return = application.last_return
    return CaseView(
        application=application,
        read=read,
        plan=PLAN_LABELS.get(application.plan.value, application.plan.value),
        certificates=certificates,
        steps=_steps(timeline, read),
        window=window,
        editable=_editable(application, window),
        return_stage=STAGE_LABELS.get(last_return.stage.value) if last_return else None,
        granted=sum(d.outcome is CourseOutcome.GRANTED for d in application.decisions),
        denied=sum(d.outcome is CourseOutcome.DENIED for d in application.decisions),
    )


def install_cases(app: FastAPI) -> None:
    """Add the case pages: details and print view."""

    @app.get("/my/applications/{application_id}", include_in_schema=False)
    async def details(application_id: str, request: Request, visitor: VisitorDep) -> Response:
        """免考申请信息详情."""
        case = await case_view(request, visitor, application_id, with_photos=True)
        return page(request, visitor, "details.html", {"case": case})

    @app.get("/my/applications/{application_id}/print", include_in_schema=False)
    async def print_view(application_id: str, request: Request, visitor: VisitorDep) -> Response:
        """打印: the application on one A4 sheet, with the candidate's (masked) identity."""
        case = await case_view(request, visitor, application_id, with_photos=False)
        profile = await identity_peer(request).profile(visitor.token)
        return page(
            request,
            visitor,
            "print.html",
            {"case": case, "profile": profile, "printed_at": datetime.now(UTC)},
        )  # fmt: skip
