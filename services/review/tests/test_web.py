"""The reviewer UI over HTTP: login through identity, sessions, CSRF, the queue and the case
pages, every action and what a reviewer sees when something is wrong."""

from __future__ import annotations

import asyncio
import re
import uuid
from contextlib import aclosing
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

WebRig = Any  # conftest.WebRig: review's UI on a real identity

pytestmark = pytest.mark.integration


async def signed_in(web: WebRig, username: str) -> httpx.AsyncClient:
    client = web.client()
    response = await web.login(client, username)
    assert response.status_code == 303, response.text
    return client


async def test_a_point_reviewer_logs_in_and_sees_the_queue(web: WebRig) -> None:
    await web.feed.submit(case_number="MK2026000001")
    async with web.client() as client:
        first = await client.get("/queue")
        assert first.status_code == 303
        assert first.headers["location"].startswith("/login?next=%2Fqueue")
        response = await web.login(client, "point.reviewer1")
        assert response.status_code == 303
        assert response.headers["location"] == "/queue"
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie
        queue = await client.get("/queue")
        assert queue.status_code == 200, queue.text
        assert "MK2026000001" in queue.text
        assert "小店区确认点 审核员一" in queue.text
        assert "script-src 'self'" in queue.headers["content-security-policy"]


def form_of(html: str, action: str) -> dict[str, str]:
    return hidden_fields(html, action)


def hidden_fields(html: str, action: str) -> dict[str, str]:
    start = html.index(f'action="{action}"')
    chunk = html[start : html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', chunk))


async def test_claim_decide_return_and_approve_through_the_forms(web: WebRig) -> None:
    payload = await web.feed.submit(case_number="MK2026000002", courses=("00012", "00015"))
    case_id = payload["application_id"]
    url = f"/cases/{case_id}"
    point = await signed_in(web, "point.reviewer1")
    page = await point.get(url)
    assert page.status_code == 200, page.text
    assert "领取办理" in page.text and "照片" in page.text
    claim = await point.post(f"{url}/claim", data=form_of(page.text, f"{url}/claim"))
    assert claim.status_code == 303 and claim.headers["location"] == f"{url}?done=claimed"
    page = await point.get(url)
    assert "您正在办理此件" in page.text
    decide = form_of(page.text, f"{url}/initial-review")
    bad = await point.post(
        f"{url}/initial-review",
        data={**decide, "outcome-580401-00012": "granted", "outcome-580401-00015": "denied"},
    )
    assert bad.status_code == 422
    assert "不同意免考时请填写原因" in bad.text
    good = await point.post(
        f"{url}/initial-review",
        data={
            **decide,
            "outcome-580401-00012": "granted",
            "outcome-580401-00015": "denied",
            "reason-580401-00015": "证书级别或成绩未达到免考要求",
            "note": "英语(二)不符合",
        },
    )
    assert good.status_code == 303, good.text
    page = await point.get(url)
    assert "初审意见已提交" in page.text or "待省级复审" in page.text
    senior = await signed_in(web, "province.senior")
    page = await senior.get(url)
    assert page.status_code == 200
    claimed = await senior.post(f"{url}/claim", data=form_of(page.text, f"{url}/claim"))
    assert claimed.status_code == 303
    page = await senior.get(url)
    back = form_of(page.text, f"{url}/return")
    returned = await senior.post(f"{url}/return", data={**back, "reason_template": "R01"})
    assert returned.status_code == 303, returned.text
    page = await senior.get(url)
    assert "证书照片不清晰，请重新上传" in page.text
    assert "退回考生" in page.text  # the audit trail
    payload2: dict[str, Any] = await web.feed.submit(
        application_id=uuid.UUID(case_id), number=2, case_number="MK2026000002",
        courses=("00012",),
    )  # fmt: skip
    assert payload2["submission_number"] == 2
    page = await point.get(url)
    assert "本次修改" in page.text and "删除课程 00015" in page.text


# --- helpers of the tests below ---------------------------------------------------------------

PASSWORD = "Shenhe#2026pass"  # conftest.STAFF_PASSWORD
COOKIE = "zk_review"
KEY = "580401-00012"  # outcome-/reason- field suffix of the default course
ALERT = re.compile(r'<p class="alert" role="alert">(.*?)</p>', re.S)


def alert_of(html: str) -> str:
    found = ALERT.search(html)
    return found.group(1) if found else ""


async def captcha_answer(web: WebRig, captcha_id: str) -> str:
    from identity_service.testing import captcha_answer as solve

    answer: str = await solve(web.identity, captcha_id)
    return answer


async def login_fields(client: httpx.AsyncClient, next_: str | None = None) -> dict[str, str]:
    url = "/login" + (f"?{urlencode({'next': next_})}" if next_ is not None else "")
    page = await client.get(url)
    assert page.status_code == 200, page.text
    return hidden_fields(page.text, "/login")


async def post_login(
    web: WebRig,
    client: httpx.AsyncClient,
    username: str,
    password: str = PASSWORD,
    **overrides: str,
) -> httpx.Response:
    """The login form filled in (captcha solved), fields overridable."""
    fields = await login_fields(client)
    answer = await captcha_answer(web, fields["captcha_id"])
    data = {**fields, "username": username, "password": password, "captcha_answer": answer}
    return await client.post("/login", data={**data, **overrides})


def codec(web: WebRig) -> Any:
    return web.app.state.web.sessions.codec


def session_of(web: WebRig, value: str | httpx.AsyncClient | None) -> Any:
    """The session sealed in a cookie value (or a client's cookie jar); None if it does not open."""
    if isinstance(value, httpx.AsyncClient):
        value = value.cookies.get(COOKIE)
    return codec(web).open(value)


def set_cookies(response: httpx.Response, name: str = COOKIE) -> list[str]:
    return [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]


def with_cookie(web: WebRig, value: str) -> httpx.AsyncClient:
    """A fresh browser holding only this session cookie."""
    client = web.client()
    client.cookies.set(COOKIE, value)
    return client


async def case_of(web: WebRig, **fields: Any) -> tuple[str, str]:
    """A submitted case of point 140105 (unless `point=`): its id and page URL."""
    payload = await web.feed.submit(**fields)
    case_id = payload["application_id"]
    return case_id, f"/cases/{case_id}"


async def claim(client: httpx.AsyncClient, url: str) -> httpx.Response:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    return await client.post(f"{url}/claim", data=hidden_fields(page.text, f"{url}/claim"))


async def decision_types(web: WebRig, case_id: str) -> list[str]:
    from eventkit.store import EventStore

    own = await EventStore(web.service.pool).load("review.decision", case_id)
    return [e.event_type for e in own]


async def to_province(web: WebRig, point: httpx.AsyncClient, url: str) -> None:
    """The point reviewer claims the case and grants every course: it awaits the province."""
    assert (await claim(point, url)).status_code == 303
    page = await point.get(url)
    done = await point.post(
        f"{url}/initial-review",
        data={**hidden_fields(page.text, f"{url}/initial-review"), f"outcome-{KEY}": "granted"},
    )
    assert done.status_code == 303, done.text


async def staff_tokens_cookie(web: WebRig, username: str) -> str:
    """A session cookie holding identity's tokens for `username`, as a login would seal it
    (used for accounts the login form refuses, to reach the pages' own role check)."""
    identity = web.service.identity
    captcha = await identity.captcha()
    answer = await captcha_answer(web, captcha.captcha_id)
    tokens = await identity.staff_login(username, PASSWORD, captcha.captcha_id, answer)
    return str(codec(web).seal(tokens.into(codec(web).new())))


def is_html(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/html")


# --- 1. login ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form_next", "expected"),
    [
        ("/queue?status=decided", "/queue?status=decided"),
        ("//evil.example", "/queue"),
        ("https://evil.example", "/queue"),
        ("/\\evil.example", "/queue"),
    ],
)
async def test_login_goes_to_a_safe_next_only(web: WebRig, form_next: str, expected: str) -> None:
    async with web.client() as client:
        response = await post_login(web, client, "point.reviewer1", next=form_next)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == expected


async def test_the_login_page_keeps_a_safe_next_and_drops_an_unsafe_one(web: WebRig) -> None:
    async with web.client() as client:
        assert (await login_fields(client, "/cases/abc?x=1"))["next"] == "/cases/abc?x=1"
        assert (await login_fields(client, "//evil.example"))["next"] == ""
        assert (await login_fields(client, "https://evil.example/x"))["next"] == ""


async def test_a_wrong_password_shows_identitys_message_and_a_fresh_captcha(web: WebRig) -> None:
    async with web.client() as client:
        fields = await login_fields(client)
        answer = await captcha_answer(web, fields["captcha_id"])
        response = await client.post(
            "/login",
            data={**fields, "username": "point.reviewer1", "password": "wrong-Pass#1",
                  "captcha_answer": answer},
        )  # fmt: skip
        assert response.status_code == 401, response.text
        assert is_html(response)
        assert alert_of(response.text) == "账号或密码错误"
        again = hidden_fields(response.text, "/login")
        assert again["captcha_id"] and again["captcha_id"] != fields["captcha_id"]
        assert 'value="point.reviewer1"' in response.text  # the username is kept
        assert "wrong-Pass#1" not in response.text  # the password is not
        assert session_of(web, client) is not None and "rt" not in session_of(web, client).data


async def test_a_wrong_captcha_is_shown_next_to_the_captcha_field(web: WebRig) -> None:
    async with web.client() as client:
        fields = await login_fields(client)
        answer = await captcha_answer(web, fields["captcha_id"])
        wrong = "".join("3" if ch != "3" else "4" for ch in answer)
        response = await client.post(
            "/login",
            data={**fields, "username": "point.reviewer1", "password": PASSWORD,
                  "captcha_answer": wrong},
        )  # fmt: skip
        assert response.status_code == 400, response.text
        assert re.search(r'<p class="error" id="captcha-error">验证码错误[^<]*</p>', response.text)
        assert alert_of(response.text) == ""  # not a page-level problem
        assert hidden_fields(response.text, "/login")["captcha_id"] != fields["captcha_id"]


async def test_empty_login_fields_are_422_with_field_messages(web: WebRig) -> None:
    async with web.client() as client:
        fields = await login_fields(client)
        response = await client.post(
            "/login", data={**fields, "username": " ", "password": "", "captcha_answer": ""}
        )
        assert response.status_code == 422, response.text
        assert '<p class="error" id="username-error">请输入用户名</p>' in response.text
        assert '<p class="error" id="password-error">请输入密码</p>' in response.text
        assert '<p class="error" id="captcha-error">请输入验证码</p>' in response.text
        assert 'aria-invalid="true" aria-describedby="username-error"' in response.text


async def test_a_login_post_without_the_pre_login_session_is_refused(web: WebRig) -> None:
    async with web.client() as client:
        fields = await login_fields(client)
        answer = await captcha_answer(web, fields["captcha_id"])
        client.cookies.clear()
        response = await client.post(
            "/login",
            data={**fields, "username": "point.reviewer1", "password": PASSWORD,
                  "captcha_answer": answer},
        )  # fmt: skip
        assert response.status_code == 403, response.text
        assert "页面已过期" in alert_of(response.text)
        assert session_of(web, client) is not None  # a fresh pre-login session to retry with
        assert "rt" not in session_of(web, client).data


async def test_a_login_post_with_a_wrong_csrf_token_is_refused(web: WebRig) -> None:
    async with web.client() as client:
        response = await post_login(web, client, "point.reviewer1", csrf_token="A" * 43)
        assert response.status_code == 403, response.text
        assert is_html(response) and "request.csrf" in response.text
        assert "location" not in response.headers
        session = session_of(web, client)
        assert session is not None and "rt" not in session.data


async def test_an_ops_account_is_not_let_into_the_reviewer_ui(web: WebRig) -> None:
    async with web.client() as client:
        response = await post_login(web, client, "ops.engineer")
        assert response.status_code == 403, response.text
        assert "该账号不是审核人员" in alert_of(response.text)
        for cookie in set_cookies(response):
            value = cookie.split(";")[0].partition("=")[2].strip('"')
            session = session_of(web, value)
            assert session is None or ("rt" not in session.data and "at" not in session.data)
        assert (await client.get("/queue")).status_code == 303


async def test_identity_unreachable_makes_the_login_page_503_not_500(web: WebRig) -> None:
    from servicekit.identity_client import IdentityClient

    down = IdentityClient("http://127.0.0.1:9", timeout=0.5)
    parts = web.app.state.web
    async with web.client() as client:
        fields = await login_fields(client)  # identity still up: a form to post
        answer = await captcha_answer(web, fields["captcha_id"])
        parts.identity = down
        try:
            form = await client.get("/login")
            assert form.status_code == 503, form.text
            assert "统一身份认证服务暂时不可用" in alert_of(form.text)
            assert "disabled" in form.text  # no captcha: the button is disabled
            response = await client.post(
                "/login",
                data={**fields, "username": "point.reviewer1", "password": PASSWORD,
                      "captcha_answer": answer},
            )  # fmt: skip
            assert response.status_code == 503, response.text
            assert "统一身份认证服务暂时不可用" in alert_of(response.text)
        finally:
            parts.identity = web.service.identity
            await down.aclose()


# --- 2. sessions ------------------------------------------------------------------------------


async def test_logout_clears_the_cookie_and_ends_the_refresh_token(web: WebRig) -> None:
    from servicekit.identity_client import IdentityRefused

    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        refresh = session_of(web, client).data["rt"]
        page = await client.get("/queue")
        response = await client.post("/logout", data=hidden_fields(page.text, "/logout"))
        assert response.status_code == 303 and response.headers["location"] == "/login"
        (cleared,) = set_cookies(response)
        assert "Max-Age=0" in cleared or "expires=Thu, 01 Jan 1970" in cleared
        assert client.cookies.get(COOKIE) is None
        assert (await client.get("/queue")).status_code == 303
        with pytest.raises(IdentityRefused):
            await web.service.identity.refresh(refresh)


async def test_the_old_cookie_is_refused_after_logout(web: WebRig) -> None:
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        old = client.cookies[COOKIE]
        page = await client.get("/queue")
        await client.post("/logout", data=hidden_fields(page.text, "/logout"))
    async with with_cookie(web, old) as replay:
        again = await replay.get("/queue")
        assert again.status_code == 303, "the logged-out session still opens the queue"
        assert again.headers["location"].startswith("/login")


async def test_a_tampered_cookie_goes_to_login(web: WebRig) -> None:
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        value = client.cookies[COOKIE]
        assert (await client.get("/queue")).status_code == 200
    kid, _, blob = value.partition(".")
    flipped = blob[:20] + ("A" if blob[20] != "A" else "B") + blob[21:]
    for tampered in (f"{kid}.{flipped}", f"{kid}.{blob[:-4]}", "k9." + blob, "garbage"):
        async with with_cookie(web, tampered) as evil:
            response = await evil.get("/queue?status=decided")
            assert response.status_code == 303, tampered
            assert response.headers["location"] == "/login?next=%2Fqueue%3Fstatus%3Ddecided"


async def test_an_idle_session_expires_with_a_flash_on_the_login_page(
    web: WebRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions = codec(web)
    real = sessions._clock
    async with web.client() as client:
        monkeypatch.setattr(sessions, "_clock", lambda: real() - 29 * 60)
        assert (await post_login(web, client, "point.reviewer1")).status_code == 303
        monkeypatch.setattr(sessions, "_clock", real)
        fresh = await client.get("/queue")  # idle 29 minutes: still signed in
        assert fresh.status_code == 200, fresh.text
        monkeypatch.setattr(sessions, "_clock", lambda: real() - 31 * 60)
        assert (await post_login(web, client, "point.reviewer1")).status_code == 303
        monkeypatch.setattr(sessions, "_clock", real)
        idle = await client.get("/queue?q=MK")
        assert idle.status_code == 303
        assert idle.headers["location"] == "/login?next=%2Fqueue%3Fq%3DMK"
        assert client.cookies.get(COOKIE) is None  # the dead cookie is cleared
        login = await client.get(idle.headers["location"])
        assert login.status_code == 200
        assert '<p class="notice" role="status">登录已超时，请重新登录</p>' in login.text
        assert hidden_fields(login.text, "/login")["next"] == "/queue?q=MK"
        once = await client.get("/login")
        assert "登录已超时" not in once.text  # the flash shows once


async def test_an_expired_access_token_is_renewed_with_the_refresh_token(
    web: WebRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    keeper = web.app.state.web.keeper
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        before = session_of(web, client).data
        # identity's access tokens live 15 minutes: the keeper's clock 14m50s on
        later = datetime.now(UTC) + timedelta(minutes=14, seconds=50)
        monkeypatch.setattr(keeper, "_clock", lambda: later)
        response = await client.get("/queue")
        assert response.status_code == 200, response.text
        after = session_of(web, client).data
        assert after["at"] != before["at"] and after["rt"] != before["rt"]
        monkeypatch.undo()
        again = await client.get("/queue")
        assert again.status_code == 200
        assert session_of(web, client).data["rt"] == after["rt"]  # no needless refresh


async def test_a_refused_refresh_sends_the_reviewer_to_login(
    web: WebRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    keeper = web.app.state.web.keeper
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        await web.service.identity.logout(session_of(web, client).data["rt"])
        assert (await client.get("/queue")).status_code == 200  # the access token still lives
        later = datetime.now(UTC) + timedelta(minutes=16)
        monkeypatch.setattr(keeper, "_clock", lambda: later)
        response = await client.get("/queue")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Fqueue"
        assert client.cookies.get(COOKIE) is None
        login = await client.get("/login")
        assert "登录已超时，请重新登录" in login.text


async def test_identity_down_during_a_renewal_is_a_503_page_not_a_logout(
    web: WebRig, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from servicekit.identity_client import IdentityClient

    keeper = web.app.state.web.keeper
    down = IdentityClient("http://127.0.0.1:9", timeout=0.5)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        later = datetime.now(UTC) + timedelta(minutes=16)
        monkeypatch.setattr(keeper, "_clock", lambda: later)
        monkeypatch.setattr(keeper, "_identity", down)
        try:
            response = await client.get("/queue")
        finally:
            await down.aclose()
        assert response.status_code == 503, response.text
        assert is_html(response) and "统一身份认证服务暂时不可用" in response.text
        assert "web.identity_unavailable" in response.text
        assert client.cookies.get(COOKIE) is not None  # still signed in
        monkeypatch.undo()
        assert (await client.get("/queue")).status_code == 200


# --- 3. CSRF ----------------------------------------------------------------------------------


async def test_every_post_route_needs_the_sessions_csrf_token_and_origin(web: WebRig) -> None:
    case_id, url = await case_of(web)
    routes = ["/logout", "/queue/next"] + [
        f"{url}/{a}" for a in ("claim", "release", "initial-review", "return", "approve")
    ]
    other = await signed_in(web, "point.reviewer2")
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client), aclosing(other):
        theirs = hidden_fields((await other.get("/queue")).text, "/logout")["csrf_token"]
        mine = hidden_fields((await client.get("/queue")).text, "/logout")["csrf_token"]
        assert theirs != mine
        for route in routes:
            base = {"submission_number": "1", f"outcome-{KEY}": "granted", "reason": "x"}
            for data, headers in (
                (base, {}),
                ({**base, "csrf_token": ""}, {}),
                ({**base, "csrf_token": theirs}, {}),
                ({**base, "csrf_token": mine}, {"Origin": "http://evil.example"}),
                ({**base, "csrf_token": mine}, {"Referer": "https://evil.example/x"}),
            ):
                response = await client.post(route, data=data, headers=headers)
                assert response.status_code == 403, (route, data, headers, response.text)
                assert is_html(response), route
                assert (
                    "request.csrf" in response.text and "页面已过期，请刷新后重试" in response.text
                )
        assert await decision_types(web, case_id) == []
        ok = await client.post(
            f"{url}/claim",
            data={"csrf_token": mine, "submission_number": "1"},
            headers={"Origin": "http://review"},
        )
        assert ok.status_code == 303, ok.text
        assert await decision_types(web, case_id) == ["ReviewClaimed"]
        out = await client.post("/logout", data={"csrf_token": mine})
        assert out.status_code == 303


# --- 4. who may see and act -------------------------------------------------------------------


async def test_a_case_is_seen_only_by_its_point_and_the_province(web: WebRig) -> None:
    case_id, url = await case_of(web, case_number="MK2026777001")
    point = await signed_in(web, "point.reviewer1")
    other = await signed_in(web, "other.reviewer")
    senior = await signed_in(web, "province.senior")
    async with aclosing(point), aclosing(other), aclosing(senior):
        assert (await point.get(url)).status_code == 200
        assert (await senior.get(url)).status_code == 200
        queue = await other.get("/queue?status=all")
        assert queue.status_code == 200 and "MK2026777001" not in queue.text
        assert "MK2026777001" in (await point.get("/queue")).text
        hidden = await other.get(url)
        assert hidden.status_code == 404 and is_html(hidden)
        assert "未找到该申请" in hidden.text and "MK2026777001" not in hidden.text
        csrf = hidden_fields(hidden.text, "/logout")["csrf_token"]
        for action in ("claim", "release", "initial-review", "return", "approve"):
            response = await other.post(
                f"{url}/{action}",
                data={"csrf_token": csrf, "submission_number": "1",
                      f"outcome-{KEY}": "granted", "reason": "伪造"},
            )  # fmt: skip
            assert response.status_code == 404, (action, response.text)
            assert is_html(response) and "review.case_not_found" in response.text
        missing = await point.get(f"/cases/{uuid.uuid4()}")
        assert missing.status_code == 404 and is_html(missing)
        bad_id = await point.get("/cases/not-a-uuid")
        assert bad_id.status_code == 422 and is_html(bad_id)
    assert await decision_types(web, case_id) == []


async def test_a_withdrawn_draft_is_404_on_every_case_page_like_an_unknown_id(
    web: WebRig,
) -> None:
    draft_url = f"/cases/{await web.feed.withdrawn_draft()}"
    unknown_url = f"/cases/{uuid.uuid4()}"
    per_case = {
        (method, route.path.removeprefix("/cases/{application_id}"))
        for route in web.app.routes
        if getattr(route, "path", "").startswith("/cases/{application_id}")
        for method in getattr(route, "methods", ()) - {"HEAD"}
    }
    actions = ("claim", "release", "initial-review", "return", "approve")
    assert per_case == {("GET", "")} | {("POST", f"/{a}") for a in actions}
    for username in ("point.reviewer1", "province.senior"):
        client = await signed_in(web, username)
        async with aclosing(client):
            pages = {}
            for url in (draft_url, unknown_url):
                pages[url] = await client.get(url)
                assert pages[url].status_code == 404 and is_html(pages[url]), pages[url].text
                assert "未找到该申请" in pages[url].text
            csrf = hidden_fields(pages[unknown_url].text, "/logout")["csrf_token"]
            for action in actions:
                for url in (draft_url, unknown_url):
                    response = await client.post(
                        f"{url}/{action}",
                        data={"csrf_token": csrf, "submission_number": "1",
                              f"outcome-{KEY}": "granted", "reason": "照片不清晰"},
                    )  # fmt: skip
                    assert response.status_code == 404, (username, action, response.text)
                    assert is_html(response) and "review.case_not_found" in response.text


async def test_a_staff_token_without_a_reviewer_role_is_refused_by_the_pages(web: WebRig) -> None:
    _, url = await case_of(web)
    async with with_cookie(web, await staff_tokens_cookie(web, "ops.engineer")) as ops:
        for path in ("/queue", url):
            response = await ops.get(path)
            assert response.status_code == 403, response.text
            assert is_html(response) and "该账号不是审核人员" in response.text
            assert "review.not_a_reviewer" in response.text


async def test_a_point_reviewer_cannot_act_on_a_case_awaiting_the_province(web: WebRig) -> None:
    case_id, url = await case_of(web)
    point = await signed_in(web, "point.reviewer1")
    async with aclosing(point):
        await to_province(web, point, url)
        page = await point.get(url)
        assert page.status_code == 200
        assert "待省级复审" in page.text and "该阶段由省级复审办理" in page.text
        for action in ("claim", "release", "initial-review", "return", "approve"):
            assert f'action="{url}/{action}"' not in page.text
        csrf = hidden_fields(page.text, "/logout")["csrf_token"]
        before = await decision_types(web, case_id)
        forged = await point.post(
            f"{url}/approve",
            data={"csrf_token": csrf, "submission_number": "1", f"outcome-{KEY}": "granted"},
        )
        assert forged.status_code in (403, 409), forged.text
        assert is_html(forged) and "省级复审阶段，您无权办理" in alert_of(forged.text)
        claimed = await point.post(
            f"{url}/claim", data={"csrf_token": csrf, "submission_number": "1"}
        )
        assert claimed.status_code in (403, 409), claimed.text
        assert re.search(r"[\u4e00-\u9fff]", alert_of(claimed.text))
        assert await decision_types(web, case_id) == before


# --- 5. claims --------------------------------------------------------------------------------


async def test_a_case_claimed_by_a_colleague_shows_its_holder_and_no_forms(web: WebRig) -> None:
    case_id, url = await case_of(web)
    first = await signed_in(web, "point.reviewer1")
    second = await signed_in(web, "point.reviewer2")
    async with aclosing(first), aclosing(second):
        assert (await claim(first, url)).status_code == 303
        page = await second.get(url)
        assert page.status_code == 200
        assert "由 <strong>小店区确认点 审核员一</strong> 办理中" in page.text
        assert 'id="decide-form"' not in page.text and 'id="return-form"' not in page.text
        assert f'action="{url}/claim"' not in page.text
        csrf = hidden_fields(page.text, "/logout")["csrf_token"]
        forged = await second.post(
            f"{url}/claim", data={"csrf_token": csrf, "submission_number": "1"}
        )
        assert forged.status_code == 409, forged.text
        assert "该申请正由" in alert_of(forged.text)
        assert "小店区确认点 审核员一" in forged.text
        decided = await second.post(
            f"{url}/initial-review",
            data={"csrf_token": csrf, "submission_number": "1", f"outcome-{KEY}": "granted"},
        )
        assert decided.status_code == 409 and "该申请正由" in alert_of(decided.text)
        assert await decision_types(web, case_id) == ["ReviewClaimed"]


async def test_the_refused_claims_message_names_the_holder(web: WebRig) -> None:
    _, url = await case_of(web)
    first = await signed_in(web, "point.reviewer1")
    second = await signed_in(web, "point.reviewer2")
    async with aclosing(first), aclosing(second):
        assert (await claim(first, url)).status_code == 303
        page = await second.get(url)
        forged = await second.post(
            f"{url}/claim",
            data={**hidden_fields(page.text, "/logout"), "submission_number": "1"},
        )
        assert forged.status_code == 409
        assert "小店区确认点 审核员一" in alert_of(forged.text), alert_of(forged.text)


async def test_claim_renew_and_release_through_the_case_page(web: WebRig) -> None:
    case_id, url = await case_of(web, case_number="MK2026555001")
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        first = await claim(client, url)
        assert first.headers["location"] == f"{url}?done=claimed"
        page = await client.get(first.headers["location"])
        assert "已领取该申请，请在领取有效期内办理" in page.text
        assert "续期" in page.text and f'action="{url}/release"' in page.text
        renewed = await claim(client, url)
        assert renewed.status_code == 303
        assert renewed.headers["location"] == f"{url}?done=renewed"
        assert "领取已续期" in (await client.get(renewed.headers["location"])).text
        await web.feed.sync()
        mine = await client.get("/queue?claim=mine")
        assert "MK2026555001" in mine.text and "（我）" in mine.text
        page = await client.get(url)
        released = await client.post(
            f"{url}/release", data=hidden_fields(page.text, f"{url}/release")
        )
        assert released.status_code == 303
        assert released.headers["location"] == f"{url}?done=released"
        page = await client.get(released.headers["location"])
        assert "已释放，该申请已回到待审列表" in page.text and "尚未领取" in page.text
        await web.feed.sync()
        assert "MK2026555001" not in (await client.get("/queue?claim=mine")).text
        assert "MK2026555001" in (await client.get("/queue?claim=unclaimed")).text
        kinds = await decision_types(web, case_id)
        assert kinds[0] == "ReviewClaimed" and kinds[-1] == "ReviewReleased"
        assert "InitialReviewCompleted" not in kinds and "ApplicationReturned" not in kinds


async def test_next_claims_the_oldest_unclaimed_case_then_reports_an_empty_queue(
    web: WebRig,
) -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    newer, _ = await case_of(web, occurred_at=now - timedelta(days=1))
    oldest, _ = await case_of(web, occurred_at=now - timedelta(days=3))
    await case_of(web, occurred_at=now - timedelta(days=2), point="140106")  # not this point's
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        csrf = {"csrf_token": hidden_fields((await client.get("/queue")).text, "/logout")[
            "csrf_token"]}  # fmt: skip
        first = await client.post("/queue/next", data=csrf)
        assert first.status_code == 303
        assert first.headers["location"] == f"/cases/{oldest}?done=claimed"
        await web.feed.sync()
        second = await client.post("/queue/next", data=csrf)
        assert second.headers["location"] == f"/cases/{newer}?done=claimed"
        await web.feed.sync()
        third = await client.post("/queue/next", data=csrf)
        assert third.status_code == 303 and third.headers["location"] == "/queue?empty=1"
        empty = await client.get(third.headers["location"])
        assert empty.status_code == 200
        assert "当前没有可领取的待审申请" in empty.text
    assert await decision_types(web, oldest) == ["ReviewClaimed"]


# --- 6. decision forms ------------------------------------------------------------------------


async def claimed_form(
    web: WebRig, client: httpx.AsyncClient, url: str, action: str = "initial-review"
) -> dict[str, str]:
    assert (await claim(client, url)).status_code == 303
    return hidden_fields((await client.get(url)).text, f"{url}/{action}")


async def test_a_missing_outcome_is_422_and_keeps_what_was_entered(web: WebRig) -> None:
    case_id, url = await case_of(web, courses=("00012", "00015"))
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        form = await claimed_form(web, client, url)
        response = await client.post(
            f"{url}/initial-review",
            data={**form, "outcome-580401-00012": "denied",
                  "reason-580401-00012": "证书成绩未达要求", "note": "请复核英语成绩"},
        )  # fmt: skip
        assert response.status_code == 422, response.text
        assert '<p class="error" id="outcome-580401-00015-error">请选择同意免考或不同意</p>' in (
            response.text
        )
        assert "outcome-580401-00012-error" not in response.text
        assert re.search(r'name="outcome-580401-00012" value="denied" class="deny" checked', (
            response.text))  # fmt: skip
        assert 'value="证书成绩未达要求"' in response.text
        assert ">请复核英语成绩</textarea>" in response.text
        assert alert_of(response.text) == "请按提示修改后再提交"
        forged = await client.post(
            f"{url}/initial-review", data={**form, f"outcome-{KEY}": "maybe"}
        )
        assert forged.status_code == 422
    assert await decision_types(web, case_id) == ["ReviewClaimed"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({f"outcome-{KEY}": "denied"}, f"reason-{KEY}", "不同意免考时请填写原因"),
        ({f"outcome-{KEY}": "denied", f"reason-{KEY}": "   "}, f"reason-{KEY}",
         "不同意免考时请填写原因"),
        ({f"outcome-{KEY}": "denied", f"reason-{KEY}": "长" * 501}, f"reason-{KEY}",
         "原因不能超过500字"),
        ({f"outcome-{KEY}": "granted", "note": "意" * 501}, "note", "初审意见不能超过500字"),
    ],
)  # fmt: skip
async def test_bad_initial_review_inputs_are_422_next_to_the_field(
    web: WebRig, fields: dict[str, str], field: str, message: str
) -> None:
    case_id, url = await case_of(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        form = await claimed_form(web, client, url)
        response = await client.post(f"{url}/initial-review", data={**form, **fields})
        assert response.status_code == 422, response.text
        assert f'<p class="error" id="{field}-error">{message}</p>' in response.text
    assert await decision_types(web, case_id) == ["ReviewClaimed"]


async def test_a_reason_of_exactly_500_characters_is_accepted(web: WebRig) -> None:
    case_id, url = await case_of(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        form = await claimed_form(web, client, url)
        response = await client.post(
            f"{url}/initial-review",
            data={**form, f"outcome-{KEY}": "denied", f"reason-{KEY}": "长" * 500},
        )
        assert response.status_code == 303, response.text
    assert await decision_types(web, case_id) == ["ReviewClaimed", "InitialReviewCompleted"]


async def test_a_bad_objection_deadline_is_422(web: WebRig) -> None:
    case_id, url = await case_of(web)
    point = await signed_in(web, "point.reviewer1")
    senior = await signed_in(web, "province.senior")
    async with aclosing(point), aclosing(senior):
        await to_province(web, point, url)
        form = await claimed_form(web, senior, url, "approve")
        for bad in ("2026-13-40", "明天", "2026/12/01"):
            response = await senior.post(
                f"{url}/approve",
                data={**form, f"outcome-{KEY}": "granted", "objection_deadline": bad},
            )
            assert response.status_code == 422, (bad, response.text)
            assert '<p class="error" id="objection_deadline-error">日期格式应为 年-月-日</p>' in (
                response.text
            )
        assert "ApplicationApproved" not in await decision_types(web, case_id)


async def test_an_objection_deadline_out_of_the_sane_range_is_422_on_the_page(
    web: WebRig,
) -> None:
    case_id, url = await case_of(web)
    point = await signed_in(web, "point.reviewer1")
    senior = await signed_in(web, "province.senior")
    async with aclosing(point), aclosing(senior):
        await to_province(web, point, url)
        form = await claimed_form(web, senior, url, "approve")
        for bad in ("2101-01-01", "9999-12-31"):
            response = await senior.post(
                f"{url}/approve",
                data={**form, f"outcome-{KEY}": "granted", "objection_deadline": bad},
            )
            assert response.status_code == 422, (bad, response.text)
            assert (
                '<p class="error" id="objection_deadline-error">'
                "核查截止日期须在 2000-01-01 至 2100-12-31 之间</p>"
            ) in response.text
        assert "ApplicationApproved" not in await decision_types(web, case_id)


async def test_a_decision_on_a_stale_submission_is_refused_without_an_event(web: WebRig) -> None:
    case_id, url = await case_of(web, case_number="MK2026333001")
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        form = await claimed_form(web, client, url)
        back = hidden_fields((await client.get(url)).text, f"{url}/return")
        returned = await client.post(f"{url}/return", data={**back, "reason_template": "R01"})
        assert returned.status_code == 303, returned.text
        await web.feed.submit(
            application_id=uuid.UUID(case_id), number=2, case_number="MK2026333001"
        )
        stale_claim = await client.post(f"{url}/claim", data=form)  # the old page's form
        assert stale_claim.status_code == 409, stale_claim.text
        assert alert_of(stale_claim.text) == "考生已重新提交该申请，请刷新后按最新内容审核"
        assert (await claim(client, url)).status_code == 303  # submission 2
        before = await decision_types(web, case_id)
        stale = await client.post(
            f"{url}/initial-review", data={**form, f"outcome-{KEY}": "granted"}
        )
        assert stale.status_code in (409, 422), stale.text
        assert alert_of(stale.text) == "考生已重新提交该申请，请刷新后按最新内容审核"
        assert await decision_types(web, case_id) == before


async def test_a_missing_or_bad_submission_number_is_422(web: WebRig) -> None:
    case_id, url = await case_of(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        form = await claimed_form(web, client, url)
        for number in (None, "", "0", "-1", "abc", "1.0"):
            data = {**form, f"outcome-{KEY}": "granted"}
            if number is None:
                del data["submission_number"]
            else:
                data["submission_number"] = number
            response = await client.post(f"{url}/initial-review", data=data)
            assert response.status_code == 422, (number, response.text)
            assert is_html(response) and 'id="decide-form"' in response.text
        huge = await client.post(
            f"{url}/initial-review",
            data={**form, f"outcome-{KEY}": "granted", "submission_number": "9" * 50},
        )
        assert huge.status_code in (409, 422), huge.text  # not a 500
    assert await decision_types(web, case_id) == ["ReviewClaimed"]


async def test_a_missing_submission_number_tells_the_reviewer_to_refresh(web: WebRig) -> None:
    _, url = await case_of(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        form = await claimed_form(web, client, url)
        del form["submission_number"]
        response = await client.post(
            f"{url}/initial-review", data={**form, f"outcome-{KEY}": "granted"}
        )
        assert response.status_code == 422
        assert "页面信息不完整，请刷新后重试" in response.text


async def test_bad_return_forms_are_422(web: WebRig) -> None:
    case_id, url = await case_of(web, courses=("00012", "00015"))
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        form = await claimed_form(web, client, url, "return")
        for fields, field, message in (
            ({}, "reason", "请填写退回原因，或选择常用原因"),
            ({"reason": "  ", "reason_template": ""}, "reason", "请填写退回原因，或选择常用原因"),
            ({"reason_template": "R99"}, "reason", "请填写退回原因，或选择常用原因"),
            ({"reason": "退" * 501}, "reason", "退回原因不能超过500字"),
            ({"reason_template": "R01", "course-note-00015": "注" * 501}, "course-note-00015",
             "说明不能超过500字"),
        ):  # fmt: skip
            response = await client.post(f"{url}/return", data={**form, **fields})
            assert response.status_code == 422, (fields, response.text)
            assert f'<p class="error" id="{field}-error">{message}</p>' in response.text
        kept = await client.post(
            f"{url}/return", data={**form, "reason_template": "R99", "course-note-00012": "保留我"}
        )
        assert 'value="保留我"' in kept.text
        assert await decision_types(web, case_id) == ["ReviewClaimed"]
        ok = await client.post(
            f"{url}/return",
            data={**form, "reason": "成绩单未盖章", "course-note-00015": "请补充成绩单"},
        )
        assert ok.status_code == 303, ok.text
        page = await client.get(url)
        assert "退回原因：成绩单未盖章" in page.text and "00015：请补充成绩单" in page.text
    assert await decision_types(web, case_id) == ["ReviewClaimed", "ApplicationReturned"]


async def test_two_simultaneous_approvals_one_wins(web: WebRig) -> None:
    case_id, url = await case_of(web)
    point = await signed_in(web, "point.reviewer1")
    senior = await signed_in(web, "province.senior")
    async with aclosing(point), aclosing(senior):
        await to_province(web, point, url)
        form = await claimed_form(web, senior, url, "approve")
        twin = with_cookie(web, senior.cookies[COOKIE])  # the same senior in a second tab
        async with twin:
            data = {**form, f"outcome-{KEY}": "granted"}
            # A gate makes the race real rather than lucky: while a transaction holds the event
            # table in SHARE mode both requests read the case and then wait at their INSERT.
            pool = web.service.pool
            async with pool.acquire() as gate:
                tx = gate.transaction()
                await tx.start()
                await gate.execute("LOCK TABLE eventkit.events IN SHARE MODE")
                tasks = [
                    asyncio.create_task(c.post(f"{url}/approve", data=data)) for c in (senior, twin)
                ]
                waiting = 0
                for _ in range(500):
                    waiting = await pool.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                        " AND query LIKE '%INSERT INTO eventkit.events%'"
                    )
                    if waiting >= 2 or any(t.done() for t in tasks):
                        break
                    await asyncio.sleep(0.02)
                await tx.commit()
            results = await asyncio.gather(*tasks)
            assert waiting == 2, "both approvals should have reached the append together"
    statuses = sorted(r.status_code for r in results)
    assert statuses == [303, 409], [r.text[:300] for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert is_html(loser)
    assert "刚刚被他人办理" in alert_of(loser.text), alert_of(loser.text)
    assert (await decision_types(web, case_id)).count("ApplicationApproved") == 1


# --- 7. the queue page ------------------------------------------------------------------------


async def five_cases(web: WebRig) -> list[str]:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    numbers = []
    for i in range(5):
        number = f"MK20264{i:05d}"
        await web.feed.submit(case_number=number, occurred_at=now - timedelta(hours=10 - i))
        numbers.append(number)
    return numbers


def shown(html: str) -> list[str]:
    return re.findall(r'class="case-link">([^<]+)</a>', html)


async def test_queue_filters_and_sorting(web: WebRig) -> None:
    numbers = await five_cases(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        everything = await client.get("/queue")
        assert everything.status_code == 200
        assert shown(everything.text) == numbers  # waited longest first
        by_number = await client.get("/queue?sort=case_number")
        assert shown(by_number.text) == sorted(numbers)
        for sort in ("waiting", "deadline", "resubmissions"):
            response = await client.get(f"/queue?sort={sort}")
            assert response.status_code == 200 and sorted(shown(response.text)) == numbers
        assert shown((await client.get("/queue?q=MK2026400002")).text) == [numbers[2]]
        assert shown((await client.get("/queue?q=mk20264")).text) == numbers
        assert shown((await client.get("/queue?q=MK2099")).text) == []
        assert shown((await client.get("/queue?status=decided")).text) == []
        assert shown((await client.get("/queue?status=awaiting_point")).text) == numbers
        assert shown((await client.get("/queue?status=all")).text) == numbers
        overdue = shown((await client.get("/queue?overdue=yes")).text)
        on_time = shown((await client.get("/queue?overdue=no")).text)
        assert sorted(overdue + on_time) == numbers
        link = re.search(rf'href="(/cases/[^"]+)" class="case-link">{numbers[2]}<', everything.text)
        assert link
        assert (await claim(client, link.group(1))).status_code == 303
        await web.feed.sync()
        assert shown((await client.get("/queue?claim=mine")).text) == [numbers[2]]
        assert shown((await client.get("/queue?claim=claimed")).text) == [numbers[2]]
        unclaimed = shown((await client.get("/queue?claim=unclaimed")).text)
        assert unclaimed == [n for n in numbers if n != numbers[2]]
    other = await signed_in(web, "point.reviewer2")
    async with aclosing(other):
        assert shown((await other.get("/queue?claim=mine")).text) == []
        theirs = await other.get("/queue?claim=claimed")
        assert "小店区确认点 审核员一" in theirs.text and "（我）" not in theirs.text


async def test_valid_queue_filters_show_no_invalid_filter_notice(web: WebRig) -> None:
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        for query in ("", "?sort=deadline", "?claim=mine", "?overdue=yes", "?q=MK", "?size=5"):
            response = await client.get(f"/queue{query}")
            assert response.status_code == 200
            assert "部分筛选条件无效" not in response.text, query
        assert "部分筛选条件无效" not in (await client.get("/queue?status=decided")).text


async def test_hostile_queue_parameters_never_break_the_page(web: WebRig) -> None:
    numbers = await five_cases(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        for query in ("status=bogus", "sort=DROP%20TABLE", "claim=everyone", "overdue=maybe"):
            response = await client.get(f"/queue?{query}")
            assert response.status_code == 200, (query, response.text)
            assert "部分筛选条件无效，已按默认条件显示" in response.text
            assert shown(response.text) == numbers
        garbage = await client.get("/queue?after=garbage")
        assert garbage.status_code == 400, garbage.text
        assert is_html(garbage) and "review.invalid_query" in garbage.text
        for size in ("100000", "0", "-3", "abc", "2.5", "²", "%C2%B2", "١", "１"):
            response = await client.get(f"/queue?size={size}")
            assert response.status_code == 200, (size, response.text)
            assert shown(response.text) == numbers  # the default page size
        long_q = await client.get("/queue?q=" + "M" * 5000)
        assert long_q.status_code == 200
        script = await client.get("/queue?q=%3Cscript%3Ealert(1)%3C/script%3E")
        assert script.status_code == 200 and "<script>alert(1)" not in script.text


async def test_a_nul_byte_in_the_search_is_not_a_500(web: WebRig) -> None:
    await five_cases(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        for query in ("q=MK%00", "major=58%00", "route=CET%00", "after=%00", "size=2%01"):
            response = await client.get(f"/queue?{query}")
            assert response.status_code == 422, (query, response.status_code)
            assert is_html(response) and "request.invalid" in response.text


async def test_keyset_paging_of_the_queue(web: WebRig) -> None:
    numbers = await five_cases(web)
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        seen: list[str] = []
        url = "/queue?size=2"
        pages = 0
        while url:
            response = await client.get(url)
            assert response.status_code == 200, response.text
            rows = shown(response.text)
            assert 1 <= len(rows) <= 2
            seen += rows
            pages += 1
            if pages > 1:
                assert "回到第一页" in response.text
            found = re.search(r'<a href="([^"]+)" class="btn" rel="next">下一页</a>', response.text)
            url = found.group(1).replace("&amp;", "&") if found else ""
            if url:
                assert "size=2" in url and "after=" in url
        assert pages == 3
        assert seen == numbers  # every case once, in order


# --- 8. security headers and the JSON API's errors --------------------------------------------


async def test_pages_carry_security_headers(web: WebRig) -> None:
    _, url = await case_of(web)
    async with web.client() as client:
        login = await client.get("/login")
        response = await post_login(web, client, "point.reviewer1")
        (cookie,) = set_cookies(response)
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        pages = [login, await client.get("/queue"), await client.get(url),
                 await client.get(f"/cases/{uuid.uuid4()}")]  # fmt: skip
        for page in pages:
            csp = page.headers["content-security-policy"]
            assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert page.headers["x-frame-options"] == "DENY"
            assert page.headers["cache-control"] == "no-store"
            assert page.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in pages[1].text and " onclick=" not in pages[2].text


async def test_the_json_api_keeps_json_errors(web: WebRig) -> None:
    async with web.client() as client:
        response = await client.get("/api/review/queue")
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["code"].startswith("auth.")
        await post_login(web, client, "point.reviewer1")
        cookie_only = await client.get("/api/review/queue")  # the UI's cookie is no API token
        assert cookie_only.status_code == 401
        assert cookie_only.headers["content-type"].startswith("application/json")
        missing = await client.get(f"/api/review/cases/{uuid.uuid4()}")
        assert missing.headers["content-type"].startswith("application/json")


# --- 9. the case page -------------------------------------------------------------------------


async def test_the_candidate_card_shows_the_name_and_masked_id_only(web: WebRig) -> None:
    from datetime import UTC, datetime

    from contracts.identity import CandidateRegistered
    from eventkit.envelope import Actor, EventEnvelope
    from eventkit.projection import use_schema
    from review_service.adapters.people import PEOPLE_SCHEMA, People

    payload = await web.feed.submit()
    url = f"/cases/{payload['application_id']}"
    client = await signed_in(web, "point.reviewer1")
    async with aclosing(client):
        before = await client.get(url)
        assert "考生信息尚未同步，请稍后刷新" in before.text
        example = CandidateRegistered.model_json_schema()["examples"][0]
        registered = {**example, "candidate_id": payload["candidate_id"], "name": "王小明"}
        env = EventEnvelope(
            event_id=uuid.uuid4(), event_type="CandidateRegistered", schema_version=1,
            stream_type="identity.candidate", stream_id=payload["candidate_id"],
            stream_version=1, occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
            actor=Actor.system("review-tests"),
            payload=CandidateRegistered.model_validate(registered).model_dump(mode="json"),
        )  # fmt: skip
        async with web.service.pool.acquire() as conn, conn.transaction():
            await use_schema(conn, PEOPLE_SCHEMA)
            await People().apply(conn, env)
        page = await client.get(url)
        assert page.status_code == 200
        assert '<dd class="candidate-name">王小明</dd>' in page.text
        assert example["id_number_masked"] in page.text
        assert example["admission_ticket_number"] in page.text
        assert example["id_number_fingerprint"] not in page.text
        assert not re.search(r"\b\d{17}[\dX]\b", page.text)  # no full ID number
        assert "考生信息尚未同步" not in page.text


async def test_photos_unavailable_and_the_audit_trail_with_names(web: WebRig) -> None:
    case_id, url = await case_of(web)
    point = await signed_in(web, "point.reviewer1")
    async with aclosing(point):
        page = await point.get(url)
        assert page.status_code == 200
        assert "照片服务暂时不可用" in page.text and "<img src=" not in page.text
        trail = page.text[page.text.index('id="trail-title"') :]
        assert "考生提交申请" in trail and "考生" in trail
        assert "领取办理</span>" not in trail
        await to_province(web, point, url)
        trail = (await point.get(url)).text
        trail = trail[trail.index('id="trail-title"') :]
        assert re.search(
            r'<span class="what">领取办理</span>\s*'
            r'<span class="\w+">小店区确认点 审核员一 · 确认点初审',
            trail,
        )
        assert re.search(
            r'<span class="what">确认点初审完成，转省级复审</span>\s*'
            r'<span class="\w+">小店区确认点 审核员一',
            trail,
        )
        assert "同意免考 1 门，不同意 0 门" in trail
        assert "r-" + str(web.staff["point.reviewer1"].hex[:6]) not in trail
    assert await decision_types(web, case_id) == ["ReviewClaimed", "InitialReviewCompleted"]
