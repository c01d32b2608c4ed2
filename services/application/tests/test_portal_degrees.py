"""学历验证（学信网） over HTTP: the QR code page, its status JSON, approval in the CHSI sandbox's
app page, the verified degrees' table, online verification codes and their refusals, another
candidate's authorisation, credential-verify down or not yet synced, CSRF and login; on the real
identity and credential-verify apps (in process) and the CHSI sandbox (a process)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from portal_support import (
    LI,
    ZHANG,
    CredentialSetup,
    PortalRig,
    approve_in_chsi_app,
    chsi_neea_sandboxes,
    hidden,
    portal_rig,
    qr_link,
    start_qr,
    ticket,
)

from application_service import bootstrap
from application_service.adapters.peers import CredentialPeer
from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from servicekit.testing import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with chsi_neea_sandboxes(tmp_path_factory.mktemp("portal-sandboxes")) as urls:
        yield urls


@pytest.fixture
async def credential_database(stack: Endpoints) -> AsyncIterator[str]:
    name = f"t_cv_{uuid.uuid4().hex[:10]}"
    yield await create_database(stack, name)
    await drop_database(stack, name)


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService,
    database: str,
    tmp_path: Path,
    sandboxes: tuple[str, str],
    credential_database: str,
) -> AsyncIterator[PortalRig]:
    setup = CredentialSetup(credential_database, *sandboxes)
    async with portal_rig(service, database, tmp_path, credential=setup) as rig:
        yield rig


@pytest.fixture
async def plain(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    async with portal_rig(service, database, tmp_path) as rig:
        yield rig


def form_of(html: str, action: str) -> dict[str, str]:
    assert f'action="{action}"' in html, html
    return hidden(html, action)


async def test_qr_code_approval_and_the_verified_degrees(portal: PortalRig) -> None:
    async with portal.client() as client:
        await portal.sign_up(client, ZHANG)
        empty = await client.get("/degrees")
        assert empty.status_code == 200, empty.text
        assert "学历验证（学信网）" in empty.text and "获取学信网二维码" in empty.text
        assert "您还没有已验证的学历信息" in empty.text
        assert "degrees.js" not in empty.text

        path = await start_qr(client)
        assert await start_qr(client) == path  # the live code is reused
        shown = await client.get(path)
        assert shown.status_code == 200, shown.text
        assert re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', shown.text)
        assert "<svg" not in shown.text  # the markup is never rendered
        assert '<meta http-equiv="refresh" content="5">' in shown.text
        assert '<script src="/static/degrees.js" defer></script>' in shown.text
        assert 'id="qr-countdown" data-seconds="' in shown.text and "等待扫码授权" in shown.text
        assert "script-src 'self'" in shown.headers["content-security-policy"]
        assert "<script>" not in shown.text  # no inline script

        status_path = f"{path}/status"
        waiting = await client.get(status_path)
        assert waiting.status_code == 200 and waiting.headers["cache-control"] == "no-store"
        body = waiting.json()
        assert (body["status"], body["pending"], body["next"]) == ("requested", True, None)
        assert 200 < body["seconds_left"] <= 300

        await approve_in_chsi_app(qr_link(shown.text), ZHANG, "chsi-rec-0001")
        approved = (await client.get(status_path)).json()
        authorization_id = path.rsplit("/", 1)[1]
        assert approved["status"] == "approved" and not approved["pending"]
        assert approved["next"] == f"/degrees?authorization={authorization_id}"
        again = await client.get(path)  # the page without JavaScript, refreshed
        assert again.status_code == 303 and again.headers["location"] == approved["next"]

        listed = await client.get(approved["next"])
        assert listed.status_code == 200, listed.text
        assert "学信网授权成功，已验证 1 条学历信息" in listed.text
        row = re.search(r"<tbody>(.*?)</tbody>", listed.text, re.S)
        assert row is not None
        raw = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in raw]
        assert cells[:10] == ["张建国", "1401**********2018", "山西大学", "法律事务", "专科",
                              "自学考试", "高等教育自学考试", "2010", "2013", "毕业"]  # fmt: skip
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", cells[10]), cells[10]
        assert cells[11] == "有（12 门课程）"
        headers = ("姓名", "证件号码", "院校名称", "专业名称", "层次", "学习形式", "学历类别",
                   "入学年份", "毕业年份", "毕结业结论", "学信网验证时间", "成绩单")  # fmt: skip
        for header in headers:
            assert f'<th scope="col">{header}</th>' in listed.text
        assert ZHANG.id_number not in listed.text
        assert "00242" in listed.text and "民法学" in listed.text  # the transcript


async def test_expired_denied_and_last_minute_codes(portal: PortalRig) -> None:
    assert portal.credential_pool is not None
    async with portal.client() as client:
        await portal.sign_up(client, ZHANG)
        path = await start_qr(client)
        authorization_id = uuid.UUID(path.rsplit("/", 1)[1])
        await portal.credential_pool.execute(
            "UPDATE credential.authorizations SET expires_at = now() + interval '30 seconds'"
            " WHERE authorization_id = $1",
            authorization_id,
        )
        closing = await client.get(path)
        assert closing.status_code == 200, closing.text
        assert "<img" not in closing.text and "二维码即将过期" in closing.text
        assert 'id="qr-renew" hidden' not in closing.text
        await portal.credential_pool.execute(
            "UPDATE credential.authorizations SET status = 'expired' WHERE authorization_id = $1",
            authorization_id,
        )
        expired = await client.get(path)
        assert expired.status_code == 200
        assert "二维码已过期" in expired.text and "重新获取二维码" in expired.text
        assert 'http-equiv="refresh"' not in expired.text and "<img" not in expired.text
        assert (await client.get(f"{path}/status")).json()["status"] == "expired"

        renewed = await client.post("/degrees/qr", data=form_of(expired.text, "/degrees/qr"))
        assert renewed.status_code == 303 and renewed.headers["location"] != path
        fresh = await client.get(renewed.headers["location"])
        async with httpx.AsyncClient(timeout=10) as http:  # refuse in the CHSI app
            link = qr_link(fresh.text)
            signed_in = await http.post(
                link, data={"action": "login", "id_number": ZHANG.id_number,
                            "password": ZHANG.chsi_password},
            )  # fmt: skip
            session = signed_in.text.split('name="session" value="', 1)[1].split('"', 1)[0]
            assert (await http.post(link, data={"action": "deny", "session": session})).is_success
        denied = (await client.get(f"{renewed.headers['location']}/status")).json()
        assert denied["status"] == "denied" and "拒绝授权" in denied["message"]
        page = await client.get(renewed.headers["location"])
        assert page.status_code == 200 and "拒绝授权" in page.text


async def test_verification_codes_and_their_refusals(portal: PortalRig) -> None:
    async with portal.client() as client:
        await portal.sign_up(client, ZHANG)
        shown = await client.get("/degrees")
        token = form_of(shown.text, "/degrees/code")
        cases = [
            ("", 422, "请输入在线验证码"),
            ("ABC", 422, "在线验证码格式不正确"),
            ("ZZZZ-ZZZZ-ZZZZ-ZZZZ", 404, "未查询到该在线验证码"),
            ("H2N6 P4W8 C1D5 F7JQ", 410, "该在线验证码已过期"),
            ("202405318812", 422, "与考生本人信息不一致"),  # 李晓燕's degree
            ("A" * 41, 422, "在线验证码过长"),
        ]
        for code, status, message in cases:
            refused = await client.post("/degrees/code", data={**token, "code": code})
            assert refused.status_code == status, (code, refused.text)
            error = re.search(r'<p class="error" id="code-error">([^<]*)</p>', refused.text)
            assert error and message in error.group(1), (code, refused.text)
            assert 'aria-describedby="code-help code-error"' in refused.text
            assert 'aria-invalid="true"' in refused.text
            assert f'value="{code[:40]}"' in refused.text  # kept for correcting
        redeemed = await client.post("/degrees/code", data={**token, "code": "a7k3-q9x2-m5t8-b4rz"})
        assert redeemed.status_code == 303, redeemed.text
        assert redeemed.headers["location"] == "/degrees?redeemed=1"
        listed = await client.get(redeemed.headers["location"])
        assert "在线验证码验证成功，已添加 1 条学历信息" in listed.text
        assert "法学" in listed.text and 'data-label="层次">本科</td>' in listed.text
        assert "成人高等教育" in listed.text
        for number in ("²", "١", "１", "-1", "9" * 30):  # str.isdigit() took the first three
            odd = await client.get("/degrees", params={"redeemed": number})
            assert odd.status_code == 200, (number, odd.text)
            assert "在线验证码验证成功" not in odd.text


async def test_another_candidates_authorization_is_not_found(portal: PortalRig) -> None:
    async with portal.client() as zhang, portal.client() as li:
        await portal.sign_up(zhang, ZHANG)
        path = await start_qr(zhang)
        await portal.sign_up(li, LI)
        foreign = await li.get(path)
        assert foreign.status_code == 404, foreign.text
        assert "未找到该授权记录" in foreign.text and "<img" not in foreign.text
        status = await li.get(f"{path}/status")
        assert status.status_code == 404 and status.json()["status"] == "error"
        assert (await li.get("/degrees/qr/not-a-uuid")).status_code == 404


async def test_a_candidate_not_yet_synced_is_asked_to_wait(portal: PortalRig) -> None:
    async with portal.client() as client:
        candidate_id = await portal.sign_up(client, LI, sync=False)
        shown = await client.get("/degrees")
        started = await client.post("/degrees/qr", data=form_of(shown.text, "/degrees/qr"))
        assert started.status_code == 200, started.text
        assert "账号信息同步中，请稍候几秒后刷新" in started.text
        assert 'class="alert"' not in started.text
        code = await client.post(
            "/degrees/code", data={**form_of(shown.text, "/degrees/code"), "code": "202405318812"}
        )
        assert code.status_code == 200 and "账号信息同步中" in code.text
        await portal.sync(candidate_id)
        assert (await client.post("/degrees/qr", data=form_of(shown.text, "/degrees/qr"))
                ).status_code == 303  # fmt: skip


async def test_credential_verify_down_is_a_message_not_a_crash(plain: PortalRig) -> None:
    down = CredentialPeer(f"http://127.0.0.1:{free_port()}", timeout=2.0)
    plain.service.credential = down
    try:
        async with plain.client() as client:
            assert (await plain.register(client, 0)).status_code == 303
            assert (await plain.login(client, ticket(0))).status_code == 303
            shown = await client.get("/degrees")
            assert shown.status_code == 503 and "请稍后再试" in shown.text
            assert "获取学信网二维码" in shown.text  # the page itself still stands
            started = await client.post("/degrees/qr", data=form_of(shown.text, "/degrees/qr"))
            assert started.status_code == 503 and "请稍后再试" in started.text
            code = await client.post(
                "/degrees/code",
                data={**form_of(shown.text, "/degrees/code"), "code": "A7K3Q9X2M5T8B4RZ"},
            )
            assert code.status_code == 503 and "请稍后再试" in code.text
            qr = await client.get(f"/degrees/qr/{uuid.uuid4()}")
            assert qr.status_code == 503 and "请稍后再试" in qr.text
            status = await client.get(f"/degrees/qr/{uuid.uuid4()}/status")
            assert status.status_code == 503 and status.json()["status"] == "unavailable"
    finally:
        await down.aclose()


async def test_csrf_and_login_are_required(plain: PortalRig) -> None:
    async with plain.client() as client:
        some = f"/degrees/qr/{uuid.uuid4()}"
        for method, path in (("GET", "/degrees"), ("POST", "/degrees/qr"),
                             ("POST", "/degrees/code"), ("GET", some),
                             ("GET", f"{some}/status")):  # fmt: skip
            response = await client.request(method, path)
            assert response.status_code == 303, (path, response.text)
            assert response.headers["location"].startswith("/login"), path
        assert (await plain.register(client, 1)).status_code == 303
        assert (await plain.login(client, ticket(1))).status_code == 303
        for path in ("/degrees/qr", "/degrees/code"):
            forged = await client.post(path, data={"code": "A7K3Q9X2M5T8B4RZ"})
            assert forged.status_code == 403, (path, forged.text)
            wrong = await client.post(path, data={"csrf_token": "nope"})
            assert wrong.status_code == 403, path
