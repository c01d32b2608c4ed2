"""What every server-rendered UI of the system shares: session settings, templates, rendering
with the renewed session cookie, login redirects and HTML error pages.

The reviewer UI (review service) and the candidate portal (application service) are built on it:

    class PortalSettings(WebSessionSettings): ...        # PORTAL_SESSION_KEY, PORTAL_IDLE_MINUTES …
    sessions = web_sessions(settings, cookie_name="zk_portal")
    templates = page_templates(directory)                 # with the `beijing` and `day` filters
    install_pages(app, owns=lambda path: not path.startswith("/api/"), render_error=...)
    return render(templates, sessions, request, "page.html", {...}, session=session)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from servicekit.auth import Principal
from servicekit.errors import (
    ErrorView,
    error_page_response,
    error_response,
    request_id_of,
    set_error_page,
)
from servicekit.identity_client import (
    REFRESH_KEY,
    IdentityClient,
    IdentityRefused,
    IdentityUnavailable,
    SignedIn,
    TokenKeeper,
    Tokens,
)
from servicekit.web import (
    EndedSessions,
    LoginRequired,
    Session,
    SessionCodec,
    WebSessions,
    csrf_token,
    safe_next,
)

log = logging.getLogger(__name__)

CHINA_TZ = timezone(timedelta(hours=8), "CST")  # Beijing time: a fixed offset, no DST


def decode_key(text: str) -> bytes:
    """32 bytes from base64 (standard or url-safe, padding optional); ValueError otherwise."""
    try:
        standard = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("session key must be base64") from exc
    if len(raw) != 32:
        raise ValueError(f"session key must be 32 bytes, got {len(raw)}")
    return raw


class WebSessionSettings(BaseSettings):
    """The session settings of a web UI; a service's settings class inherits them and gives
    them its prefix (REVIEW_SESSION_KEY, PORTAL_SESSION_KEY, ...)."""

    session_key: SecretStr | None = Field(
        default=None,
        description="base64 of 32 random bytes sealing the session cookies; unset: a random "
        "key per process (sessions end on restart; one process only)",
    )
    old_session_keys: SecretStr | None = Field(
        default=None, description="kid=base64,kid=base64: keys still accepted after a rotation"
    )
    session_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9_-]{1,16}$")
    secure_cookies: bool = Field(
        default=True, description="Secure cookies (HTTPS only); false only for local http"
    )
    idle_minutes: float = Field(default=30, gt=0, le=240, description="idle timeout")
    session_hours: float = Field(default=10, gt=0, le=24, description="absolute session age")
    public_origins: str = Field(
        default="", description="the UI's own origins (https://…) behind a proxy, for CSRF"
    )

    @field_validator("session_key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value.get_secret_value())
        return value

    @field_validator("old_session_keys")
    @classmethod
    def _old_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _old_keys_of(value.get_secret_value())
        return value


def _old_keys_of(text: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in text.split(","):
        kid, sep, encoded = item.strip().partition("=")
        if not item.strip():
            continue
        if not sep or not kid:
            raise ValueError("old session keys are kid=base64, comma-separated")
        keys[kid] = decode_key(encoded)
    return keys


def session_codec(settings: WebSessionSettings, purpose: str) -> SessionCodec:
    """The cookie codec of `settings`; a random per-process key when none is configured."""
    if settings.session_key is None:
        log.warning("%s: no session key set: a random key, sessions end with the process", purpose)
        key = secrets.token_bytes(32)
    else:
        key = decode_key(settings.session_key.get_secret_value())
    old = (
        _old_keys_of(settings.old_session_keys.get_secret_value())
        if settings.old_session_keys is not None
        else {}
    )
    return SessionCodec(
        key,
        key_id=settings.session_key_id,
        old_keys=old,
        purpose=purpose,
        max_age=settings.session_hours * 3600,
        idle_timeout=settings.idle_minutes * 60,
    )


def web_sessions(
    settings: WebSessionSettings, *, cookie_name: str, login_url: str = "/login"
) -> WebSessions:
    """The UI's session cookies, configured from its settings."""
    origins = [o.strip() for o in settings.public_origins.split(",") if o.strip()]
    return WebSessions(
        session_codec(settings, cookie_name),
        cookie_name=cookie_name,
        login_url=login_url,
        secure=settings.secure_cookies,
        same_site="lax",
        origins=origins,
    )


def beijing(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time as people in China read it."""
    return value.astimezone(CHINA_TZ).strftime(fmt) if value else ""


def page_templates(directory: Path, **globals_: Any) -> Jinja2Templates:
    """Jinja2 templates (autoescaped) with the `beijing` and `day` filters and `globals_`."""
    templates = Jinja2Templates(directory=str(directory))
    templates.env.filters["beijing"] = beijing
    templates.env.filters["day"] = lambda v: beijing(v, "%Y-%m-%d")
    templates.env.globals.update(globals_)
    return templates


def render(
    templates: Jinja2Templates,
    sessions: WebSessions,
    request: Request,
    name: str,
    context: Mapping[str, Any],
    *,
    session: Session | None = None,
    status: int = 200,
) -> Response:
    """Render `name` with `csrf` (the session's token) in the context; write the renewed
    session cookie when there is a session."""
    response = templates.TemplateResponse(
        request,
        name,
        {"csrf": csrf_token(session) if session else "", **context},
        status_code=status,
    )
    if session is not None:
        sessions.write(response, session)
    return response


def see_other(sessions: WebSessions, url: str, session: Session | None = None) -> Response:
    """303 to `url` (after a form), with the renewed session."""
    response = RedirectResponse(url, status_code=303)
    if session is not None:
        sessions.write(response, session)
    return response


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return exc.response


class AnsweredEarly(Exception):
    """A dependency's finished answer (raised to skip the route): the UI's 503 page that also
    writes the session identity just renewed."""

    def __init__(self, response: Response) -> None:
        super().__init__("answered early")
        self.response = response


async def _answered_early(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AnsweredEarly)
    return exc.response


async def _unavailable_keeping(
    request: Request, sessions: WebSessions, exc: IdentityUnavailable, session: Session
) -> Response:
    """Identity's 503 as the UI's page (or JSON), writing `session` (the renewed tokens)."""
    rid = request_id_of(request)
    headers = {"Retry-After": str(exc.retry_after)}
    page = await error_page_response(request, ErrorView(503, exc.code, exc.message, rid))
    if page is None:
        page = error_response(503, exc.code, exc.message, rid, headers=headers)
    page.headers.update(headers)
    sessions.write(page, session)
    return page


def install_pages(
    app: FastAPI,
    *,
    owns: Callable[[str], bool],
    render_error: Callable[[Request, ErrorView], Response],
) -> None:
    """Make `LoginRequired` a redirect, and render the errors of the paths the UI `owns` as its
    own HTML page (`render_error`); other paths (the JSON API) keep the JSON error body."""
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_exception_handler(AnsweredEarly, _answered_early)

    async def page(request: Request, view: ErrorView) -> Response | None:
        return render_error(request, view) if owns(request.url.path) else None

    set_error_page(app, page)


async def require_signed_in(
    request: Request, sessions: WebSessions, keeper: TokenKeeper, ended: EndedSessions
) -> SignedIn:
    """The request's signed-in user, tokens renewed as needed; else `LoginRequired` (a 303 to
    the login page, "登录已超时" when a session ran out). Unsafe methods must carry the session's
    CSRF token; a logged-out session's copied cookie is refused.

    Only identity refusing the refresh token ends the session: identity down, busy or rotating
    its keys is `IdentityUnavailable` (the UI's 503 "请稍后重试" page with Retry-After), and the
    cookie stays (renewed, when identity did renew the tokens)."""
    session = sessions.read(request)
    if session is None or REFRESH_KEY not in session.data:
        expired = session is None and sessions.cookie_name in request.cookies
        raise LoginRequired(sessions.login_redirect(request, expired=expired))
    if await ended.ended(session):
        raise LoginRequired(sessions.login_redirect(request, expired=True))
    await sessions.verify_csrf(request, session)
    try:
        signed = await keeper.signed_in(session)
    except IdentityUnavailable as exc:
        log.warning("identity unavailable for a signed-in session", extra={"error": exc.detail_en})
        if exc.session is not None:
            raise AnsweredEarly(
                await _unavailable_keeping(request, sessions, exc, exc.session)
            ) from exc
        raise
    if signed is None:
        raise LoginRequired(sessions.login_redirect(request, expired=True))
    return signed


def client_host(request: Request) -> str | None:
    """The person's address, to forward to identity (`forwarded_for`): the peer as uvicorn
    resolved it. Behind the ingress, uvicorn runs with --proxy-headers and the ingress
    controller's addresses in --forwarded-allow-ips (FORWARDED_ALLOW_IPS), so this is the
    browser's address, not the controller's; a header from anyone else is ignored."""
    return request.client.host if request.client else None


LoginCall = Callable[[IdentityClient, str, str, str, str, "str | None"], Awaitable[Tokens]]


async def staff_login(
    identity: IdentityClient, who: str, password: str, captcha_id: str, answer: str, ip: str | None
) -> Tokens:
    """A `LoginCall`: 工作人员登录 by username."""
    return await identity.staff_login(who, password, captcha_id, answer, client_ip=ip)


async def candidate_login(
    identity: IdentityClient, who: str, password: str, captcha_id: str, answer: str, ip: str | None
) -> Tokens:
    """A `LoginCall`: 考生登录 by 身份证号 or 准考证号."""
    return await identity.candidate_login(who, password, captcha_id, answer, client_ip=ip)


PageRenderer = Callable[[Request, dict[str, Any], int, Session], Response]


@dataclass
class LoginPages:
    """A UI's login page and form on identity: the captcha (看不清，换一张 reloads), field
    checks, identity's refusals shown where they belong, a fresh session (new CSRF secret, no
    fixation) holding identity's tokens on success, and `next` followed only when same-site.

    `render_page(request, context, status, session)` renders the UI's login template with
    `captcha`, `values`, `errors`, `problem`, `flash` and `next`.
    """

    sessions: WebSessions
    keeper: TokenKeeper
    identity: IdentityClient
    render_page: PageRenderer
    call: LoginCall  # `staff_login` or `candidate_login` (below)
    identifier_field: str  # the form field naming the account: "username", "identifier"
    identifier_missing: str  # its message when empty: "请输入用户名"
    accepts: Callable[[Principal], bool]  # whose tokens this UI takes (staff, candidates)
    refused_message: str  # what the others are told
    home: str  # where to go without a `next`

    async def _page(
        self,
        request: Request,
        session: Session,
        *,
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        problem: str | None = None,
        status: int = 200,
        flash: str | None = None,
    ) -> Response:
        captcha = None
        try:
            captcha = await self.identity.captcha()
        except IdentityUnavailable as exc:
            problem, status = exc.message, 503
        nxt = (values or {}).get("next") or request.query_params.get("next")
        context = {
            "captcha": captcha,
            "values": dict(values or {}),
            "errors": dict(errors or {}),
            "problem": problem,
            "flash": flash,
            "next": safe_next(nxt, ""),
        }
        return self.render_page(request, context, status, session)

    async def show(self, request: Request) -> Response:
        """GET: the form, in a pre-login session (its CSRF token protects the form)."""
        session = self.sessions.read(request) or self.sessions.new()
        probe = Response()  # pop_flash deletes the flash cookie on it
        flash = self.sessions.pop_flash(request, probe)
        response = await self._page(request, session, flash=flash)
        for value in probe.headers.getlist("set-cookie"):
            response.headers.append("set-cookie", value)
        return response

    async def submit(self, request: Request) -> Response:
        """POST: check, log in through identity, start the session, go on."""
        session = self.sessions.read(request)
        if session is None:
            return await self._page(
                request, self.sessions.new(), problem="页面已过期，请重新登录", status=403
            )
        await self.sessions.verify_csrf(request, session)
        form = await request.form()

        def field(name: str, limit: int) -> str:
            value = form.get(name)
            return value.strip()[:limit] if isinstance(value, str) else ""

        values = {
            self.identifier_field: field(self.identifier_field, 64),
            "captcha_id": field("captcha_id", 64),
            "next": field("next", 2000),
        }
        password = form.get("password")
        answer = field("captcha_answer", 10)
        errors: dict[str, str] = {}
        if not values[self.identifier_field]:
            errors[self.identifier_field] = self.identifier_missing
        if not isinstance(password, str) or not password:
            errors["password"] = "请输入密码"  # noqa: S105 (a message, not a password)
        if not answer:
            errors["captcha_answer"] = "请输入验证码"
        if not values["captcha_id"]:
            errors["captcha_answer"] = "验证码已失效，请重新输入"
        if errors or not isinstance(password, str):
            return await self._page(request, session, values=values, errors=errors, status=422)
        client_ip = client_host(request)
        try:
            tokens = await self.call(
                self.identity, values[self.identifier_field], password[:128],
                values["captcha_id"], answer, client_ip,
            )  # fmt: skip
        except IdentityRefused as exc:
            problem: str | None = exc.message
            if "captcha" in exc.code:
                errors["captcha_answer"], problem = exc.message, None
            status = exc.status if exc.status in (401, 403, 409, 422, 423, 429) else 400
            return await self._page(
                request, session, values=values, errors=errors, problem=problem, status=status
            )
        except IdentityUnavailable as exc:
            return await self._page(
                request, session, values=values, problem=exc.message, status=503
            )
        try:
            signed = await self.keeper.signed_in(tokens.into(self.sessions.new()))
        except IdentityUnavailable as exc:
            # Identity's keys cannot be had right now: not a refusal of this person. The new
            # tokens cannot be checked, so they go (best effort); logging in again later works.
            log.warning("login: cannot verify the new tokens", extra={"error": exc.detail_en})
            with contextlib.suppress(IdentityUnavailable):
                await self.identity.logout(tokens.refresh_token)
            return await self._page(
                request, session, values=values, problem=exc.message, status=503
            )
        if signed is None or not self.accepts(signed.principal):
            await self.identity.logout(tokens.refresh_token)
            return await self._page(
                request, session, values=values, problem=self.refused_message, status=403
            )
        log.info("signed in", extra={"account_id": signed.principal.account_id})
        return see_other(self.sessions, safe_next(values["next"], self.home), signed.session)

    async def logout(self, request: Request, session: Session, ended: EndedSessions) -> Response:
        """POST /logout (after the UI's own checks): end the session here and its refresh token
        at identity; the cookie is cleared."""
        await ended.end(session)
        refresh = session.data.get(REFRESH_KEY)
        if isinstance(refresh, str):
            try:
                await self.identity.logout(refresh)
            except IdentityUnavailable:
                log.warning("logout: identity unavailable; the refresh token expires by itself")
        response = RedirectResponse(self.sessions.login_url, status_code=303)
        self.sessions.clear(response)
        return response
