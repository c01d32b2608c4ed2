"""免考申请 as the seed's wizard: (1) confirmation point, plan, majors → (2) certificates and
their courses → (3) the confirmation page with the declaration (承诺书) → submit.

A returned application reopens here with its previous content and the reviewer's reason
(重新申请). Every step is a plain form; the service layer enforces every rule and its refusals
are shown where they belong.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from application_service.adapters import catalogue_store
from application_service.adapters.peers import Profile
from application_service.domain.application import EDITABLE_STATUSES, ExemptionApplication
from application_service.domain.catalogue import Catalogue, Level, Plan
from application_service.domain.errors import ApplicationError
from application_service.domain.windows import ApplicationWindow
from application_service.entrypoints.portal.base import (
    Visitor,
    VisitorDep,
    page,
    redirect,
    service_of,
    text,
)
from application_service.entrypoints.portal.cases import certificate_photos
from servicekit.context import correlation_id_of

MAX_MAJORS = 2
KIND_LABELS = {
    "degree": "学历证书（须将成绩单上免考所使用的课程用“√”标出）",
    "cet4_or_above": "全国大学英（日）语等级考试四级及以上证书或成绩单",
    "pets2_or_above": "全国公共英语等级考试PETS二级及以上证书",
    "pets3_or_above": "全国公共英语等级考试PETS三级及以上证书",
    "ncre1_or_above": "全国计算机等级考试（NCRE）一级及以上合格证书",
    "ncre2_or_above": "全国计算机等级考试（NCRE）二级及以上合格证书",
    "nit_management_it": "全国计算机应用技术证书（NIT）《管理系统中信息技术的应用》模块证书",
    "nit_basics_plus_one": "全国计算机应用技术证书（NIT）《计算机应用基础》模块证书与另一模块证书",
}
PLAN_LABELS = {"old": "旧计划课程", "new": "新计划课程"}
DECLARATION = (
    "本人承诺：所提交的证书、成绩单及照片真实、有效，与原件一致；所填信息准确无误。"
    "如有弄虚作假，本人自愿承担取消免考资格及相应的一切后果。"
)


async def _active(request: Request) -> tuple[Catalogue | None, ApplicationWindow | None]:
    service = service_of(request)
    version = await catalogue_store.active_version(service.pool)
    catalogue = await catalogue_store.load(service.pool, version) if version else None
    return catalogue, await service.windows.current()


async def _editable(request: Request, visitor: Visitor) -> ExemptionApplication | None:
    """The candidate's application that is still being written (draft or returned)."""
    for application in await service_of(request).applications.mine(visitor.candidate_id):
        if application.status in EDITABLE_STATUSES:
            return application
    return None


async def load_own(
    request: Request, visitor: Visitor, application_id: uuid.UUID
) -> tuple[ExemptionApplication, Catalogue]:
    """The candidate's own application (404 for anyone else's) and its catalogue."""
    service = service_of(request)
    application, _ = await service.applications.details(visitor.candidate_id, application_id)
    return application, await catalogue_store.load(service.pool, application.catalogue_version)


async def _profile(request: Request, visitor: Visitor) -> Profile | None:
    """The candidate's profile for the page header (None when identity is not wired)."""
    peer = service_of(request).identity_peer
    return await peer.profile(visitor.token) if peer is not None else None


def _step1_context(
    catalogue: Catalogue,
    window: ApplicationWindow,
    values: dict[str, Any],
    errors: dict[str, str],
) -> dict[str, Any]:
    plan = Plan(values.get("plan") or Plan.OLD.value)
    return {
        "window": window,
        "points": sorted(catalogue.points.values(), key=lambda p: p.point_id),
        "plans": PLAN_LABELS,
        "plan": plan.value,
        "junior": catalogue.majors_of(plan, Level.JUNIOR_COLLEGE),
        "bachelor": catalogue.majors_of(plan, Level.BACHELOR),
        "values": values,
        "chosen": set(values.get("majors", [])),
        "errors": errors,
        "max_majors": MAX_MAJORS,
    }


def overview_context(application: ExemptionApplication, catalogue: Catalogue) -> dict[str, Any]:
    """What step 2 and the confirmation page show of an application."""
    plan = Plan(application.plan.value)
    majors = [m for code in application.major_codes if (m := catalogue.major(code, plan))]
    point = catalogue.point(application.confirmation_point_id)
    names: dict[str, str] = {}
    for major in majors:
        for course in major.courses:
            names.setdefault(course.code, course.name)
    return {
        "application": application,
        "point": point,
        "plan_label": PLAN_LABELS.get(application.plan.value, application.plan.value),
        "majors": majors,
        "course_names": names,
        "kinds": KIND_LABELS,
        "routes": catalogue.routes,
    }


def install_wizard(app: FastAPI) -> None:
    """The wizard's routes."""

    @app.get("/apply", include_in_schema=False)
    async def start(request: Request, visitor: VisitorDep) -> Response:
        """第一步: 免考确认点, 新旧计划, 专业; or the application already being written."""
        current = await _editable(request, visitor)
        if current is not None:
            return redirect(request, f"/apply/{current.application_id}", visitor.session)
        catalogue, window = await _active(request)
        now = datetime.now(UTC)
        if catalogue is None or window is None or not window.accepting_applications(now):
            stage = window.stage(now).label if window else "未开放"
            return page(request, visitor, "apply_closed.html", {"window": window, "stage": stage})
        plan = request.query_params.get("plan", Plan.OLD.value)
        values = {"plan": plan if plan in PLAN_LABELS else Plan.OLD.value}
        return page(
            request, visitor, "apply_step1.html", _step1_context(catalogue, window, values, {})
        )

    @app.post("/apply", include_in_schema=False)
    async def create(request: Request, visitor: VisitorDep) -> Response:
        form = await request.form()
        catalogue, window = await _active(request)
        if catalogue is None or window is None:
            return redirect(request, "/apply", visitor.session)
        values: dict[str, Any] = {
            "point": text(form, "point", 6),
            "plan": text(form, "plan", 3),
            "majors": [v for v in form.getlist("majors") if isinstance(v, str)][:10],
        }
        errors: dict[str, str] = {}
        if catalogue.point(values["point"]) is None:
            errors["point"] = "请选择免考确认点"
        if values["plan"] not in PLAN_LABELS:
            errors["plan"] = "请选择新旧计划"
            values["plan"] = Plan.OLD.value
        if not values["majors"]:
            errors["majors"] = "请选择免考申请专业"
        elif len(values["majors"]) > MAX_MAJORS:
            errors["majors"] = f"最多选择{MAX_MAJORS}个专业"
        if not errors:
            try:
                application = await service_of(request).applications.draft(
                    visitor.candidate_id,
                    window_id=window.window_id,
                    confirmation_point_id=values["point"],
                    plan=values["plan"],
                    major_codes=values["majors"],
                    correlation_id=correlation_id_of(request),
                )
            except ApplicationError as exc:
                if exc.code == "application.open_application_exists":
                    current = await _editable(request, visitor)
                    if current is not None:
                        return redirect(
                            request, f"/apply/{current.application_id}", visitor.session
                        )
                errors["form"] = exc.message
            else:
                return redirect(request, f"/apply/{application.application_id}", visitor.session)
        context = _step1_context(catalogue, window, values, errors)
        return page(request, visitor, "apply_step1.html", context, status=422)

    @app.get("/apply/{application_id}", include_in_schema=False)
    async def certificates(
        application_id: uuid.UUID, request: Request, visitor: VisitorDep
    ) -> Response:
        """第二步: the certificates and their courses (免考申请证书课程填报)."""
        application, catalogue = await load_own(request, visitor, application_id)
        if application.status not in EDITABLE_STATUSES:
            return redirect(request, f"/my/applications/{application_id}", visitor.session)
        context = overview_context(application, catalogue)
        context["photos"] = await certificate_photos(request, visitor, application.certificates)
        context["done"] = {"removed": "已删除该证书及其课程", "added": "证书及免考课程已添加"}.get(
            request.query_params.get("done", "")
        )
        return page(request, visitor, "apply_step2.html", context)

    @app.post(
        "/apply/{application_id}/certificates/{certificate_id}/delete", include_in_schema=False
    )
    async def remove(
        application_id: uuid.UUID, certificate_id: uuid.UUID, request: Request, visitor: VisitorDep
    ) -> Response:
        """删除课程: a certificate and its courses."""
        try:
            await service_of(request).applications.remove_certificate(
                visitor.candidate_id, application_id, certificate_id,
                correlation_id=correlation_id_of(request),
            )  # fmt: skip
        except ApplicationError as exc:
            if exc.status == 404:
                raise
            application, catalogue = await load_own(request, visitor, application_id)
            context = {**overview_context(application, catalogue), "problem": exc.message}
            return page(request, visitor, "apply_step2.html", context, status=exc.status)
        return redirect(request, f"/apply/{application_id}?done=removed", visitor.session)

    @app.get("/apply/{application_id}/confirm", include_in_schema=False)
    async def confirm(application_id: uuid.UUID, request: Request, visitor: VisitorDep) -> Response:
        """第三步: 免考申请信息确认页 with the declaration."""
        application, catalogue = await load_own(request, visitor, application_id)
        if application.status not in EDITABLE_STATUSES:
            return redirect(request, f"/my/applications/{application_id}", visitor.session)
        profile = await _profile(request, visitor)
        photos = await certificate_photos(request, visitor, application.certificates)
        context = {**overview_context(application, catalogue), "profile": profile,
                   "declaration": DECLARATION, "errors": {}, "photos": photos}  # fmt: skip
        return page(request, visitor, "apply_confirm.html", context)

    @app.post("/apply/{application_id}/submit", include_in_schema=False)
    async def submit(application_id: uuid.UUID, request: Request, visitor: VisitorDep) -> Response:
        """提交 (or 重新申请 after a return)."""
        form = await request.form()
        accepted = text(form, "declaration", 3) == "yes"
        problem: str | None = None
        errors: dict[str, str] = {}
        if not accepted:
            errors["declaration"] = "请阅读并勾选承诺书"
        else:
            try:
                await service_of(request).applications.submit(
                    visitor.candidate_id, application_id, declaration_accepted=True,
                    correlation_id=correlation_id_of(request),
                )  # fmt: skip
            except ApplicationError as exc:
                if exc.status == 404:
                    raise
                problem = exc.message
            else:
                return redirect(request, f"/my/applications/{application_id}?done=submitted",
                                visitor.session)  # fmt: skip
        application, catalogue = await load_own(request, visitor, application_id)
        profile = await _profile(request, visitor)
        context = {**overview_context(application, catalogue), "profile": profile,
                   "declaration": DECLARATION, "errors": errors, "problem": problem}  # fmt: skip
        return page(request, visitor, "apply_confirm.html", context, status=422 if errors else 409)


__all__ = ["KIND_LABELS", "install_wizard", "load_own", "overview_context"]
