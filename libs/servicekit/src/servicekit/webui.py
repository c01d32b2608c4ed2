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
import logging
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings

from servicekit.errors import ErrorView, set_error_page
from servicekit.web import LoginRequired, Session, SessionCodec, WebSessions, csrf_token

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


def install_pages(
    app: FastAPI,
    *,
    owns: Callable[[str], bool],
    render_error: Callable[[Request, ErrorView], Response],
) -> None:
    """Make `LoginRequired` a redirect, and render the errors of the paths the UI `owns` as its
    own HTML page (`render_error`); other paths (the JSON API) keep the JSON error body."""
    app.add_exception_handler(LoginRequired, _login_required)

    async def page(request: Request, view: ErrorView) -> Response | None:
        return render_error(request, view) if owns(request.url.path) else None

    set_error_page(app, page)

