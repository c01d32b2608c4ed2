"""The candidate portal over HTTP: registration against the roster, login with captcha, the
personal centre, sessions and CSRF; on the real identity app (in process) and the service's
own database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from portal_support import PortalRig, hidden, id_number, portal_rig, ticket

from application_service import bootstrap
from conftest import open_window_in
from identity_service.testing import sms_messages

pytestmark = pytest.mark.integration


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    async with portal_rig(service, database, tmp_path) as rig:
        yield rig


async def test_register_log_in_and_see_the_personal_centre(portal: PortalRig) -> None:
    await open_window_in(portal.service)
    async with portal.client() as client:
        first = await client.get("/centre")
        assert first.status_code == 303 and first.headers["location"].startswith("/login")
        registered = await portal.register(client, 0)
        assert registered.status_code == 303, registered.text
        assert registered.headers["location"] == "/login?registered=1"
        shown = await client.get("/login?registered=1")
        assert "注册成功" in shown.text
        logged_in = await portal.login(client, ticket(0))
        assert logged_in.status_code == 303, logged_in.text
        assert logged_in.headers["location"] == "/centre"
        centre = await client.get("/centre")
        assert centre.status_code == 200, centre.text
        assert "张建国" in centre.text
        assert id_number(0) not in centre.text  # only masked
        assert "免考申请" in centre.text and "已开放" in centre.text
        assert "script-src 'self'" in centre.headers["content-security-policy"]


async def test_registration_errors_stand_next_to_their_fields(portal: PortalRig) -> None:
    async with portal.client() as client:
        mismatch = await portal.register(client, 1, password_again="Other#2026pass")
        assert mismatch.status_code == 422 and "两次输入的密码不一致" in mismatch.text
        empty = await portal.register(client, 1, name="", mobile="")
        assert empty.status_code == 422
        assert "请输入姓名" in empty.text and "请输入手机号码" in empty.text
        bad_id = await portal.register(client, 1, id_number="140105199003070000")
        assert bad_id.status_code in (400, 422), bad_id.text
        assert 'id="id_number-error"' in bad_id.text
        stranger = await portal.register(client, 1, name="不是本人")
        assert 400 <= stranger.status_code < 500
        assert 'class="alert"' in stranger.text
        assert (await portal.register(client, 1)).status_code == 303
        again = await portal.register(client, 1)
        assert 400 <= again.status_code < 500 and 'class="alert"' in again.text
    async with portal.service.pool.acquire() as conn:
        accounts = await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts")
    assert accounts == 1


async def test_the_registration_form_has_a_captcha_and_marks_a_wrong_answer(
    portal: PortalRig,
) -> None:
    async with portal.client() as client:
        form = await client.get("/register")
        assert form.status_code == 200
        assert 'name="captcha_answer"' in form.text and 'alt="验证码图片"' in form.text
        assert "data:image/png;base64," in form.text
        first_captcha = hidden(form.text, "/register")["captcha_id"]
        no_answer = await portal.register(client, 0, captcha_answer="")
        assert no_answer.status_code == 422 and 'id="captcha-error"' in no_answer.text
        assert "请输入验证码" in no_answer.text
        wrong = await portal.register(client, 0, captcha_answer="ZZZZZZ")
        assert wrong.status_code == 400, wrong.text
        assert 'id="captcha-error"' in wrong.text and "验证码错误" in wrong.text
        assert hidden(wrong.text, "/register")["captcha_id"] != first_captcha, "a fresh one"
        assert 'value="张建国"' in wrong.text, "what was typed stays (but the password)"
        assert (await portal.register(client, 0)).status_code == 303
    async with portal.service.pool.acquire() as conn:
        accounts = await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts")
    assert accounts == 1


async def test_a_locked_registration_says_when_to_retry(portal: PortalRig) -> None:
    async with portal.client() as client:
        for i in range(10):
            probe = await portal.register(client, 0, name=f"不是本人{i}")
        assert probe.status_code == 429, probe.text
        assert "注册尝试次数过多" in probe.text and 'class="alert"' in probe.text
        assert int(probe.headers["Retry-After"]) > 0


async def test_login_refusals_and_logout(portal: PortalRig) -> None:
    async with portal.client() as client:
        assert (await portal.register(client, 2)).status_code == 303
        wrong = await portal.login(client, ticket(2), password="Wrong#2026pass")
        assert wrong.status_code == 401 and 'class="alert"' in wrong.text
        ok = await portal.login(client, id_number(2))
        assert ok.status_code == 303
        centre = await client.get("/centre")
        out = await client.post("/logout", data=hidden(centre.text, "/logout"))
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert (await client.get("/centre")).status_code == 303
        forged = await client.post("/logout", data={"csrf_token": "nope"})
        assert forged.status_code == 303  # no session: to the login page, nothing done


async def test_the_json_api_keeps_json_errors(portal: PortalRig) -> None:
    async with portal.client() as client:
        response = await client.get("/api/applications")
        assert response.status_code == 401
        assert response.json()["error"]["code"].startswith("auth.")
        missing = await client.get("/my/applications/not-a-uuid")
        assert missing.status_code in (303, 404, 422)


async def test_the_sms_code_button_sends_and_keeps_what_was_typed(portal: PortalRig) -> None:
    values = {"ticket_number": ticket(0), "id_number": id_number(0), "name": "张建国",
              "mobile": "13812345678"}  # fmt: skip
    async with portal.client() as client:
        form = await client.get("/register")
        assert "获取短信验证码" in form.text and 'name="sms_code"' in form.text
        before = hidden(form.text, "/register")["captcha_id"]
        sent = await portal.send_sms_code(client, form.text, values)
        assert sent.status_code == 200, sent.text
        assert "验证码已发送至138****5678" in sent.text and 'role="status"' in sent.text
        assert 'value="张建国"' in sent.text and f'value="{ticket(0)}"' in sent.text
        assert hidden(sent.text, "/register")["captcha_id"] != before, "a fresh captcha"
        [message] = await sms_messages(portal.sms_url, "13812345678")
        assert message["text"].startswith("【自考免考】您的注册验证码为")
        no_mobile = await portal.send_sms_code(client, sent.text, {**values, "mobile": ""})
        assert no_mobile.status_code == 422 and 'id="mobile-error"' in no_mobile.text
        bad_mobile = await portal.send_sms_code(client, no_mobile.text, {**values, "mobile": "123"})
        assert bad_mobile.status_code == 422 and 'id="mobile-error"' in bad_mobile.text
        assert "请输入11位手机号码" in bad_mobile.text
        wrong = await portal.register(client, 0, sms_code="000000")
        assert wrong.status_code == 400, wrong.text
        assert 'id="sms_code-error"' in wrong.text and "短信验证码" in wrong.text
        empty = await portal.register(client, 0, sms_code="")
        assert empty.status_code == 422 and "请输入短信验证码" in empty.text
        assert (await portal.register(client, 0)).status_code == 303
    async with portal.service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM identity.candidate_accounts") == 1


async def test_an_sms_gateway_away_keeps_the_form_and_says_retry(portal: PortalRig) -> None:
    values = {"ticket_number": ticket(0), "id_number": id_number(0), "name": "张建国",
              "mobile": "13812345678"}  # fmt: skip
    async with httpx.AsyncClient(base_url=portal.sms_url) as http:
        await http.post("/_sandbox/faults", json={"mode": "error", "count": 1})
    async with portal.client() as client:
        form = await client.get("/register")
        away = await portal.send_sms_code(client, form.text, values)
        assert away.status_code == 503, away.text
        assert "短信服务暂时不可用，请稍后重试" in away.text and 'class="alert"' in away.text
        assert 'value="张建国"' in away.text and int(away.headers["Retry-After"]) > 0
    assert await sms_messages(portal.sms_url, "13812345678") == []
