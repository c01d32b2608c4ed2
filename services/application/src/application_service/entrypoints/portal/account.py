"""考生登录, 考生注册 and 退出登录."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from application_service.entrypoints.portal.base import (
    NotACandidate,
    VisitorDep,
    page,
    portal_of,
)
from servicekit.web import Session
from servicekit.webui import LoginPages, candidate_login


def login_pages(request: Request) -> LoginPages:
    """The portal's login form on identity (身份证号 or 准考证号, password, captcha)."""
    portal = portal_of(request)

    def render_login(
        request: Request, context: dict[str, Any], status: int, session: Session
    ) -> Response:
        return page(request, None, "login.html", context, status=status, session=session)

    return LoginPages(
        portal.sessions, portal.keeper, portal.identity, render_login, candidate_login,
        identifier_field="identifier", identifier_missing="请输入身份证号或准考证号",
        accepts=lambda p: p.is_candidate, refused_message=NotACandidate().message,
        home="/centre",
    )  # fmt: skip


def install_account(app: FastAPI) -> None:
    """The login, registration and logout routes."""

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return RedirectResponse("/centre", status_code=303)

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        """考生登录."""
        return await login_pages(request).show(request)

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        return await login_pages(request).submit(request)

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request, visitor: VisitorDep) -> Response:
        """退出登录."""
        return await login_pages(request).logout(request, visitor.session, portal_of(request).ended)
