"""The candidate portal's plumbing: its parts, the signed-in candidate, rendering, errors.

Identity's tokens live in the `zk_portal` cookie (AES-GCM sealed, HttpOnly, SameSite=Lax;
`servicekit.webui`); pages call the application service's own service layer directly and the
other services over HTTP with the candidate's token.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from application_service import bootstrap
from eventkit.text import clean_text
from servicekit.auth import Principal, TokenVerifier
from servicekit.errors import AppError, ErrorView
from servicekit.identity_client import IdentityClient, TokenKeeper
from servicekit.limits import TOO_LARGE_CODE
from servicekit.web import EndedSessions, Session, WebSessions
from servicekit.webui import page_templates, render, require_signed_in, see_other, web_sessions

WEB_DIR = Path(__file__).resolve().parents[2] / "portal_web"
COOKIE = "zk_portal"
PAGE_PREFIXES = ("/login", "/register", "/logout", "/centre", "/degrees", "/apply", "/my/")
# The wizard's forms under /apply/ carry the certificate photo: their body limit (the API's
# `body_limits`) is above the photo's own (under 3M, as the form says and media enforces), so
# that a photo just over it gets media's refusal in place; past this one the form is not read.
FORM_BYTES = 4 * 1024 * 1024
TOO_LARGE = "提交的内容过大：证书照片文件应小于 3M，请压缩或换一张照片后重新上传"


def owns(path: str) -> bool:
    """The portal's paths (the rest is the JSON API, health and metrics)."""
    return path == "/" or path.startswith(PAGE_PREFIXES)


@dataclass
class Portal:
    """The portal's parts."""

    sessions: WebSessions
    keeper: TokenKeeper
    identity: IdentityClient
    ended: EndedSessions
    templates: Jinja2Templates


def make_portal(service: bootstrap.ApplicationService, verifier: TokenVerifier) -> Portal:
    """The portal's parts for a wired service (with its HTTP clients)."""
    if service.identity is None:
        raise RuntimeError("the portal needs the service wired with its HTTP clients")
    sessions = web_sessions(service.settings, cookie_name=COOKIE)
    ended = EndedSessions(
        service.pool, schema=bootstrap.PORTAL_SCHEMA, max_age=sessions.codec.max_age
    )
    return Portal(
        sessions,
        TokenKeeper(verifier, service.identity),
        service.identity,
        ended,
        page_templates(WEB_DIR / "templates"),
    )


def portal_of(request: Request) -> Portal:
    """The portal's parts (attached at startup)."""
    portal: Portal = request.app.state.portal
    return portal


def service_of(request: Request) -> bootstrap.ApplicationService:
    """The wired application service."""
    service: bootstrap.ApplicationService = request.app.state.application
    return service


@dataclass
class Visitor:
    """The signed-in candidate of this request."""

    principal: Principal
    candidate_id: uuid.UUID
    session: Session
    token: str


class NotACandidate(AppError):
    """A staff token at the candidate portal."""

    def __init__(self) -> None:
        super().__init__(
            "portal.not_a_candidate",
            "该账号不是考生账号，请使用考生账号登录",
            "staff token at the candidate portal",
            status=403,
        )


async def current_visitor(request: Request) -> Visitor:
    """The signed-in candidate (tokens renewed as needed); a 303 to /login otherwise; unsafe
    methods must carry the session's CSRF token."""
    portal = portal_of(request)
    signed = await require_signed_in(request, portal.sessions, portal.keeper, portal.ended)
    if not signed.principal.is_candidate:
        raise NotACandidate()
    visitor = Visitor(
        signed.principal, uuid.UUID(signed.principal.account_id), signed.session,
        signed.access_token,
    )  # fmt: skip
    request.state.visitor = visitor
    return visitor


VisitorDep = Annotated[Visitor, Depends(current_visitor)]


def page(
    request: Request,
    visitor: Visitor | None,
    name: str,
    context: Mapping[str, Any],
    *,
    status: int = 200,
    session: Session | None = None,
) -> Response:
    """Render a portal page and write the (renewed) session cookie."""
    portal = portal_of(request)
    idle = int(service_of(request).settings.idle_minutes)
    return render(
        portal.templates, portal.sessions, request, name,
        {"visitor": visitor, "idle_minutes": idle, **context},
        session=session or (visitor.session if visitor else None), status=status,
    )  # fmt: skip


def redirect(request: Request, url: str, session: Session | None) -> Response:
    """303 to `url`, with the renewed session."""
    return see_other(portal_of(request).sessions, url, session)


def error_page(request: Request, view: ErrorView) -> Response:
    """An error of one of the portal's pages, as a Chinese page with its code."""
    visitor: Visitor | None = getattr(request.state, "visitor", None)
    if view.code == TOO_LARGE_CODE and request.url.path.startswith("/apply/"):
        view = replace(view, message=TOO_LARGE)  # refused before the form was read
    return page(request, visitor, "error.html", {"error": view}, status=view.status)


def text(form: FormData, name: str, limit: int = 200) -> str:
    """A form field as trimmed text (at most `limit` + 1 characters, so "too long" shows)."""
    value = form.get(name)
    return clean_text(value)[: limit + 1] if isinstance(value, str) else ""
