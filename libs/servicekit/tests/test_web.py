"""Web sessions: sealed cookies, rotation, timeouts, login redirects, CSRF, security headers."""

import string
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from hypothesis import given, settings
from hypothesis import strategies as st

from servicekit import create_app
from servicekit.web import (
    CSRF_MESSAGE,
    EXPIRED_MESSAGE,
    MAX_COOKIE_BYTES,
    SecurityHeaders,
    Session,
    SessionCodec,
    WebSessions,
    csrf_token,
    safe_next,
)

pytestmark = pytest.mark.unit

KEY = bytes(range(32))
OLD_KEY = bytes(range(32, 64))
T0 = 1_700_000_000.0
ALPHABET = string.ascii_letters + string.digits + "-_"


class Clock:
    """An injectable wall clock."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def codec(clock: Clock | None = None, **options: Any) -> SessionCodec:
    options.setdefault("purpose", "zk_portal")
    options.setdefault("max_age", 8 * 3600)
    options.setdefault("idle_timeout", 1800)
    return SessionCodec(KEY, key_id="k2", clock=clock or Clock(), **options)


def build(
    clock: Clock, *, secure: bool = False, same_site: Any = "lax", origins: Any = None
) -> tuple[FastAPI, WebSessions]:
    sessions = WebSessions(
        codec(clock),
        cookie_name="zk_portal",
        secure=secure,
        same_site=same_site,
        origins=origins,
    )
    app = create_app("web-test", version="0")
    sessions.install(app)
    app.add_middleware(SecurityHeaders, img_sources=["https://s3.example.cn"])
    Current = Annotated[Session, Depends(sessions.require_session())]

    @app.get("/login", response_class=HTMLResponse)
    async def login_page(request: Request) -> HTMLResponse:
        response = HTMLResponse("")
        flash = sessions.pop_flash(request, response)
        response.body = response.render(f"<p>{flash or ''}</p>")
        response.headers["content-length"] = str(len(response.body))
        return response

    @app.post("/login")
    async def login(request: Request) -> RedirectResponse:
        target = safe_next(request.query_params.get("next"))
        response = RedirectResponse(target, status_code=303)
        sessions.write(response, sessions.new({"account_id": "a-1", "token": "t"}))
        return response

    @app.get("/page", response_class=HTMLResponse)
    async def page(session: Current) -> HTMLResponse:
        response = HTMLResponse(f"<form>{csrf_token(session)}</form>")
        sessions.write(response, session)
        return response

    @app.get("/me")
    async def me(session: Current) -> dict[str, Any]:
        return session.data

    @app.post("/submit")
    async def submit(session: Current) -> dict[str, bool]:
        return {"ok": True}

    @app.post("/logout")
    async def logout() -> RedirectResponse:
        response = RedirectResponse("/login", status_code=303)
        sessions.clear(response)
        return response

    return app, sessions


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def cookie_header(value: str) -> dict[str, str]:
    return {"Cookie": f"zk_portal={value}"}


# --- codec -----------------------------------------------------------------------------------


def test_round_trip_keeps_data_secret_and_times() -> None:
    c = codec()
    session = c.new({"account_id": "a-1", "name": "张三", "roles": ["reviewer"]})
    opened = c.open(c.seal(session))
    assert opened == session
    assert opened.issued_at == opened.last_active == int(T0)
    assert session.csrf_secret and session.csrf_secret != c.new().csrf_secret


def test_value_is_opaque_and_cookie_safe() -> None:
    c = codec()
    value = c.seal(c.new({"token": "secret-token-value"}))
    assert value.startswith("k2.")
    assert "secret" not in value
    assert set(value) <= set(ALPHABET + ".")


def test_every_tampered_byte_is_refused() -> None:
    c = codec()
    value = c.seal(c.new({"account_id": "a-1"}))
    for i, ch in enumerate(value):
        for replacement in {ALPHABET[(ALPHABET.find(ch) + 1) % len(ALPHABET)], "A", "."} - {ch}:
            tampered = value[:i] + replacement + value[i + 1 :]
            assert c.open(tampered) is None, (i, replacement)


def test_truncated_and_extended_values_are_refused() -> None:
    c = codec()
    value = c.seal(c.new({"account_id": "a-1"}))
    for n in range(len(value)):
        assert c.open(value[:n]) is None
    assert c.open(value + "A") is None
    assert c.open(value + "AAAA") is None


def test_foreign_key_and_other_purpose_are_refused() -> None:
    mine = codec()
    foreign = SessionCodec(OLD_KEY, key_id="k2", purpose="zk_portal", clock=Clock())
    review = codec(purpose="zk_review")
    session = mine.new({"a": 1})
    assert mine.open(foreign.seal(session)) is None
    assert review.open(mine.seal(session)) is None


def test_key_rotation_opens_old_cookies_and_seals_with_the_new_key() -> None:
    old = SessionCodec(OLD_KEY, key_id="k1", purpose="zk_portal", clock=Clock())
    rotated = codec(old_keys={"k1": OLD_KEY})
    session = old.new({"a": 1})
    old_value = old.seal(session)
    assert rotated.open(old_value) == session
    assert rotated.seal(session).startswith("k2.")
    assert codec().open(old_value) is None  # old key retired


def test_oversized_values_are_refused_and_not_sealed() -> None:
    c = codec()
    assert c.open("k2." + "A" * MAX_COOKIE_BYTES) is None
    with pytest.raises(ValueError, match="bytes"):
        c.seal(c.new({"blob": "x" * MAX_COOKIE_BYTES}))


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionCodec(b"short", key_id="k1")
    with pytest.raises(ValueError, match="key id"):
        SessionCodec(KEY, key_id="bad.id")
    with pytest.raises(ValueError, match="positive"):
        SessionCodec(KEY, key_id="k1", idle_timeout=0)


def test_idle_timeout_and_sliding_renewal() -> None:
    clock = Clock()
    c = codec(clock)
    session = c.new({})
    clock.now = T0 + 1800
    assert c.open(c.seal(session)) is not None
    clock.now = T0 + 1801
    assert c.open(c.seal(session)) is None
    renewed = session.touched(T0 + 1700)
    assert c.open(c.seal(renewed)) == renewed


def test_absolute_max_age_despite_activity() -> None:
    clock = Clock()
    c = codec(clock)
    session = c.new({})
    clock.now = T0 + 8 * 3600 + 1
    assert c.open(c.seal(session.touched(clock.now))) is None
    clock.now = T0 + 8 * 3600
    assert c.open(c.seal(session.touched(clock.now))) is not None


def test_times_from_the_future_are_refused() -> None:
    clock = Clock()
    c = codec(clock)
    future = c.new({}).touched(T0 + 3600)
    assert c.open(c.seal(future)) is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200) | st.text(alphabet=ALPHABET + ".", max_size=400).map("k2.".__add__))
def test_random_cookie_strings_never_raise(value: str) -> None:
    assert codec().open(value) is None


# --- next ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/applications/1?tab=photos", "/applications/1?tab=photos"),
        ("/", "/"),
        ("//evil.example", "/"),
        ("https://evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/ok\\", "/"),
        ("javascript:alert(1)", "/"),
        ("relative/path", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        ("/\t/evil.example", "/"),
        ("", "/"),
        (None, "/"),
        ("/" + "a" * 3000, "/"),
    ],
)
def test_safe_next(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


# --- WebSessions over HTTP -------------------------------------------------------------------


async def test_login_sets_cookie_with_attributes() -> None:
    app, _ = build(Clock())
    async with client(app) as http:
        response = await http.post("/login?next=/page")
    assert response.status_code == 303
    assert response.headers["location"] == "/page"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("zk_portal=k2.")
    attributes = {a.strip().lower() for a in set_cookie.split(";")[1:]}
    assert {"httponly", "path=/", "samesite=lax", f"max-age={8 * 3600}"} <= attributes
    assert "secure" not in attributes


async def test_secure_and_strict_cookie() -> None:
    app, _ = build(Clock(), secure=True, same_site="strict")
    async with client(app) as http:
        response = await http.post("/login")
    attributes = {a.strip().lower() for a in response.headers["set-cookie"].split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= attributes


async def test_login_refuses_unsafe_next() -> None:
    app, _ = build(Clock())
    async with client(app) as http:
        for bad in ("//evil.example", "https://evil.example", "/\\evil.example"):
            response = await http.post("/login", params={"next": bad})
            assert response.headers["location"] == "/"


async def test_session_is_read_and_renewed() -> None:
    clock = Clock()
    app, sessions = build(clock)
    value = sessions.codec.seal(sessions.new({"account_id": "a-1"}))
    clock.now = T0 + 1000
    async with client(app) as http:
        response = await http.get("/me", headers=cookie_header(value))
    assert response.status_code == 200
    assert response.json() == {"account_id": "a-1"}
    renewed = sessions.codec.open(response.cookies["zk_portal"])
    assert renewed is not None
    assert renewed.last_active == int(T0 + 1000)
    assert renewed.issued_at == int(T0)
    # Renewal keeps the session alive past the first idle deadline.
    clock.now = T0 + 2500
    assert sessions.codec.open(response.cookies["zk_portal"]) is not None


async def test_absent_session_redirects_with_next() -> None:
    app, _ = build(Clock())
    async with client(app) as http:
        response = await http.get("/page", params={"tab": "a"})
        assert response.status_code == 303
        location = urlsplit(response.headers["location"])
        assert location.path == "/login"
        assert parse_qs(location.query) == {"next": ["/page?tab=a"]}
        assert response.headers["cache-control"] == "no-store"


async def test_expired_session_redirects_clears_and_flashes() -> None:
    clock = Clock()
    app, sessions = build(clock)
    value = sessions.codec.seal(sessions.new({}))
    clock.now = T0 + 1801
    async with client(app) as http:
        response = await http.get("/page", headers=cookie_header(value))
        assert response.status_code == 303
        assert parse_qs(urlsplit(response.headers["location"]).query) == {"next": ["/page"]}
        cookies = response.headers.get_list("set-cookie")
        assert any(c.startswith('zk_portal="";') or "zk_portal=;" in c for c in cookies)
        flash = next(c for c in cookies if c.startswith("zk_portal_flash="))
        page = await http.get(
            "/login", headers={"Cookie": flash.split(";")[0]}, follow_redirects=False
        )
    assert EXPIRED_MESSAGE in page.text
    assert any(c.startswith("zk_portal_flash=") for c in page.headers.get_list("set-cookie"))


async def test_unsafe_request_path_is_not_used_as_next() -> None:
    app, sessions = build(Clock())
    async with client(app) as http:
        posted = await http.post("/submit")
    assert posted.status_code == 303
    assert posted.headers["location"] == "/login"  # no `next` for a form post
    scope = {
        "type": "http",
        "method": "GET",
        "path": "//evil.example/x",
        "query_string": b"",
        "headers": [],
        "server": ("testserver", 80),
        "scheme": "http",
    }
    redirect = sessions.login_redirect(Request(scope), expired=False)
    assert redirect.headers["location"] == "/login"


async def test_logout_clears_the_cookie() -> None:
    app, _ = build(Clock())
    async with client(app) as http:
        response = await http.post("/logout")
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("zk_portal=")
    assert "max-age=0" in set_cookie.lower()


# --- CSRF ------------------------------------------------------------------------------------


async def _post(
    app: FastAPI, value: str, data: dict[str, str] | None = None, **headers: str
) -> httpx.Response:
    async with client(app) as http:
        return await http.post("/submit", data=data, headers={**cookie_header(value), **headers})


def _session(sessions: WebSessions) -> tuple[Session, str]:
    session = sessions.new({"account_id": "a-1"})
    return session, sessions.codec.seal(session)


async def test_csrf_right_token_in_form_passes() -> None:
    app, sessions = build(Clock())
    session, value = _session(sessions)
    response = await _post(app, value, {"csrf_token": csrf_token(session)})
    assert response.status_code == 200, response.text
    assert response.json() == {"ok": True}


async def test_csrf_header_variant_passes() -> None:
    app, sessions = build(Clock())
    session, value = _session(sessions)
    response = await _post(app, value, **{"X-CSRF-Token": csrf_token(session)})
    assert response.status_code == 200


def _assert_csrf_refused(response: httpx.Response) -> None:
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "request.csrf"
    assert error["message"] == CSRF_MESSAGE


async def test_csrf_missing_token_is_refused() -> None:
    app, sessions = build(Clock())
    _, value = _session(sessions)
    _assert_csrf_refused(await _post(app, value, {"x": "1"}))
    _assert_csrf_refused(await _post(app, value))


async def test_csrf_wrong_token_is_refused() -> None:
    app, sessions = build(Clock())
    session, value = _session(sessions)
    _assert_csrf_refused(await _post(app, value, {"csrf_token": "wrong"}))
    _assert_csrf_refused(await _post(app, value, {"csrf_token": csrf_token(session, "other")}))
    _assert_csrf_refused(await _post(app, value, {"csrf_token": "令牌"}))


async def test_csrf_token_of_another_session_is_refused() -> None:
    app, sessions = build(Clock())
    _, value = _session(sessions)
    other, _ = _session(sessions)
    _assert_csrf_refused(await _post(app, value, {"csrf_token": csrf_token(other)}))


async def test_csrf_bad_origin_or_referer_is_refused() -> None:
    app, sessions = build(Clock())
    session, value = _session(sessions)
    form = {"csrf_token": csrf_token(session)}
    _assert_csrf_refused(await _post(app, value, form, Origin="https://evil.example"))
    _assert_csrf_refused(await _post(app, value, form, Origin="null"))
    _assert_csrf_refused(await _post(app, value, form, Referer="https://evil.example/page"))


async def test_csrf_good_origin_and_referer_pass() -> None:
    app, sessions = build(Clock())
    session, value = _session(sessions)
    form = {"csrf_token": csrf_token(session)}
    assert (await _post(app, value, form, Origin="http://testserver")).status_code == 200
    ok = await _post(app, value, form, Referer="http://testserver/page?x=1")
    assert ok.status_code == 200


async def test_csrf_configured_origin() -> None:
    app, sessions = build(Clock(), origins=["https://portal.example.cn"])
    session, value = _session(sessions)
    form = {"csrf_token": csrf_token(session)}
    good = await _post(app, value, form, Origin="https://portal.example.cn:443")
    assert good.status_code == 200
    _assert_csrf_refused(await _post(app, value, form, Origin="http://testserver"))


# --- security headers ------------------------------------------------------------------------


async def test_security_headers_on_html() -> None:
    clock = Clock()
    app, sessions = build(clock)
    session, value = _session(sessions)
    async with client(app) as http:
        response = await http.get("/page", headers=cookie_header(value))
    assert response.status_code == 200
    assert csrf_token(session) in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "img-src 'self' data: blob: https://s3.example.cn;" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "camera=()" in response.headers["permissions-policy"]
    assert response.headers["cache-control"] == "no-store"


async def test_security_headers_on_json() -> None:
    app, sessions = build(Clock())
    _, value = _session(sessions)
    async with client(app) as http:
        response = await http.get("/me", headers=cookie_header(value))
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in response.headers
    assert "cache-control" not in response.headers


async def test_security_headers_everywhere_when_configured() -> None:
    app = FastAPI()

    @app.get("/data")
    async def data() -> dict[str, int]:
        return {"a": 1}

    app.add_middleware(SecurityHeaders, all_responses=True)
    async with client(app) as http:
        response = await http.get("/data")
    assert response.headers["content-security-policy"].startswith("default-src 'self'")
    assert response.headers["x-frame-options"] == "DENY"


def test_security_headers_refuse_injected_sources() -> None:
    with pytest.raises(ValueError, match="CSP source"):
        SecurityHeaders(FastAPI(), img_sources=["https://x; script-src *"])
