"""The shared web-UI kit: session settings and keys, templates, rendering, error pages."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from servicekit.app import create_app
from servicekit.errors import AppError, ErrorView
from servicekit.web import LoginRequired
from servicekit.webui import (
    WebSessionSettings,
    beijing,
    decode_key,
    install_pages,
    page_templates,
    render,
    see_other,
    session_codec,
    web_sessions,
)

pytestmark = pytest.mark.unit

KEY = base64.b64encode(bytes(range(32))).decode()


class UiSettings(WebSessionSettings):
    model_config = SettingsConfigDict(env_prefix="UI_TEST_", extra="ignore", frozen=True)


def test_keys_decode_from_standard_or_url_safe_base64_only_at_32_bytes() -> None:
    raw = bytes(range(32))
    assert decode_key(KEY) == raw
    assert decode_key(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == raw
    for bad in ("", "not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="session key"):
            decode_key(bad)


def test_settings_refuse_bad_keys_and_read_their_own_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("UI_TEST_SESSION_KEY", KEY)
    monkeypatch.setenv("UI_TEST_IDLE_MINUTES", "15")
    settings = UiSettings()
    assert settings.idle_minutes == 15 and settings.session_key is not None
    with pytest.raises(ValidationError):
        UiSettings(session_key="dG9vIHNob3J0")
    with pytest.raises(ValidationError):
        UiSettings(old_session_keys="k0")
    with pytest.raises(ValidationError):
        UiSettings(session_key_id="bad id!")


def test_a_cookie_sealed_before_a_rotation_still_opens() -> None:
    old = UiSettings(session_key=KEY, session_key_id="k1")
    new_key = base64.b64encode(b"n" * 32).decode()
    rotated = UiSettings(session_key=new_key, session_key_id="k2", old_session_keys=f"k1={KEY}")
    sealed = session_codec(old, "zk_ui").seal(session_codec(old, "zk_ui").new({"a": 1}))
    opened = session_codec(rotated, "zk_ui").open(sealed)
    assert opened is not None and opened.data == {"a": 1}
    assert session_codec(rotated, "zk_other").open(sealed) is None  # another UI's cookie


def test_without_a_key_each_process_makes_its_own() -> None:
    settings = UiSettings()
    one, two = session_codec(settings, "zk_ui"), session_codec(settings, "zk_ui")
    assert two.open(one.seal(one.new())) is None


def test_beijing_time() -> None:
    assert beijing(datetime(2026, 11, 28, 18, 30, tzinfo=UTC)) == "2026-11-29 02:30"
    assert beijing(None) == ""


async def test_pages_render_with_the_session_and_errors_as_html(tmp_path: Path) -> None:
    (tmp_path / "page.html").write_text("<p>{{ when | beijing }} {{ csrf }} {{ extra }}</p>")
    (tmp_path / "error.html").write_text("<p>{{ error.code }}: {{ error.message }}</p>")
    templates = page_templates(tmp_path, extra="附加")
    sessions = web_sessions(UiSettings(session_key=KEY, secure_cookies=False), cookie_name="zk_ui")
    app: FastAPI = create_app("ui-test", version="0")

    def error_page(request: Request, view: ErrorView) -> Response:
        return templates.TemplateResponse(
            request, "error.html", {"error": view}, status_code=view.status
        )

    install_pages(app, owns=lambda path: not path.startswith("/api/"), render_error=error_page)

    @app.get("/page")
    async def page(request: Request) -> Response:
        session = sessions.new({"who": "me"})
        when = datetime(2026, 1, 1, tzinfo=UTC)
        return render(templates, sessions, request, "page.html", {"when": when}, session=session)

    @app.get("/go")
    async def go() -> Response:
        return see_other(sessions, "/page", sessions.new())

    @app.get("/private")
    async def private(request: Request) -> Response:
        raise LoginRequired(sessions.login_redirect(request, expired=False))

    @app.get("/broken")
    async def broken() -> Response:
        raise AppError("ui.broken", "出错了", "broken", status=409)

    @app.get("/api/broken")
    async def api_broken() -> Response:
        raise AppError("ui.broken", "出错了", "broken", status=409)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
        shown = await client.get("/page")
        assert shown.status_code == 200
        assert "2026-01-01 08:00" in shown.text and "附加" in shown.text
        assert "zk_ui=" in shown.headers["set-cookie"] and "HttpOnly" in shown.headers["set-cookie"]
        went = await client.get("/go")
        assert went.status_code == 303 and went.headers["location"] == "/page"
        assert "zk_ui=" in went.headers["set-cookie"]
        login = await client.get("/private?x=1")
        assert (
            login.status_code == 303
            and login.headers["location"] == "/login?next=%2Fprivate%3Fx%3D1"
        )
        page_error = await client.get("/broken")
        assert page_error.status_code == 409 and page_error.text == "<p>ui.broken: 出错了</p>"
        assert page_error.headers["x-request-id"]
        api_error = await client.get("/api/broken")
        assert api_error.status_code == 409 and api_error.json()["error"]["code"] == "ui.broken"
