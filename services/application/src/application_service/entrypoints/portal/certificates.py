"""新增免考课程 (wizard step 2): choose the certificate type and route, fill in its details, tick
the courses it may exempt, upload its photo; the aggregate then judges it.

The type and route are chosen with plain GET links (no JavaScript needed); the details form posts
the photo (multipart) and, for exam certificates, the certificate number and the candidate's ID
number, which go once to credential-verify's NEEA check and are never stored here. The photo
and check reach this service's evidence projection through Kafka a moment later: the page waits
for them (bounded) and, if they are still on their way, keeps their ids in the form so that
pressing 确定 again neither uploads nor checks twice (ADR 0012).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from application_service.adapters.peers import VerifiedDegree
from application_service.domain import rules
from application_service.domain.application import (
    EDITABLE_STATUSES,
    CertificateInput,
    CourseClaim,
    ExemptionApplication,
)
from application_service.domain.catalogue import (
    Catalogue,
    Major,
    Plan,
    Route,
    normalise_course_name,
)
from application_service.domain.errors import ApplicationError
from application_service.entrypoints.portal.base import (
    Visitor,
    VisitorDep,
    page,
    redirect,
    service_of,
    text,
)
from application_service.entrypoints.portal.wizard import KIND_LABELS, load_own
from contracts.base import CertificateKind
from servicekit.context import correlation_id_of
from servicekit.peers import PeerRefused, PeerUnavailable

MAX_PHOTO_BYTES = 3 * 1024 * 1024
PHOTO_TYPES = {"image/jpeg", "image/png"}
EVIDENCE_WAIT_SECONDS = 8.0
# The exam to query when a route of the rule table names none (demo routes of a kind).
KIND_EXAMS = {
    "cet4_or_above": "cet4", "pets2_or_above": "pets", "pets3_or_above": "pets",
    "ncre1_or_above": "ncre", "ncre2_or_above": "ncre", "nit_management_it": "nit",
    "nit_basics_plus_one": "nit",
}  # fmt: skip
SYNCING = "照片和证书核验结果正在同步，请稍候几秒后再点击“确定”（无需重新上传）"


@dataclass
class CourseOption:
    """A course the route may exempt under one of the application's majors."""

    major: Major
    code: str
    name: str
    credits: float | None
    source_default: str  # degree route: the transcript line of the same name, if any

    @property
    def key(self) -> str:
        return f"{self.major.code}:{self.code}"


def _course_options(
    catalogue: Catalogue,
    application: ExemptionApplication,
    route: Route,
    facts: Any,
    degree: VerifiedDegree | None,
) -> list[CourseOption]:
    plan = Plan(application.plan.value)
    lines = {normalise_course_name(name): name for name in transcript_names(degree)}
    claimed = set(application.course_codes)
    options = []
    for code in application.major_codes:
        major = catalogue.major(code, plan)
        if major is None:
            continue
        for course_code in rules.allowed_courses(route, major, facts):
            course = major.course(course_code)
            if course is None or course_code in claimed:
                continue
            default = lines.get(course.comparable_name, "") if degree else ""
            options.append(CourseOption(major, course.code, course.name, course.credits, default))
    return options


def transcript_names(degree: VerifiedDegree | None) -> list[str]:
    """The course names of a verified degree's transcript (what the candidate ticks √)."""
    if degree is None:
        return []
    return [str(line["name"]) for line in degree.transcript if line.get("name")]


async def _degrees(request: Request, visitor: Visitor) -> tuple[list[VerifiedDegree], str | None]:
    peer = service_of(request).credential
    if peer is None:
        return [], "学历验证服务未配置"
    try:
        return await peer.degrees(visitor.token), None
    except PeerUnavailable as exc:
        return [], exc.message


async def _form_context(
    request: Request,
    visitor: Visitor,
    application: ExemptionApplication,
    catalogue: Catalogue,
    kind: str,
    route_id: str,
    degree_ref: str,
) -> dict[str, Any]:
    """What the choice and details pages show for this kind, route and degree."""
    context: dict[str, Any] = {
        "application": application,
        "kinds": KIND_LABELS,
        "kind": kind if kind in KIND_LABELS else "",
        "routes": [],
        "route": None,
        "degrees": [],
        "degree": None,
        "options": [],
        "problem": None,
        "values": {},
        "errors": {},
        "photo_id": "",
        "check_id": "",
    }
    if not context["kind"]:
        return context
    routes = catalogue.routes_of_kind(kind)
    context["routes"] = routes
    route = catalogue.route(route_id) if route_id else (routes[0] if len(routes) == 1 else None)
    if route is None or route.kind != kind:
        return context
    context["route"] = route
    degree = None
    if route.is_degree_route:
        degrees, problem = await _degrees(request, visitor)
        context["degrees"], context["problem"] = degrees, problem
        chosen = [d for d in degrees if str(d.degree_ref) == degree_ref]
        degree = chosen[0] if chosen else (degrees[0] if len(degrees) == 1 else None)
        context["degree"] = degree
        context["transcript"] = transcript_names(degree)
        if degree is None:
            return context
    facts = await service_of(request).applications.candidate_facts(visitor.candidate_id)
    context["options"] = _course_options(catalogue, application, route, facts, degree)
    return context


def install_certificates(app: FastAPI) -> None:
    """The 新增免考课程 routes."""

    @app.get("/apply/{application_id}/certificates/new", include_in_schema=False)
    async def new(application_id: uuid.UUID, request: Request, visitor: VisitorDep) -> Response:
        """请选择证书 → its route → its details, courses and photo."""
        application, catalogue = await load_own(request, visitor, application_id)
        if application.status not in EDITABLE_STATUSES:
            return redirect(request, f"/my/applications/{application_id}", visitor.session)
        query = request.query_params
        context = await _form_context(
            request, visitor, application, catalogue,
            query.get("kind", ""), query.get("route", ""), query.get("degree", ""),
        )  # fmt: skip
        return page(request, visitor, "certificate_new.html", context)

    @app.post("/apply/{application_id}/certificates", include_in_schema=False)
    async def add(application_id: uuid.UUID, request: Request, visitor: VisitorDep) -> Response:
        """确定: check, upload, wait for the evidence, add."""
        service = service_of(request)
        application, catalogue = await load_own(request, visitor, application_id)
        if application.status not in EDITABLE_STATUSES:
            return redirect(request, f"/my/applications/{application_id}", visitor.session)
        form = await request.form()
        kind, route_id = text(form, "kind", 40), text(form, "route", 64)
        context = await _form_context(
            request, visitor, application, catalogue, kind, route_id, text(form, "degree", 40)
        )
        route: Route | None = context["route"]
        if route is None:
            context["problem"] = "请先选择证书类型"
            return page(request, visitor, "certificate_new.html", context, status=422)
        values = {
            "certificate_number": text(form, "certificate_number", 32),
            "courses": [v for v in form.getlist("course") if isinstance(v, str)][:40],
        }
        context["values"] = values
        errors: dict[str, str] = {}
        options = {o.key: o for o in context["options"]}
        chosen = [options[key] for key in values["courses"] if key in options]
        if not chosen:
            errors["courses"] = "请选择免考课程"
        claims = []
        for option in chosen:
            source = text(form, f"source-{option.key}", 200) if route.is_degree_route else ""
            if route.is_degree_route and not source:
                errors["courses"] = f"请为 {option.code} {option.name} 选择成绩单上对应的课程"
            claims.append(CourseClaim(option.code, option.major.code, source or None))
        check_id = _uuid(text(form, "check_id", 40))
        photo_id = _uuid(text(form, "photo_id", 40))
        id_number = text(form, "id_number", 18)
        if not route.is_degree_route and check_id is None:
            if not values["certificate_number"]:
                errors["certificate_number"] = "请输入证书编号（准考证号）"
            if not id_number:
                errors["id_number"] = "请输入本人身份证号，用于向考试机构核验证书"
        upload = form.get("photo")
        has_file = isinstance(upload, UploadFile) and bool(upload.filename)
        if photo_id is None and not has_file:
            errors["photo"] = "请上传证书照片"
        if errors:
            context["errors"] = errors
            return page(request, visitor, "certificate_new.html", context, status=422)

        degree: VerifiedDegree | None = context["degree"]
        if route.is_degree_route and degree is None:
            context["problem"] = "请先选择已验证的学历"
            return page(request, visitor, "certificate_new.html", context, status=422)
        try:
            if not route.is_degree_route and check_id is None:
                check_id = await _check(request, visitor, route, values, id_number, errors)
            if photo_id is None and isinstance(upload, UploadFile):
                photo_id = await _upload(request, visitor, upload, errors)
        except PeerUnavailable as exc:
            context["problem"] = exc.message
        context["check_id"], context["photo_id"] = str(check_id or ""), str(photo_id or "")
        if errors or context["problem"] or photo_id is None:
            context["errors"] = errors
            return page(request, visitor, "certificate_new.html", context, status=422)

        arrived = await service.applications.evidence_arrived(
            visitor.candidate_id, photo_ids=[photo_id], check_id=check_id,
            degree_ref=degree.degree_ref if degree else None, timeout=EVIDENCE_WAIT_SECONDS,
        )  # fmt: skip
        if not arrived:
            context["problem"] = (
                "照片和证书核验结果正在同步，请稍候几秒后再点击“确定”（无需重新上传）"
            )
            return page(request, visitor, "certificate_new.html", context, status=409)
        certificate = CertificateInput(
            certificate_id=uuid.uuid4(),
            kind=CertificateKind(route.kind),
            route_id=route.route_id,
            courses=claims,
            photo_ids=[photo_id],
            degree_ref=degree.degree_ref if degree else None,
            certificate_check_ref=check_id,
        )
        try:
            await service.applications.add_certificate(
                visitor.candidate_id, application_id, certificate,
                correlation_id=correlation_id_of(request), credential=visitor.token,
            )  # fmt: skip
        except ApplicationError as exc:
            if exc.status == 404:
                raise
            context["problem"] = exc.message
            return page(request, visitor, "certificate_new.html", context, status=exc.status)
        return redirect(request, f"/apply/{application_id}?done=added", visitor.session)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


async def _check(
    request: Request,
    visitor: Visitor,
    route: Route,
    values: dict[str, Any],
    id_number: str,
    errors: dict[str, str],
) -> uuid.UUID | None:
    """证书核验 through credential-verify; refusals go next to their field."""
    peer = service_of(request).credential
    exam = route.exam or KIND_EXAMS.get(route.kind)
    if peer is None or exam is None:
        errors["certificate_number"] = "该证书类型暂不支持在线核验"
        return None
    try:
        check = await peer.check_certificate(
            visitor.token, exam, values["certificate_number"], id_number.upper()
        )
    except PeerRefused as exc:
        field = "id_number" if "id_number" in exc.code else "certificate_number"
        errors[field] = exc.message
        return None
    return check.check_id  # verified or not: the rules decide (an unverifiable one goes to review)


async def _upload(
    request: Request, visitor: Visitor, upload: UploadFile, errors: dict[str, str]
) -> uuid.UUID | None:
    """The photo to media, as it came; media's refusals go next to the photo field."""
    peer = service_of(request).media
    if peer is None:
        errors["photo"] = "照片服务未配置"
        return None
    data = await upload.read(MAX_PHOTO_BYTES + 1)
    if len(data) > MAX_PHOTO_BYTES:
        errors["photo"] = "照片文件应小于 3M"
        return None
    content_type = upload.content_type or "application/octet-stream"
    try:
        photo = await peer.upload(visitor.token, data, upload.filename or "photo.jpg", content_type)
    except PeerRefused as exc:
        errors["photo"] = exc.message
        return None
    return photo.photo_id


__all__ = ["install_certificates"]
