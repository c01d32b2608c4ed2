"""CHSI (学信网) sandbox: QR authorisation with a page playing the CHSI app, verification codes."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from html import escape
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI, Form
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from sandboxes.faults import DEFAULT_FAULT_TIMEOUT, FaultInjector, install_sandbox_basics
from sandboxes.seed import load_seed_with_extra

log = logging.getLogger("sandboxes.chsi")

Clock = Callable[[], datetime]
Status = Literal["pending", "approved", "denied", "expired"]

BEIJING = timezone(timedelta(hours=8), "CST")
DEFAULT_CALLBACK_BACKOFF: tuple[float, ...] = (1.0, 3.0, 9.0)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
STYLESHEET = """
body { font-family: "PingFang SC", "Microsoft YaHei", sans-serif; max-width: 40rem;
       margin: 2rem auto; padding: 0 1rem; color: #222; }
header { border-bottom: 3px solid #1f6fb2; margin-bottom: 1rem; }
h1 { font-size: 1.4rem; color: #1f6fb2; }
label { display: block; margin: .6rem 0; }
input[type=text], input[type=password] { width: 100%; padding: .4rem; box-sizing: border-box; }
fieldset { border: 1px solid #ccc; padding: .8rem; }
.record { border-bottom: 1px dashed #ddd; padding: .4rem 0; }
.meta { color: #666; font-size: .9rem; }
.error { color: #b00020; font-weight: bold; }
button { margin: 1rem .5rem 0 0; padding: .5rem 1.5rem; font-size: 1rem; }
"""


def utcnow() -> datetime:
    """The real clock, timezone-aware UTC."""
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def sign_callback(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-CHSI-Signature` header value for a callback body."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


@dataclass
class Person:
    """A seeded CHSI account and the qualification records it holds."""

    id_number: str
    name: str
    password: str
    records: list[dict[str, Any]]


@dataclass
class Authorisation:
    """One QR authorisation request and its decision."""

    ticket: str
    state: str
    callback_url: str
    expires_at: datetime
    decision: Literal["pending", "approved", "denied"] = "pending"
    decided_at: datetime | None = None
    record_ids: list[str] = field(default_factory=list)
    session: str | None = None
    session_person: str | None = None


@dataclass
class VerificationCode:
    """An online verification code (在线验证码) for one record."""

    code: str
    record_id: str
    valid_until: date


@dataclass
class CallbackAttempt:
    """One delivery attempt of a callback, kept for tests and debugging."""

    ticket: str
    attempt: int
    status_code: int | None
    error: str | None = None


class DecisionRefused(Exception):
    """The ticket cannot be decided: unknown, expired or already decided."""

    def __init__(self, reason: Literal["not_found", "expired", "decided"]) -> None:
        super().__init__(reason)
        self.reason = reason


class ChsiSandbox:
    """In-memory CHSI state; one instance per app."""

    def __init__(
        self,
        *,
        secret: str,
        seed: Mapping[str, Any],
        public_url: str,
        ticket_ttl: timedelta,
        clock: Clock,
        callback_backoff: Sequence[float],
        callback_timeout: float,
        callback_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.secret = secret
        self.seed = copy.deepcopy(dict(seed))
        self.public_url = public_url.rstrip("/")
        self.ticket_ttl = ticket_ttl
        self.clock = clock
        self.callback_backoff = tuple(callback_backoff)
        self.callback_timeout = callback_timeout
        self.callback_transport = callback_transport
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.people: dict[str, Person] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.codes: dict[str, VerificationCode] = {}
        self.authorisations: dict[str, Authorisation] = {}
        self.callback_log: list[CallbackAttempt] = []
        self.reset()

    def reset(self) -> None:
        """Restore the seed and forget every authorisation."""
        seed = copy.deepcopy(self.seed)
        today = self.today()
        with self._lock:
            self.people = {}
            self.records = {}
            for raw in seed.get("people", []):
                person = Person(
                    id_number=raw["id_number"],
                    name=raw["name"],
                    password=raw["password"],
                    records=list(raw.get("records", [])),
                )
                self.people[person.id_number] = person
                for record in person.records:
                    self.records[record["record_id"]] = record
            self.codes = {}
            for raw in seed.get("verification_codes", []):
                if "valid_until" in raw:
                    valid_until = date.fromisoformat(raw["valid_until"])
                else:
                    valid_until = today + timedelta(days=int(raw["valid_for_days"]))
                self.codes[raw["code"]] = VerificationCode(
                    code=raw["code"], record_id=raw["record_id"], valid_until=valid_until
                )
            self.authorisations = {}
            self.callback_log = []

    def today(self) -> date:
        """Today in Beijing, as CHSI dates its codes."""
        return self.clock().astimezone(BEIJING).date()

    def status_of(self, auth: Authorisation) -> Status:
        """The status seen by clients: a pending ticket past its expiry is expired."""
        if auth.decision == "pending" and self.clock() >= auth.expires_at:
            return "expired"
        return auth.decision

    def create(self, state: str, callback_url: str) -> Authorisation:
        """Open a new authorisation ticket."""
        auth = Authorisation(
            ticket=secrets.token_urlsafe(24),
            state=state,
            callback_url=callback_url,
            expires_at=self.clock() + self.ticket_ttl,
        )
        with self._lock:
            self.authorisations[auth.ticket] = auth
        return auth

    def view(self, auth: Authorisation) -> dict[str, Any]:
        """The JSON view of an authorisation."""
        status = self.status_of(auth)
        records = (
            [copy.deepcopy(self.records[r]) for r in auth.record_ids]
            if status == "approved"
            else []
        )
        return {
            "ticket": auth.ticket,
            "state": auth.state,
            "status": status,
            "expires_at": rfc3339(auth.expires_at),
            "decided_at": rfc3339(auth.decided_at) if auth.decided_at else None,
            "records": records,
        }

    def open_ticket(self, ticket: str) -> Authorisation:
        """The authorisation for a ticket still open for a decision, or `DecisionRefused`."""
        auth = self.authorisations.get(ticket)
        if auth is None:
            raise DecisionRefused("not_found")
        status = self.status_of(auth)
        if status == "expired":
            raise DecisionRefused("expired")
        if status != "pending":
            raise DecisionRefused("decided")
        return auth

    def sign_in(self, ticket: str, id_number: str, password: str) -> Person | None:
        """Check credentials; on success bind a fresh page session to the ticket."""
        auth = self.open_ticket(ticket)
        person = self.people.get(id_number.strip().upper())
        if person is None or not hmac.compare_digest(person.password.encode(), password.encode()):
            return None
        with self._lock:
            auth.session = secrets.token_urlsafe(24)
            auth.session_person = person.id_number
        return person

    def session_person(self, auth: Authorisation, session: str) -> Person | None:
        """The person signed in on this ticket's page session, if the session token matches."""
        if not auth.session or not auth.session_person or not session:
            return None
        if not hmac.compare_digest(auth.session.encode(), session.encode()):
            return None
        return self.people.get(auth.session_person)

    def decide(
        self,
        ticket: str,
        session: str,
        decision: Literal["approved", "denied"],
        record_ids: Sequence[str] = (),
    ) -> Authorisation:
        """Record the decision once, atomically, and schedule the callback."""
        with self._lock:
            auth = self.open_ticket(ticket)
            if self.session_person(auth, session) is None:
                raise PermissionError("no page session")
            auth.decision = decision
            auth.decided_at = self.clock()
            auth.record_ids = list(record_ids) if decision == "approved" else []
            auth.session = None
        self._schedule_callback(auth)
        return auth

    def _schedule_callback(self, auth: Authorisation) -> None:
        assert auth.decided_at is not None
        body = json.dumps(
            {
                "ticket": auth.ticket,
                "state": auth.state,
                "status": auth.decision,
                "decided_at": rfc3339(auth.decided_at),
            },
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        task = asyncio.get_running_loop().create_task(
            self._deliver(auth.ticket, auth.callback_url, body)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, ticket: str, url: str, body: bytes) -> None:
        delays = (0.0, *self.callback_backoff)
        async with httpx.AsyncClient(
            timeout=self.callback_timeout, transport=self.callback_transport
        ) as client:
            for attempt, delay in enumerate(delays, start=1):
                if delay:
                    await asyncio.sleep(delay)
                timestamp = int(self.clock().timestamp())
                headers = {
                    "Content-Type": "application/json",
                    "X-CHSI-Signature": sign_callback(self.secret, timestamp, body),
                }
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    self.callback_log.append(
                        CallbackAttempt(ticket, attempt, None, type(exc).__name__)
                    )
                    log.warning("callback attempt %d failed: %s", attempt, type(exc).__name__)
                    continue
                self.callback_log.append(CallbackAttempt(ticket, attempt, response.status_code))
                if 200 <= response.status_code < 300:
                    log.info("callback delivered on attempt %d", attempt)
                    return
                log.warning("callback attempt %d answered %d", attempt, response.status_code)
        log.error("callback gave up after %d attempts", len(delays))

    async def drain(self) -> None:
        """Wait until every scheduled callback has finished its attempts."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel callbacks still retrying."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


class AuthorisationCreate(BaseModel):
    """Body of `POST /api/v1/authorizations`."""

    state: str = Field(min_length=1, max_length=128)
    callback_url: str = Field(min_length=1, max_length=2048)


class CodeLookup(BaseModel):
    """Body of `POST /api/v1/verification-codes/lookup`."""

    code: str = Field(min_length=1, max_length=64)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": code, "message": message})


def _beijing(moment: datetime) -> str:
    return moment.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def _mask(id_number: str) -> str:
    return f"{id_number[:4]}{'*' * 10}{id_number[-4:]}"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)} - 学信网（沙箱）</title>\n"
        '<link rel="stylesheet" href="/app/static/approve.css">\n</head>\n<body>\n'
        "<header><p>学信网 · 学历授权（本地沙箱，模拟学信网App扫码授权）</p></header>\n"
        f"<main>\n<h1>{escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _refusal_page(reason: str, sandbox: ChsiSandbox, ticket: str) -> HTMLResponse:
    if reason == "expired":
        return _page(
            "二维码已过期",
            "<p>该授权二维码已超过有效期，未做任何更改。</p>"
            "<p>请回到自考系统，重新点击“获取学信网二维码”后再扫码授权。</p>",
            410,
        )
    if reason == "decided":
        auth = sandbox.authorisations[ticket]
        verb = "同意" if auth.decision == "approved" else "拒绝"
        return _page(
            "该授权已处理",
            f"<p>您已{verb}该授权请求，不能重复操作，本次操作未做任何更改。</p>"
            "<p>如需重新授权，请回到自考系统重新获取学信网二维码。</p>",
            409,
        )
    return _page(
        "授权请求不存在",
        "<p>未找到该授权请求，二维码可能无效或已被重置。</p>"
        "<p>请回到自考系统重新获取学信网二维码。</p>",
        404,
    )


def _login_page(
    sandbox: ChsiSandbox, auth: Authorisation, error: str = "", status: int = 200
) -> HTMLResponse:
    ticket = escape(auth.ticket)
    notice = f'<p class="error">{escape(error)}</p>' if error else ""
    body = (
        "<p>自考免考申请系统请求获取您在学信网的学历信息。请先登录学信网账号。</p>"
        f'<p class="meta">本授权请求有效期至 {_beijing(auth.expires_at)}（北京时间）。</p>'
        f"{notice}"
        f'<form method="post" action="/app/approve/{ticket}">'
        '<input type="hidden" name="action" value="login">'
        '<label>身份证号 <input type="text" name="id_number" maxlength="18" '
        'autocomplete="username" required></label>'
        '<label>密码 <input type="password" name="password" maxlength="64" '
        'autocomplete="current-password" required></label>'
        '<button type="submit">登录</button>'
        "</form>"
    )
    return _page("登录学信网", body, status)


def _record_label(record: Mapping[str, Any]) -> str:
    parts = [
        f"<strong>{escape(str(record['institution']))} · {escape(str(record['major']))}"
        f"（{escape(str(record['level']))}）</strong>",
        f"姓名：{escape(str(record['name']))}",
        f"学历类别：{escape(str(record['category']))}，学习形式：{escape(str(record['study_form']))}",
        f"入学日期：{escape(str(record['entry_date']))}，"
        f"毕（结）业日期：{escape(str(record['graduation_date']))}，"
        f"结论：{escape(str(record['conclusion']))}",
        f"证书编号：{escape(str(record['certificate_number']))}",
        "含成绩单" if record.get("transcript") else "无成绩单信息",
    ]
    return "<br>".join(parts)


def _records_page(
    auth: Authorisation, person: Person, error: str = "", status: int = 200
) -> HTMLResponse:
    ticket = escape(auth.ticket)
    session = escape(auth.session or "")
    notice = f'<p class="error">{escape(error)}</p>' if error else ""
    if person.records:
        items = "".join(
            f'<div class="record"><label><input type="checkbox" name="record_id" '
            f'value="{escape(str(r["record_id"]))}"> {_record_label(r)}</label></div>'
            for r in person.records
        )
    else:
        items = "<p>您的账号下暂无学历信息。</p>"
    body = (
        f"<p>已登录：{escape(person.name)}（{escape(_mask(person.id_number))}）</p>"
        "<p>请勾选同意授权给自考免考申请系统的学历信息（含成绩单），然后点击“同意授权”；"
        "不同意请点击“拒绝”。</p>"
        f"{notice}"
        f'<form method="post" action="/app/approve/{ticket}">'
        f'<input type="hidden" name="session" value="{session}">'
        f"<fieldset><legend>我的学历</legend>{items}</fieldset>"
        '<button type="submit" name="action" value="approve">同意授权</button>'
        '<button type="submit" name="action" value="deny">拒绝</button>'
        "</form>"
    )
    return _page("选择授权的学历", body, status)


def create_app(
    *,
    secret: str = "chsi-sandbox-secret",  # noqa: S107 - the documented sandbox secret
    seed: Mapping[str, Any] | None = None,
    public_url: str = "http://127.0.0.1:8201",
    ticket_ttl: timedelta = timedelta(minutes=5),
    clock: Clock = utcnow,
    fault_timeout: float = DEFAULT_FAULT_TIMEOUT,
    callback_backoff: Sequence[float] = DEFAULT_CALLBACK_BACKOFF,
    callback_timeout: float = 5.0,
    callback_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """The CHSI sandbox app; `seed=None` loads the packaged `chsi_seed.json`.

    `fault_timeout`, `callback_backoff`, `callback_timeout` and `callback_transport` exist so
    tests can run fast and without sockets; the defaults are what `make run` uses.
    """
    sandbox = ChsiSandbox(
        secret=secret,
        seed=seed if seed is not None else load_seed_with_extra("chsi_seed.json", "chsi"),
        public_url=public_url,
        ticket_ttl=ticket_ttl,
        clock=clock,
        callback_backoff=callback_backoff,
        callback_timeout=callback_timeout,
        callback_transport=callback_transport,
    )
    faults = FaultInjector(timeout_seconds=fault_timeout)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await sandbox.close()

    app = FastAPI(title="CHSI sandbox (学信网)", lifespan=lifespan)
    app.state.sandbox = sandbox
    app.state.faults = faults
    install_sandbox_basics(app, secret=secret, faults=faults, reset=sandbox.reset)

    @app.post("/api/v1/authorizations", status_code=201, response_model=None)
    async def create_authorisation(body: AuthorisationCreate) -> dict[str, str] | JSONResponse:
        target = urlsplit(body.callback_url)
        if target.scheme not in ("http", "https") or not target.netloc:
            return _error(422, "invalid_request", "callback_url must be an http(s) URL")
        auth = sandbox.create(body.state, body.callback_url)
        return {
            "ticket": auth.ticket,
            "qr_content": f"{sandbox.public_url}/app/approve/{auth.ticket}",
            "expires_at": rfc3339(auth.expires_at),
        }

    @app.get("/api/v1/authorizations/{ticket}", response_model=None)
    async def get_authorisation(ticket: str) -> dict[str, Any] | JSONResponse:
        auth = sandbox.authorisations.get(ticket)
        if auth is None:
            return _error(404, "not_found", "unknown ticket")
        return sandbox.view(auth)

    @app.post("/api/v1/verification-codes/lookup", response_model=None)
    async def lookup_code(body: CodeLookup) -> dict[str, Any] | JSONResponse:
        entry = sandbox.codes.get(body.code.strip())
        if entry is None:
            return _error(404, "not_found", "unknown verification code")
        if sandbox.today() > entry.valid_until:
            return _error(410, "expired", "verification code expired")
        return {
            "code": entry.code,
            "valid_until": entry.valid_until.isoformat(),
            "record": copy.deepcopy(sandbox.records[entry.record_id]),
        }

    @app.get("/app/static/approve.css", include_in_schema=False)
    async def stylesheet() -> Response:
        return Response(STYLESHEET, media_type="text/css", headers={"Cache-Control": "max-age=60"})

    @app.get("/app/approve/{ticket}", include_in_schema=False)
    async def approve_page(ticket: str) -> HTMLResponse:
        try:
            auth = sandbox.open_ticket(ticket)
        except DecisionRefused as refused:
            return _refusal_page(refused.reason, sandbox, ticket)
        return _login_page(sandbox, auth)

    @app.post("/app/approve/{ticket}", include_in_schema=False)
    async def approve_action(
        ticket: str,
        action: Annotated[str, Form(max_length=16)] = "login",
        id_number: Annotated[str, Form(max_length=32)] = "",
        password: Annotated[str, Form(max_length=128)] = "",
        session: Annotated[str, Form(max_length=64)] = "",
        record_id: Annotated[list[str] | None, Form()] = None,
    ) -> HTMLResponse:
        try:
            auth = sandbox.open_ticket(ticket)
            if action == "login":
                person = sandbox.sign_in(ticket, id_number, password)
                if person is None:
                    return _login_page(sandbox, auth, "身份证号或密码错误，请重新输入。", 401)
                return _records_page(auth, person)
            person = sandbox.session_person(auth, session)
            if person is None:
                return _login_page(sandbox, auth, "登录状态已失效，请重新登录。", 403)
            if action == "deny":
                sandbox.decide(ticket, session, "denied")
                return _page(
                    "已拒绝授权",
                    "<p>您已拒绝本次授权，自考系统不会获得您的学历信息。</p>"
                    "<p>现在可以关闭本页面。</p>",
                )
            if action != "approve":
                return _records_page(auth, person, "无法识别的操作，请重新选择。", 400)
            chosen = set(record_id or [])
            own = [str(r["record_id"]) for r in person.records]
            if not chosen:
                return _records_page(auth, person, "请至少勾选一条学历信息。", 400)
            if not chosen.issubset(own):
                return _records_page(auth, person, "所选学历不属于当前账号，请重新选择。", 400)
            sandbox.decide(ticket, session, "approved", [r for r in own if r in chosen])
        except DecisionRefused as refused:
            return _refusal_page(refused.reason, sandbox, ticket)
        except PermissionError:
            return _page("登录状态已失效", "<p>请刷新页面后重新登录。</p>", 403)
        return _page(
            "授权成功",
            f"<p>您已同意授权 {len(chosen)} 条学历信息。</p>"
            "<p>请回到自考系统点击“查看已验证学历信息”查看结果，现在可以关闭本页面。</p>",
        )

    return app


def _app_from_env() -> FastAPI:
    return create_app(
        secret=os.environ.get("SANDBOX_CHSI_SECRET", "chsi-sandbox-secret"),
        public_url=os.environ.get("SANDBOX_CHSI_PUBLIC_URL", "http://127.0.0.1:8201"),
        fault_timeout=float(
            os.environ.get("SANDBOX_FAULT_TIMEOUT_SECONDS", str(DEFAULT_FAULT_TIMEOUT))
        ),
    )


app = _app_from_env()
