"""个人中心 (the personal centre) and 考生注册 (registration against the roster)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response

from application_service.adapters.peers import IdentityPeer
from application_service.domain.windows import WindowStage
from application_service.entrypoints.portal.base import (
    VisitorDep,
    page,
    portal_of,
    redirect,
    service_of,
    text,
)
from servicekit.identity_client import IdentityUnavailable
from servicekit.peers import PeerRefused, PeerUnavailable
from servicekit.web import Session
from servicekit.webui import client_host

# The seed's quick entries (快捷入口); only 免考申请 is this system's, the others show their state.
OTHER_ENTRIES = (
    ("理论课报名", "未开放"),
    ("转考申请", "未开放"),
    ("实践性环节报名", "未开放"),
    ("毕业申请", "未开放"),
)
QUERY_ENTRIES = ("合格成绩查询", "当次成绩查询", "省际转入确认", "报考简章", "专业计划查询")
GENDER = {"male": "男", "female": "女"}
REGISTER_FIELDS = ("ticket_number", "id_number", "name", "mobile", "sms_code")
FORM_FIELDS = (*REGISTER_FIELDS, "password", "captcha_answer")  # where a refusal is shown
SEND_SMS = "send_sms"  # the value of the form's 获取短信验证码 button (name="action")


@dataclass(frozen=True)
class ExemptionEntry:
    """The 免考申请 entry: open while the current window takes applications."""

    open: bool
    state: str
    window_name: str | None
    closes_at: datetime | None


def identity_peer(request: Request) -> IdentityPeer:
    """The identity client for profile and registration calls."""
    peer = service_of(request).identity_peer
    if peer is None:
        raise RuntimeError("the portal needs the service wired with its HTTP clients")
    return peer


async def exemption_entry(request: Request) -> ExemptionEntry:
    """The entry's state from the application service's own windows."""
    window = await service_of(request).windows.current()
    if window is None:
        return ExemptionEntry(False, "未开放", None, None)
    stage = window.stage(datetime.now(UTC))
    if stage is WindowStage.APPLYING:
        return ExemptionEntry(True, "已开放", window.name, window.applications_close_at)
    return ExemptionEntry(False, stage.label, window.name, None)


async def register_page(
    request: Request,
    session: Session,
    *,
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problem: str | None = None,
    notice: str | None = None,
    status: int = 200,
) -> Response:
    """The registration form with a fresh captcha from identity (each captcha is one-time);
    `notice`: that the SMS code was sent."""
    captcha = None
    try:
        captcha = await portal_of(request).identity.captcha()
    except IdentityUnavailable as exc:
        problem, status = exc.message, 503
    context = {"values": values or {}, "errors": errors or {}, "problem": problem,
               "notice": notice, "captcha": captcha}  # fmt: skip
    return page(request, None, "register.html", context, session=session, status=status)


def install_centre(app: FastAPI) -> None:
    """The personal centre and registration routes."""

    @app.get("/centre", include_in_schema=False)
    async def centre(request: Request, visitor: VisitorDep) -> Response:
        """个人中心: profile, quick entries with their window state, query entries, my cases."""
        profile = await identity_peer(request).profile(visitor.token)
        entry = await exemption_entry(request)
        applications = await service_of(request).applications.mine(visitor.candidate_id)
        return page(
            request,
            visitor,
            "centre.html",
            {
                "profile": profile,
                "gender": GENDER.get(profile.gender, ""),
                "entry": entry,
                "others": OTHER_ENTRIES,
                "queries": QUERY_ENTRIES,
                "applications": applications,
            },
        )

    @app.get("/register", include_in_schema=False)
    async def register_form(request: Request) -> Response:
        """考生注册: the roster data to match, the new password and mobile number."""
        portal = portal_of(request)
        session = portal.sessions.read(request) or portal.sessions.new()
        return await register_page(request, session)

    @app.post("/register", include_in_schema=False)
    async def register(request: Request) -> Response:
        portal = portal_of(request)
        session = portal.sessions.read(request)
        if session is None:
            return await register_page(
                request, portal.sessions.new(), problem="页面已过期，请重新填写", status=403
            )
        await portal.sessions.verify_csrf(request, session)
        form = await request.form()
        values = {name: text(form, name, 64) for name in REGISTER_FIELDS}
        values["sms_code"] = text(form, "sms_code", 10)
        captcha_id, answer = text(form, "captcha_id", 64), text(form, "captcha_answer", 10)
        if form.get("action") == SEND_SMS:
            return await send_sms_code(request, session, values, captcha_id, answer)
        password, again = form.get("password"), form.get("password_again")
        errors: dict[str, str] = {}
        required = {
            "ticket_number": "请输入准考证号",
            "id_number": "请输入身份证号",
            "name": "请输入姓名",
            "mobile": "请输入手机号码",
            "sms_code": "请输入短信验证码",
        }
        for name, message in required.items():
            if not values[name]:
                errors[name] = message
        if not isinstance(password, str) or not password:
            errors["password"] = "请设置登录密码"  # noqa: S105 (a message)
        elif password != again:
            errors["password_again"] = "两次输入的密码不一致"  # noqa: S105 (a message)
        if not answer:
            errors["captcha_answer"] = "请输入验证码"
        elif not captcha_id:
            errors["captcha_answer"] = "验证码已失效，请重新输入"
        if errors or not isinstance(password, str):
            return await register_page(request, session, values=values, errors=errors, status=422)
        try:
            await identity_peer(request).register(
                values["ticket_number"], values["id_number"].upper(), values["name"],
                password[:128], values["mobile"], sms_code=values["sms_code"],
                captcha_id=captcha_id, captcha_answer=answer, client_ip=client_host(request),
            )  # fmt: skip
        except PeerRefused as exc:
            return await refused_page(request, session, values, exc)
        return redirect(request, "/login?registered=1", session)


async def refused_page(
    request: Request, session: Session, values: dict[str, str], exc: PeerRefused
) -> Response:
    """The form again with identity's refusal next to the fields it names (else on top)."""
    errors: dict[str, str] = {}
    for problem in exc.fields:
        key = problem.field.rsplit(".", 1)[-1]
        errors[key if key in FORM_FIELDS else "form"] = problem.message
    status = exc.status if 400 <= exc.status < 500 else 400
    response = await register_page(
        request, session, values=values, errors=errors,
        problem=None if exc.fields else exc.message, status=status,
    )  # fmt: skip
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def send_sms_code(
    request: Request, session: Session, values: dict[str, str], captcha_id: str, answer: str
) -> Response:
    """获取短信验证码 (the form's other button): the form again with what was typed kept, a new
    captcha, and "sent to 138****5678" or what went wrong."""
    errors: dict[str, str] = {}
    if not values["mobile"]:
        errors["mobile"] = "请输入手机号码"
    if not answer:
        errors["captcha_answer"] = "请输入验证码"
    elif not captcha_id:
        errors["captcha_answer"] = "验证码已失效，请重新输入"
    if errors:
        return await register_page(request, session, values=values, errors=errors, status=422)
    try:
        masked = await identity_peer(request).send_sms_code(
            values["mobile"], captcha_id=captcha_id, captcha_answer=answer,
            client_ip=client_host(request),
        )  # fmt: skip
    except PeerRefused as exc:
        return await refused_page(request, session, values, exc)
    except PeerUnavailable as exc:
        response = await register_page(
            request, session, values=values, problem=exc.message, status=503
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    return await register_page(
        request, session, values={**values, "sms_code": ""}, notice=f"验证码已发送至{masked}"
    )
