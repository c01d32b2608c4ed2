"""学历验证（学信网）: the QR authorisation with CHSI, the online verification code, and the
verified degrees — all on credential-verify's API with the candidate's own token.

    GET  /degrees                       the two ways, the code form, 查看已验证学历信息
    POST /degrees/qr                    获取学信网二维码 (or reuse the live one) → 303 to its page
    GET  /degrees/qr/{id}               the QR code, its countdown and status (meta refresh
                                        without JavaScript, degrees.js polls with it)
    GET  /degrees/qr/{id}/status        the status as JSON, for degrees.js
    POST /degrees/code                  在线验证码 → back to /degrees, or the form with the error

credential-verify returns the QR code's image only when it is asked for one (POST, which reuses
the live code while it has more than a minute to live); the QR page asks again only while that
reuse is certain, so a GET never opens a new authorisation.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from application_service.adapters.peers import (
    Authorization,
    CredentialPeer,
    QrAuthorization,
    VerifiedDegree,
)
from application_service.entrypoints.portal.base import (
    Visitor,
    VisitorDep,
    page,
    portal_of,
    redirect,
    service_of,
    text,
)
from eventkit.text import ascii_int
from servicekit.errors import AppError
from servicekit.peers import PeerRefused, PeerUnavailable

LEVEL_LABELS = {
    "junior_college": "专科",
    "bachelor": "本科",
    "master": "硕士研究生",
    "doctor": "博士研究生",
}
NOT_SYNCED = "credential.candidate_not_synced"
SYNCING_MESSAGE = "账号信息同步中，请稍候几秒后刷新"
# credential-verify reuses a live QR code with more than a minute left; ask for the image only
# while reuse is certain (a margin for the clocks and the call itself).
IMAGE_WHILE_SECONDS = 75
CODE_LIMIT = 40
POLL_SECONDS = 5
STATUS_TEXT = {
    "requested": "等待扫码授权：请用学信网App扫描二维码，并在App中同意授权",
    "approved": "授权成功，正在获取学历信息…",
    "denied": "您已在学信网App中拒绝授权，未获取任何学历信息。如需验证，请重新获取二维码",
    "expired": "二维码已过期，请重新获取二维码",
}


def credential_peer(request: Request) -> CredentialPeer:
    """The credential-verify client."""
    peer = service_of(request).credential
    if peer is None:
        raise RuntimeError("the portal needs the service wired with its HTTP clients")
    return peer


def level_label(level: str) -> str:
    """层次 in Chinese (the code itself for a level this page does not know yet)."""
    return LEVEL_LABELS.get(level, level)


def refused_page(exc: PeerRefused) -> AppError:
    """A refusal of credential-verify as the portal's error page (404 for another's id)."""
    return AppError(exc.code, exc.message, f"credential-verify refused: {exc.code}",
                    status=exc.status)  # fmt: skip


def parse_id(value: str) -> uuid.UUID:
    """An authorisation id from the URL; anything else is a page that does not exist."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise AppError(
            "portal.not_found", "未找到该授权记录，请重新获取学信网二维码",
            "malformed authorization id in the URL", status=404,
        ) from None  # fmt: skip


def _minutes(seconds: int) -> str:
    minutes, rest = divmod(max(0, seconds), 60)
    return f"{minutes}分{rest:02d}秒"


async def _listing(request: Request, visitor: Visitor, context: Mapping[str, Any],
                   *, status: int = 200) -> Response:  # fmt: skip
    """The /degrees page with the verified degrees (or why they cannot be shown) and `context`
    (the code form's value and error, a notice, a problem)."""
    degrees: list[VerifiedDegree] | None = None
    problem = context.get("problem")
    syncing = bool(context.get("syncing"))
    try:
        degrees = await credential_peer(request).degrees(visitor.token)
    except PeerUnavailable as exc:
        if exc.peer_code == NOT_SYNCED:
            syncing = True
        else:
            problem = problem or exc.message
            status = max(status, 503)
    except PeerRefused as exc:
        problem = problem or exc.message
    values = {"values": {}, "errors": {}, "notice": None, **context}
    return page(
        request, visitor, "degrees.html",
        {**values, "degrees": degrees, "problem": problem, "syncing": syncing,
         "level_label": level_label},
        status=status,
    )  # fmt: skip


async def _notice(request: Request, visitor: Visitor) -> str | None:
    """What the redirect to /degrees came to say: a QR approval or a redeemed code."""
    params = request.query_params
    redeemed = ascii_int(params.get("redeemed"))
    if redeemed is not None:
        return f"在线验证码验证成功，已添加 {redeemed} 条学历信息。"
    authorization = params.get("authorization", "")
    try:
        authorization_id = uuid.UUID(authorization)
    except ValueError:
        return None
    try:
        state = await credential_peer(request).authorization(visitor.token, authorization_id)
    except (PeerRefused, PeerUnavailable):
        return None
    if state.status != "approved":
        return None
    notice = f"学信网授权成功，已验证 {state.accepted_records} 条学历信息。"
    if state.refused_records:
        notice += (
            f"另有 {state.refused_records} 条学历信息的姓名或身份证号与您本人信息不一致，未被采用。"
        )
    return notice


def _status_payload(state: Authorization, now: datetime) -> dict[str, Any]:
    """What degrees.js needs: the status, its Chinese text, the countdown, where to go."""
    payload: dict[str, Any] = {
        "status": state.status,
        "pending": state.pending,
        "seconds_left": state.seconds_left(now) if state.pending else 0,
        "message": STATUS_TEXT.get(state.status, "授权状态未知，请稍后刷新页面"),
        "next": None,
    }
    if state.status == "approved":
        payload["next"] = f"/degrees?authorization={state.authorization_id}"
    return payload


def install_degrees(app: FastAPI) -> None:
    """Add the degrees pages."""

    @app.get("/degrees", include_in_schema=False)
    async def degrees(request: Request, visitor: VisitorDep) -> Response:
        """学历验证（学信网）and 查看已验证学历信息."""
        return await _listing(request, visitor, {"notice": await _notice(request, visitor)})

    @app.post("/degrees/qr", include_in_schema=False)
    async def start_qr(request: Request, visitor: VisitorDep) -> Response:
        """获取学信网二维码: open (or reuse) the authorisation, then show its page."""
        try:
            qr = await credential_peer(request).start_qr(visitor.token)
        except PeerUnavailable as exc:
            if exc.peer_code == NOT_SYNCED:
                return await _listing(request, visitor, {"syncing": True})
            return await _listing(request, visitor, {"problem": exc.message}, status=503)
        except PeerRefused as exc:
            return await _listing(request, visitor, {"problem": exc.message},
                                  status=exc.status)  # fmt: skip
        return redirect(request, f"/degrees/qr/{qr.authorization_id}", visitor.session)

    @app.get("/degrees/qr/{authorization_id}", include_in_schema=False)
    async def qr_page(request: Request, visitor: VisitorDep, authorization_id: str) -> Response:
        """The QR code to scan, its countdown and the authorisation's status."""
        wanted = parse_id(authorization_id)
        peer = credential_peer(request)
        try:
            state = await peer.authorization(visitor.token, wanted)
        except PeerRefused as exc:
            raise refused_page(exc) from exc
        now = datetime.now(UTC)
        if state.status == "approved":
            return redirect(request, f"/degrees?authorization={wanted}", visitor.session)
        qr: QrAuthorization | None = None
        if state.pending and state.seconds_left(now) > IMAGE_WHILE_SECONDS:
            try:
                qr = await peer.start_qr(visitor.token)
            except PeerRefused as exc:
                raise refused_page(exc) from exc
            if qr.authorization_id != wanted:  # a newer live code exists: show that one
                return redirect(request, f"/degrees/qr/{qr.authorization_id}", visitor.session)
        seconds = state.seconds_left(now) if state.pending else 0
        return page(
            request, visitor, "degrees_qr.html",
            {"state": state, "qr": qr, "seconds_left": seconds, "remaining": _minutes(seconds),
             "status_text": STATUS_TEXT.get(state.status, ""), "poll_seconds": POLL_SECONDS},
        )  # fmt: skip

    @app.get("/degrees/qr/{authorization_id}/status", include_in_schema=False)
    async def qr_status(request: Request, visitor: VisitorDep, authorization_id: str) -> Response:
        """The authorisation's status as JSON (same origin, the session cookie), for degrees.js."""
        wanted = parse_id(authorization_id)
        body: dict[str, Any]
        status = 200
        headers = {"Cache-Control": "no-store"}
        try:
            state = await credential_peer(request).authorization(visitor.token, wanted)
            body = _status_payload(state, datetime.now(UTC))
        except PeerRefused as exc:
            status = exc.status
            body = {"status": "error", "pending": False, "message": exc.message, "code": exc.code}
        except PeerUnavailable as exc:
            status = 503
            message = SYNCING_MESSAGE if exc.peer_code == NOT_SYNCED else exc.message
            body = {"status": "unavailable", "pending": True, "message": message,
                    "code": exc.peer_code or exc.code}  # fmt: skip
            headers["Retry-After"] = str(exc.retry_after)
        response = JSONResponse(body, status_code=status, headers=headers)
        portal_of(request).sessions.write(response, visitor.session)
        return response

    @app.post("/degrees/code", include_in_schema=False)
    async def redeem_code(request: Request, visitor: VisitorDep) -> Response:
        """在线验证码: verify a degree by its code; errors stand next to the field."""
        form = await request.form()
        code = text(form, "code", CODE_LIMIT)
        values = {"code": code[:CODE_LIMIT]}
        if not code:
            return await _listing(request, visitor,
                                  {"values": values, "errors": {"code": "请输入在线验证码"}},
                                  status=422)  # fmt: skip
        if len(code) > CODE_LIMIT:
            message = "在线验证码过长：应为16位数字或大写字母，或12位数字，请核对后重新输入"
            return await _listing(request, visitor,
                                  {"values": values, "errors": {"code": message}},
                                  status=422)  # fmt: skip
        try:
            redeemed = await credential_peer(request).redeem_code(visitor.token, code)
        except PeerRefused as exc:
            return await _listing(request, visitor,
                                  {"values": values, "errors": {"code": exc.message}},
                                  status=exc.status)  # fmt: skip
        except PeerUnavailable as exc:
            if exc.peer_code == NOT_SYNCED:
                return await _listing(request, visitor, {"values": values, "syncing": True})
            return await _listing(request, visitor, {"values": values, "problem": exc.message},
                                  status=503)  # fmt: skip
        return redirect(request, f"/degrees?redeemed={len(redeemed.degrees)}", visitor.session)
