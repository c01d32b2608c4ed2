"""The reviewer UI (审核工作台): server-rendered Chinese pages for staff, on the same service layer
as the JSON API.

Staff log in through identity (username, password, captcha); identity's tokens live in an
AES-GCM sealed, HttpOnly, SameSite cookie with a 30-minute idle timeout, and are renewed with the
refresh token when they run out. Every form carries a CSRF token; the pages work without
JavaScript, and a small script of our own adds keyboard shortcuts and the photo viewer.

Routes: /login, /logout, /queue (待审列表), /queue/next (下一件), /cases/{id} (办件详情 with
evidence, decision forms and the audit trail) and its actions claim, release, initial-review,
return and approve.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from contracts.base import CertificateKind, CourseOutcome, ReviewStage
from contracts.credential import DegreeLevel
from eventkit.text import ascii_int, clean_text
from review_service import bootstrap
from review_service.adapters.evidence import CertificateEvidence, evidence_for
from review_service.adapters.media import MediaLinks, PhotoLinks
from review_service.adapters.people import CandidateCard, candidate_card, staff_names
from review_service.adapters.queue import CaseStatus as QueueStatus
from review_service.adapters.queue import ClaimFilter, QueueFilters, QueuePageRequest, QueueSort
from review_service.domain.access import Reviewer, may_act
from review_service.domain.case import ReviewCase, Verdict
from review_service.domain.errors import CHINA_TZ, ReviewError, staff_label
from review_service.domain.templates import DENIAL_REASONS, RETURN_REASONS, template
from review_service.service_layer.queue import claim_next, queue_page
from review_service.settings import ReviewSettings
from servicekit.auth import Principal, TokenVerifier
from servicekit.errors import ErrorView
from servicekit.identity_client import (
    IdentityClient,
    TokenKeeper,
)
from servicekit.types import RANGE_MESSAGE, in_sane_range
from servicekit.web import (
    EndedSessions,
    SecurityHeaders,
    Session,
    WebSessions,
    csrf_token,
)
from servicekit.webui import (
    LoginPages,
    install_pages,
    page_templates,
    render,
    require_signed_in,
    see_other,
    staff_login,
    web_sessions,
)

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
COOKIE = "zk_review"
REVIEW_ROLES = frozenset({"reviewer", "senior_reviewer"})
MAX_TEXT = 500

DONE_MESSAGES = {
    "claimed": "已领取该申请，请在领取有效期内办理",
    "renewed": "领取已续期",
    "released": "已释放，该申请已回到待审列表",
    "initial": "初审意见已提交，申请已转省级复审",
    "returned": "已退回考生，考生修改后可重新提交",
    "approved": "复审结果已确认，审核结果已发布",
}
STATUS_TABS = (
    (QueueStatus.AWAITING_POINT, "待初审"),
    (QueueStatus.AWAITING_PROVINCE, "待复审"),
    (QueueStatus.RETURNED, "已退回"),
    (QueueStatus.DECIDED, "已办结"),
    (QueueStatus.WITHDRAWN, "已撤回"),
)
STATUS_LABELS = dict(STATUS_TABS)
SORT_LABELS = {
    QueueSort.WAITING: "等待最久优先",
    QueueSort.DEADLINE: "截止时间最近优先",
    QueueSort.CASE_NUMBER: "按办件编号",
    QueueSort.RESUBMISSIONS: "重新申请次数最多优先",
}
CLAIM_LABELS = {"any": "全部", "unclaimed": "未领取", "claimed": "已领取", "mine": "我领取的"}
CLAIM_FILTERS: dict[str, ClaimFilter] = {
    "any": "any",
    "unclaimed": "unclaimed",
    "claimed": "claimed",
    "mine": "mine",
}
KIND_LABELS = {kind.value: kind.label for kind in CertificateKind}
LEVEL_LABELS = {level.value: level.label for level in DegreeLevel}
EVENT_LABELS = {
    "ApplicationSubmitted": "考生提交申请",
    "ApplicationResubmitted": "考生重新提交申请",
    "ApplicationWithdrawn": "考生撤回申请",
    "ReviewClaimed": "领取办理",
    "ReviewReleased": "释放",
    "InitialReviewCompleted": "确认点初审完成，转省级复审",
    "ApplicationReturned": "退回考生",
    "ApplicationApproved": "省级复审完成，发布审核结果",
}
STAGE_LABELS = {ReviewStage.CONFIRMATION_POINT: "确认点初审", ReviewStage.PROVINCIAL: "省级复审"}
FLAG_MESSAGES = {
    "unknown": "核验结果尚未同步到审核系统，请稍后刷新",
    "mismatch": "核验记录不属于该考生，请勿采信，并报告系统管理员",
    "no_reference": "该证书未关联核验记录",
    "withdrawn": "学信网授权已过期，该核验结果不能作为依据",
    "check_failed": "证书核验未通过",
}
MATCH_LABELS = {
    "matched": "成绩单中有此课程",
    "missing": "成绩单中未找到此课程",
    "not_named": "未指明成绩单课程",
    "no_degree": "学历未核验，无法比对",
    "not_applicable": "",
}


# --- presentation helpers ------------------------------------------------------------------


def qs(params: Mapping[str, str], **changes: str) -> str:
    """A query string of `params` with `changes`; empty values are left out."""
    merged = {k: v for k, v in {**params, **changes}.items() if v}
    return f"?{urlencode(merged)}" if merged else ""


def _templates() -> Jinja2Templates:
    return page_templates(
        WEB_DIR / "templates",
        KIND_LABELS=KIND_LABELS,
        LEVEL_LABELS=LEVEL_LABELS,
        STATUS_LABELS={k.value: v for k, v in STATUS_LABELS.items()},
        EVENT_LABELS=EVENT_LABELS,
        FLAG_MESSAGES=FLAG_MESSAGES,
        MATCH_LABELS=MATCH_LABELS,
        qs=qs,
    )


@dataclass
class ReviewWeb:
    """The UI's parts: sessions, the token keeper, identity and media clients, templates."""

    sessions: WebSessions
    keeper: TokenKeeper
    identity: IdentityClient
    media: MediaLinks
    ended: EndedSessions
    templates: Jinja2Templates = field(default_factory=_templates)


def make_web(service: bootstrap.Review, verifier: TokenVerifier) -> ReviewWeb:
    """The UI's parts for a wired service."""
    settings = service.settings
    if service.identity is None or service.media is None:
        raise RuntimeError("the reviewer UI needs the service wired with its HTTP clients")
    sessions = web_sessions(settings, cookie_name=COOKIE)
    ended = EndedSessions(service.pool, schema=bootstrap.WEB_SCHEMA, max_age=sessions.codec.max_age)
    keeper = TokenKeeper(verifier, service.identity)
    return ReviewWeb(sessions, keeper, service.identity, service.media, ended)


# --- who is at the desk ----------------------------------------------------------------------


@dataclass
class Desk:
    """The signed-in reviewer of this request."""

    principal: Principal
    reviewer: Reviewer
    session: Session
    token: str
    name: str

    @property
    def csrf(self) -> str:
        return csrf_token(self.session)

    @property
    def role_label(self) -> str:
        if self.reviewer.is_senior:
            return "省级复审"
        return "确认点初审 · " + "、".join(sorted(self.reviewer.points))


def _web(request: Request) -> ReviewWeb:
    web: ReviewWeb = request.app.state.web
    return web


def _service(request: Request) -> bootstrap.Review:
    service: bootstrap.Review = request.app.state.review
    return service


def reviewer_of(principal: Principal) -> Reviewer:
    """The review domain's view of a verified staff token."""
    return Reviewer(
        staff_id=uuid.UUID(principal.account_id),
        roles=frozenset(principal.roles),
        points=principal.confirmation_points,
    )


class NotAReviewer(ReviewError):
    """A staff account without a reviewer role (ops) at the reviewer UI."""

    code = "review.not_a_reviewer"
    status = 403
    default_message = "该账号不是审核人员，无法使用审核工作台"


async def current_desk(request: Request) -> Desk:
    """The signed-in reviewer (tokens renewed as needed); a 303 to /login otherwise.

    Unsafe methods must carry the session's CSRF token.
    """
    web = _web(request)
    signed = await require_signed_in(request, web.sessions, web.keeper, web.ended)
    principal = signed.principal
    if not principal.is_staff or not principal.has_any_role(*REVIEW_ROLES):
        raise NotAReviewer(f"roles {sorted(principal.roles)} at the reviewer UI")
    reviewer = reviewer_of(principal)
    async with _service(request).pool.acquire() as conn:
        names = await staff_names(conn, [reviewer.staff_id])
    name = names.get(reviewer.staff_id, staff_label(reviewer.staff_id))
    desk = Desk(principal, reviewer, signed.session, signed.access_token, name)
    request.state.desk = desk
    return desk


DeskDep = Annotated[Desk, Depends(current_desk)]


def page(
    request: Request,
    desk: Desk | None,
    name: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    session: Session | None = None,
) -> Response:
    """Render a template and write the (renewed) session cookie."""
    web = _web(request)
    idle = int(_service(request).settings.idle_minutes)
    return render(
        web.templates, web.sessions, request, name,
        {"desk": desk, "idle_minutes": idle, **context},
        session=session or (desk.session if desk else None), status=status,
    )  # fmt: skip


def redirect(request: Request, desk: Desk, url: str) -> Response:
    """303 to `url`, with the renewed session."""
    return see_other(_web(request).sessions, url, desk.session)


def owns(path: str) -> bool:
    """The UI's paths (the rest is the JSON API, health and metrics)."""
    return path in ("/", "/login", "/logout") or path.startswith(("/queue", "/cases/"))


def error_page(request: Request, view: ErrorView) -> Response:
    """An error of one of the UI's pages, as a Chinese page with its code."""
    desk: Desk | None = getattr(request.state, "desk", None)
    return page(request, desk, "error.html", {"error": view}, status=view.status)


# --- forms -----------------------------------------------------------------------------------


def _text(form: FormData, name: str, limit: int = MAX_TEXT) -> str:
    value = form.get(name)
    return clean_text(value)[: limit + 1] if isinstance(value, str) else ""


def _submission(form: FormData) -> int:
    text = _text(form, "submission_number", 6)
    number = ascii_int(text)
    if number is None or number < 1:
        raise FormProblem("submission_number", "页面信息不完整，请刷新后重试")
    return number


class FormProblem(Exception):
    """A form field a reviewer must fix; shown next to it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class DecisionForm:
    """The per-course verdicts (and note or objection deadline) as entered, with their errors."""

    verdicts: list[Verdict]
    values: dict[str, str]
    errors: dict[str, str]
    note: str | None = None
    objection_deadline: date | None = None


def read_decisions(form: FormData, case: ReviewCase, *, final: bool) -> DecisionForm:
    """Every course needs 同意免考 or 不同意; 不同意 needs a reason (a template or free text)."""
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    verdicts: list[Verdict] = []
    for course in case.courses:
        key = f"{course.major_code}-{course.course_code}"
        outcome = _text(form, f"outcome-{key}", 20)
        reason = _text(form, f"reason-{key}")
        values[f"outcome-{key}"], values[f"reason-{key}"] = outcome, reason
        if outcome not in (CourseOutcome.GRANTED.value, CourseOutcome.DENIED.value):
            errors[f"outcome-{key}"] = "请选择同意免考或不同意"
            continue
        if outcome == CourseOutcome.DENIED.value and not reason:
            errors[f"reason-{key}"] = "不同意免考时请填写原因"
        elif len(reason) > MAX_TEXT:
            errors[f"reason-{key}"] = f"原因不能超过{MAX_TEXT}字"
        verdicts.append(Verdict(course.course_code, outcome, reason or None, course.major_code))
    result = DecisionForm(verdicts, values, errors)
    if final:
        text = _text(form, "objection_deadline", 10)
        values["objection_deadline"] = text
        if text:
            try:
                deadline = date.fromisoformat(text)
            except ValueError:
                errors["objection_deadline"] = "日期格式应为 年-月-日"
            else:
                if in_sane_range(deadline):
                    result.objection_deadline = deadline
                else:
                    errors["objection_deadline"] = f"核查截止{RANGE_MESSAGE}"
    else:
        note = _text(form, "note")
        values["note"] = note
        if len(note) > MAX_TEXT:
            errors["note"] = f"初审意见不能超过{MAX_TEXT}字"
        result.note = note or None
    return result


def read_return(form: FormData, case: ReviewCase) -> tuple[str, dict[str, str], dict[str, str]]:
    """The return reason (free text, else the chosen template) and per-course notes."""
    values = {"reason": _text(form, "reason"), "reason_template": _text(form, "reason_template")}
    errors: dict[str, str] = {}
    reason = values["reason"]
    if not reason and values["reason_template"]:
        chosen = template(values["reason_template"])
        reason = chosen.text if chosen else ""
    if not reason:
        errors["reason"] = "请填写退回原因，或选择常用原因"
    elif len(reason) > MAX_TEXT:
        errors["reason"] = f"退回原因不能超过{MAX_TEXT}字"
    notes: dict[str, str] = {}
    for course in case.courses:
        note = _text(form, f"course-note-{course.course_code}")
        values[f"course-note-{course.course_code}"] = note
        if len(note) > MAX_TEXT:
            errors[f"course-note-{course.course_code}"] = f"说明不能超过{MAX_TEXT}字"
        elif note:
            notes[course.course_code] = note
    return reason, notes, errors if errors else {}


# --- the case page ---------------------------------------------------------------------------


@dataclass
class CaseScreen:
    """Everything the case page shows."""

    case: ReviewCase
    trail: list[dict[str, Any]]
    evidence: list[CertificateEvidence]
    photos: dict[uuid.UUID, PhotoLinks]
    candidate: CandidateCard | None
    names: dict[uuid.UUID, str]
    holder: uuid.UUID | None
    holder_until: datetime | None
    may_act: bool
    mine: bool


def _name(names: Mapping[uuid.UUID, str], staff_id: uuid.UUID | None) -> str:
    if staff_id is None:
        return ""
    return names.get(staff_id, staff_label(staff_id))


async def case_screen(request: Request, desk: Desk, application_id: uuid.UUID) -> CaseScreen:
    """Load the case (404 when the reviewer may not see it) with its evidence, photos, names."""
    service = _service(request)
    web = _web(request)
    case, events = await service.cases.history(desk.reviewer, application_id)
    now = datetime.now(CHINA_TZ)
    lease = service.cases.lease
    holder = case.holder(now, lease)
    staff_ids = {uuid.UUID(e.actor.id) for e in events if e.actor.kind == "staff"}
    staff_ids |= {i for i in (holder, case.point_reviewer_id, case.decided_by) if i}
    async with service.pool.acquire() as conn:
        evidence = await evidence_for(conn, case)
        candidate = await candidate_card(conn, case.candidate_id)
        names = await staff_names(conn, staff_ids)
    photo_ids = [p for c in case.certificates for p in c.photo_ids]
    photos = await web.media.links(photo_ids, desk.token)
    trail = []
    for e in events:
        payload = e.payload
        if e.actor.kind == "staff":
            actor = _name(names, uuid.UUID(e.actor.id))
        elif e.actor.kind == "candidate":
            actor = "考生"
        else:
            actor = "系统"
        label = EVENT_LABELS.get(e.event_type, e.event_type)
        if e.event_type == "ReviewReleased" and e.actor.kind != "staff":
            label = "领取超时，自动释放"
        detail = ""
        if e.event_type == "ApplicationReturned":
            detail = f"退回原因：{payload.get('reason', '')}"
        elif e.event_type in ("InitialReviewCompleted", "ApplicationApproved"):
            decisions = payload.get("decisions", [])
            granted = sum(1 for d in decisions if d.get("outcome") == "granted")
            detail = f"同意免考 {granted} 门，不同意 {len(decisions) - granted} 门"
            if payload.get("note"):
                detail += f"；意见：{payload['note']}"
        elif e.event_type == "ApplicationWithdrawn" and payload.get("reason"):
            detail = f"撤回原因：{payload['reason']}"
        stage = payload.get("stage")
        trail.append(
            {
                "at": e.occurred_at,
                "label": label,
                "actor": actor,
                "detail": detail,
                "submission": payload.get("submission_number"),
                "stage": STAGE_LABELS.get(ReviewStage(stage)) if stage else "",
                "event_id": str(e.event_id),
            }
        )
    return CaseScreen(
        case=case,
        trail=trail,
        evidence=evidence,
        photos=photos,
        candidate=candidate,
        names=names,
        holder=holder,
        holder_until=case.active_claim.expires_at(lease) if holder and case.active_claim else None,
        may_act=may_act(desk.reviewer, case),
        mine=holder == desk.reviewer.staff_id,
    )


def case_context(screen: CaseScreen, desk: Desk) -> dict[str, Any]:
    """The template context of the case page."""
    case = screen.case
    point = {(d.major_code, d.course_code): d for d in case.point_decisions}
    final = {(d.major_code, d.course_code): d for d in case.final_decisions}
    courses_by_certificate = []
    for certificate, evidence in zip(case.certificates, screen.evidence, strict=True):
        rows = []
        for course, found in zip(certificate.courses, evidence.courses, strict=True):
            key = (course.major_code, course.course_code)
            rows.append(
                {
                    "course": course,
                    "evidence": found,
                    "key": f"{course.major_code}-{course.course_code}",
                    "point": point.get(key),
                    "final": final.get(key),
                }
            )
        courses_by_certificate.append(
            {
                "certificate": certificate,
                "evidence": evidence,
                "rows": rows,
                "photos": [screen.photos.get(p) for p in certificate.photo_ids],
            }
        )
    changes = case.changes_since_last_return()
    return {
        "screen": screen,
        "case": case,
        "certificates": courses_by_certificate,
        "changes": changes,
        "holder_name": _name(screen.names, screen.holder),
        "point_reviewer": _name(screen.names, case.point_reviewer_id),
        "stage": case.acting_stage,
        "return_reasons": RETURN_REASONS,
        "denial_reasons": DENIAL_REASONS,
        "values": {},
        "errors": {},
        "form": None,
        "today": datetime.now(CHINA_TZ).date(),
        "default_deadline": (datetime.now(CHINA_TZ) + timedelta(days=15)).date(),
    }


# --- routes ----------------------------------------------------------------------------------


def install_web(app: FastAPI) -> None:
    """Add the reviewer UI's routes, static files and HTML error pages to the review app."""
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    install_pages(app, owns=owns, render_error=error_page)

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/queue", status_code=303)

    def login_pages(request: Request) -> LoginPages:
        web = _web(request)

        def render_login(
            request: Request, context: dict[str, Any], status: int, session: Session
        ) -> Response:
            return page(request, None, "login.html", context, status=status, session=session)

        return LoginPages(
            web.sessions, web.keeper, web.identity, render_login, staff_login,
            identifier_field="username", identifier_missing="请输入用户名",
            accepts=lambda p: p.is_staff and p.has_any_role(*REVIEW_ROLES),
            refused_message=NotAReviewer.default_message, home="/queue",
        )  # fmt: skip

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        """工作人员登录: username, password, captcha."""
        return await login_pages(request).show(request)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        return await login_pages(request).submit(request)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, desk: DeskDep) -> Response:
        return await login_pages(request).logout(request, desk.session, _web(request).ended)

    @app.get("/queue", include_in_schema=False)
    async def queue(request: Request, desk: DeskDep) -> Response:
        """待审列表."""
        service = _service(request)
        query = request.query_params
        problems: list[str] = []

        def choice(name: str, allowed: Mapping[str, Any], default: str) -> str:
            value = query.get(name, default)
            if value not in allowed:
                problems.append(name)
                return default
            return value

        statuses = {s.value: s for s, _ in STATUS_TABS}
        status = choice("status", {**statuses, "all": None, "": None}, "")
        sort = choice("sort", {s.value: s for s in QueueSort}, QueueSort.WAITING.value)
        claim = choice("claim", CLAIM_LABELS, "any")
        overdue = choice("overdue", {"": None, "yes": True, "no": False}, "")
        major = query.get("major", "").strip()[:8]
        route = query.get("route", "").strip()[:64]
        q = query.get("q", "").strip()[:20]
        size = ascii_int(query.get("size"))
        size = size if size is not None and 1 <= size <= 100 else 20
        after = query.get("after") or None
        filters = QueueFilters(
            statuses=(statuses[status],) if status in statuses else None,
            major_code=major or None,
            route_id=route or None,
            overdue={"yes": True, "no": False}.get(overdue),
            claim=CLAIM_FILTERS[claim],
            reviewer_id=desk.reviewer.staff_id,
            case_number_prefix=q or None,
        )
        if status == "all":
            filters = QueueFilters(
                statuses=tuple(statuses.values()),
                major_code=filters.major_code,
                route_id=filters.route_id,
                overdue=filters.overdue,
                claim=filters.claim,
                reviewer_id=filters.reviewer_id,
                case_number_prefix=filters.case_number_prefix,
            )
        view = await queue_page(
            service.pool, desk.reviewer, filters, QueueSort(sort),
            QueuePageRequest(size=size, after=after[:200] if after else None),
            now=datetime.now(CHINA_TZ), lease=service.cases.lease,
        )  # fmt: skip
        holders = {r.claimed_by for r in view.page.rows if r.claimed_by and r.claim_live}
        async with service.pool.acquire() as conn:
            names = await staff_names(conn, holders)
        shown_status = status or view.scope.working_status.value
        base = {
            k: v
            for k, v in {
                "status": status, "sort": sort if sort != QueueSort.WAITING.value else "",
                "claim": claim if claim != "any" else "", "overdue": overdue,
                "major": major, "route": route, "q": q,
                "size": str(size) if size != 20 else "",
            }.items()
            if v
        }  # fmt: skip
        return page(
            request,
            desk,
            "queue.html",
            {
                "view": view,
                "rows": view.page.rows,
                "names": names,
                "tabs": STATUS_TABS,
                "shown_status": shown_status,
                "sort_labels": SORT_LABELS,
                "claim_labels": CLAIM_LABELS,
                "params": base,
                "problems": problems,
                "done": DONE_MESSAGES.get(query.get("done", "")),
                "empty": query.get("empty") == "1",
                "first_page": after is None,
            },
        )

    @app.post("/queue/next", include_in_schema=False)
    async def next_case(request: Request, desk: DeskDep) -> Response:
        """下一件: claim the case that waited longest and open it."""
        service = _service(request)
        try:
            case = await claim_next(
                service.pool, service.cases, desk.reviewer, now=datetime.now(CHINA_TZ)
            )
        except ReviewError as exc:
            if exc.code != "review.queue_empty":
                raise
            return redirect(request, desk, "/queue?empty=1")
        return redirect(request, desk, f"/cases/{case.application_id}?done=claimed")

    @app.get("/cases/{application_id}", include_in_schema=False)
    async def case_page(application_id: uuid.UUID, request: Request, desk: DeskDep) -> Response:
        """办件详情: the application, evidence, photos, decision forms and audit trail."""
        screen = await case_screen(request, desk, application_id)
        context = case_context(screen, desk)
        context["done"] = DONE_MESSAGES.get(request.query_params.get("done", ""))
        return page(request, desk, "case.html", context)

    async def act(request: Request, desk: Desk, application_id: uuid.UUID, action: str) -> Response:
        service = _service(request)
        cases = service.cases
        form = await request.form()
        screen: CaseScreen | None = None
        try:
            number = _submission(form)
            if action in ("claim", "release"):
                before = await cases.view(desk.reviewer, application_id)
                renew = before.holder(datetime.now(CHINA_TZ), cases.lease) == desk.reviewer.staff_id
                run = cases.claim if action == "claim" else cases.release
                await run(desk.reviewer, application_id, submission_number=number)
                done = "released" if action == "release" else ("renewed" if renew else "claimed")
                return redirect(request, desk, f"/cases/{application_id}?done={done}")
            case = await cases.view(desk.reviewer, application_id)
            if action == "return":
                reason, notes, errors = read_return(form, case)
                if errors:
                    screen = await case_screen(request, desk, application_id)
                    return _form_again(request, desk, screen, "return", form, errors)
                await cases.return_to_candidate(
                    desk.reviewer, application_id, submission_number=number,
                    reason=reason, course_notes=notes or None,
                )  # fmt: skip
                return redirect(request, desk, f"/cases/{application_id}?done=returned")
            final = action == "approve"
            decisions = read_decisions(form, case, final=final)
            if decisions.errors:
                screen = await case_screen(request, desk, application_id)
                return _form_again(request, desk, screen, "decide", form, decisions.errors)
            if final:
                await cases.approve(
                    desk.reviewer, application_id, submission_number=number,
                    verdicts=decisions.verdicts, objection_deadline=decisions.objection_deadline,
                )  # fmt: skip
                return redirect(request, desk, f"/cases/{application_id}?done=approved")
            await cases.complete_initial_review(
                desk.reviewer, application_id, submission_number=number,
                verdicts=decisions.verdicts, note=decisions.note,
            )  # fmt: skip
            return redirect(request, desk, f"/cases/{application_id}?done=initial")
        except FormProblem as exc:  # a hidden field: nothing the reviewer can fix but a refresh
            screen = await case_screen(request, desk, application_id)
            return _form_again(request, desk, screen, action, form, {}, problem=exc.message)
        except ReviewError as exc:
            if exc.code == "review.case_not_found":
                raise
            screen = await case_screen(request, desk, application_id)
            return _form_again(
                request, desk, screen, action, form, {}, problem=exc.message, status=exc.status
            )

    @app.post("/cases/{application_id}/claim", include_in_schema=False)
    async def claim(application_id: uuid.UUID, request: Request, desk: DeskDep) -> Response:
        """领取 or 续期."""
        return await act(request, desk, application_id, "claim")

    @app.post("/cases/{application_id}/release", include_in_schema=False)
    async def release(application_id: uuid.UUID, request: Request, desk: DeskDep) -> Response:
        """释放."""
        return await act(request, desk, application_id, "release")

    @app.post("/cases/{application_id}/initial-review", include_in_schema=False)
    async def initial(application_id: uuid.UUID, request: Request, desk: DeskDep) -> Response:
        """提交初审意见."""
        return await act(request, desk, application_id, "initial")

    @app.post("/cases/{application_id}/return", include_in_schema=False)
    async def give_back(application_id: uuid.UUID, request: Request, desk: DeskDep) -> Response:
        """退回考生."""
        return await act(request, desk, application_id, "return")

    @app.post("/cases/{application_id}/approve", include_in_schema=False)
    async def approve(application_id: uuid.UUID, request: Request, desk: DeskDep) -> Response:
        """确认复审结果."""
        return await act(request, desk, application_id, "approve")


def _form_again(
    request: Request,
    desk: Desk,
    screen: CaseScreen,
    form_name: str,
    form: FormData,
    errors: Mapping[str, str],
    *,
    problem: str | None = None,
    status: int = 422,
) -> Response:
    """The case page again with what the reviewer entered and what to fix."""
    context = case_context(screen, desk)
    context["values"] = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    context["errors"] = dict(errors)
    context["form"] = form_name
    context["problem"] = problem or ("请按提示修改后再提交" if errors else None)
    return page(request, desk, "case.html", context, status=status)


def security_headers(app: FastAPI, settings: ReviewSettings) -> None:
    """CSP allowing the S3 endpoint the signed photo links point at."""
    origins = [o.strip().rstrip("/") for o in settings.photo_origins.split(",") if o.strip()]
    app.add_middleware(SecurityHeaders, img_sources=origins)


__all__ = ["ReviewWeb", "install_web", "make_web", "security_headers"]
