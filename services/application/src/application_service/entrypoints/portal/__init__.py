"""The candidate portal (考生服务平台): server-rendered Chinese pages of the seed's journey, on
the application service's own service layer and the other services' APIs."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from application_service.entrypoints.portal.account import install_account
from application_service.entrypoints.portal.base import WEB_DIR, error_page, make_portal, owns
from application_service.entrypoints.portal.cases import install_cases
from application_service.entrypoints.portal.centre import install_centre
from application_service.entrypoints.portal.certificates import install_certificates
from application_service.entrypoints.portal.degrees import install_degrees
from application_service.entrypoints.portal.wizard import install_wizard
from servicekit.web import SecurityHeaders
from servicekit.webui import install_pages

__all__ = ["install_portal", "make_portal"]


def install_portal(app: FastAPI, photo_origins: str = "") -> None:
    """Add the portal's pages, static files, HTML error pages and security headers."""
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
    install_pages(app, owns=owns, render_error=error_page)
    origins = [o.strip().rstrip("/") for o in photo_origins.split(",") if o.strip()]
    app.add_middleware(SecurityHeaders, img_sources=origins)
    install_account(app)
    install_centre(app)
    install_degrees(app)
    install_wizard(app)
    install_certificates(app)
    install_cases(app)
