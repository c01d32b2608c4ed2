"""The candidate's whole journey in a real Chromium, on the real system: identity, application,
credential-verify, media and review as processes (APIs and workers) on the test stack's
PostgreSQL, Kafka and S3, with the CHSI and NEEA sandboxes.

张建国 registers against the roster, logs in with the captcha, verifies his degree by scanning
the QR code (the sandbox's app page approves), applies (point, plan, major), adds a CET-4
certificate with its photo, confirms with the 承诺书 and submits; a point reviewer returns the
application through the review service's API; he sees the reason, presses 重新申请, submits
again, and prints the details. A screenshot of every step is saved (docs/screenshots/portal).
"""

from __future__ import annotations

import os
import re
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Page, expect
from portal_support import ZHANG, approve_in_chsi_app, chsi_neea_sandboxes

from application_service.adapters import catalogue_store
from application_service.adapters.catalogue_files import DEMO_DIR, DEMO_VERSION, load_catalogue_dir
from application_service.bootstrap import prepare_database as prepare_application
from application_service.bootstrap import wire as wire_application
from application_service.domain.windows import ApplicationWindow
from devstack.browser import Screenshots
from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from eventkit.envelope import Actor
from eventkit.migrations import migrate
from eventkit.testing import eventually
from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.bootstrap import Identity
from identity_service.bootstrap import wire as wire_identity
from identity_service.service_layer.roster import import_roster_file
from identity_service.settings import IdentitySettings
from identity_service.testing import captcha_answer, latest_sms_code, sms_sandbox
from servicekit.testing import print_logs, run_module, serve

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[3]
IDENTITY_MIGRATIONS = ROOT / "services/identity/src/identity_service/migrations"
ROSTER_HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
PASSWORD = "Zikao#2026pass"
STAFF_PASSWORD = "Shenhe#2026pass"
POINT = "140105"


def certificate_jpeg(path: Path) -> Path:
    image = Image.new("RGB", (1600, 1200), (248, 244, 230))
    pen = ImageDraw.Draw(image)
    pen.rectangle((40, 40, 1560, 1160), outline=(30, 60, 140), width=12)
    pen.text((660, 200), "CET-4 SCORE REPORT  480", fill=(20, 20, 20))
    for row in range(5):
        pen.line((300, 420 + row * 100, 1300, 420 + row * 100), fill=(120, 120, 120), width=3)
    image.save(path, format="JPEG", quality=88)
    return path


async def test_the_candidates_journey_from_registration_to_print(
    stack: Endpoints,
    browser_page: Page,
    console_errors: list[str],
    screenshots: Screenshots,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {s: f"bp_{s}_{tag}" for s in ("identity", "application", "credential", "media",
                                          "review")}  # fmt: skip
    dsns = {s: await create_database(stack, n) for s, n in names.items()}
    pools: list[asyncpg.Pool] = []
    try:
        await _journey(stack, browser_page, console_errors, screenshots, tmp_path, dsns, pools)
    finally:
        for pool in pools:
            await pool.close()
        for name in names.values():
            await drop_database(stack, name)


async def _journey(
    stack: Endpoints,
    page: Page,
    console_errors: list[str],
    screenshots: Screenshots,
    tmp_path: Path,
    dsns: dict[str, str],
    pools: list[asyncpg.Pool],
) -> None:
    # --- what ops prepare: roster, staff, catalogue, an open window ---------------------------
    await migrate(dsns["identity"], "identity", IDENTITY_MIGRATIONS)
    identity_pool = await create_pool(dsns["identity"], min_size=1, max_size=4)
    pools.append(identity_pool)
    cipher = PiiCipher.from_settings(PiiSettings())
    roster = tmp_path / "roster.csv"
    roster.write_text(
        f"{ROSTER_HEADER}\n{ZHANG.ticket},{ZHANG.id_number},{ZHANG.name},男,140100,{POINT},"
        "030101,\n",
        encoding="utf-8",
    )
    await import_roster_file(
        roster, pool=identity_pool, cipher=cipher, actor="ops:test", today=datetime.now(UTC).date()
    )
    identity = wire_identity(identity_pool, IdentitySettings(), cipher)
    await identity.staff.create(
        username="xiaodian.reviewer1", display_name="小店区确认点 王审核", roles=["reviewer"],
        confirmation_points=[POINT], password=STAFF_PASSWORD, created_by="test",
    )  # fmt: skip
    await prepare_application(dsns["application"])
    app_pool = await create_pool(dsns["application"], min_size=1, max_size=4)
    pools.append(app_pool)
    demo = load_catalogue_dir(DEMO_DIR, DEMO_VERSION)
    await catalogue_store.import_catalogue(app_pool, demo.catalogue, "ops:test", {}, activate=True)
    now = datetime.now(UTC)
    await wire_application(app_pool).windows.open(
        ApplicationWindow(
            window_id=uuid.uuid4(), name="2026年下半年免考申请",
            opens_at=now - timedelta(days=1), applications_close_at=now + timedelta(days=10),
            point_review_close_at=now + timedelta(days=20),
            province_review_close_at=now + timedelta(days=30),
            results_published_at=now + timedelta(days=40),
        ),
        Actor(kind="ops", id="ops-test"),
    )  # fmt: skip
    catalogue_store.clear_cache(app_pool)

    # --- the system ----------------------------------------------------------------------------
    base = {**os.environ, **stack.to_env(), "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "EVENTKIT_LOG_JSON": "true"}  # fmt: skip
    with ExitStack() as system:
        chsi, neea = system.enter_context(chsi_neea_sandboxes(tmp_path))
        sms_url = system.enter_context(sms_sandbox(tmp_path / "sms.log"))

        def start(name: str, package: str, extra: dict[str, str]) -> str:
            env = {**base, "EVENTKIT_PG_DSN": dsns[name], "EVENTKIT_SERVICE_NAME": name, **extra}
            url = system.enter_context(
                serve(f"{package}.entrypoints.api:app", env, tmp_path / f"{name}.log")
            )
            system.enter_context(
                run_module(f"{package}.entrypoints.worker", env, tmp_path / f"{name}-worker.log")
            )
            return url

        identity_url = start("identity", "identity_service", {"IDENTITY_SMS_URL": sms_url})
        peers = {"SERVICE_URL_IDENTITY": identity_url}
        providers = {"PROVIDER_URL_CHSI": chsi, "PROVIDER_URL_NEEA": neea}
        credential_url = start("credential", "credential_verify_service", {**peers, **providers})
        media_url = start("media", "media_service", peers)
        review_url = start("review", "review_service",
                           {**peers, "SERVICE_URL_MEDIA": media_url,
                            "REVIEW_SECURE_COOKIES": "false"})  # fmt: skip
        portal = start(
            "application",
            "application_service",
            {**peers, "SERVICE_URL_CREDENTIAL_VERIFY": credential_url,
             "SERVICE_URL_MEDIA": media_url, "APPLICATION_SECURE_COOKIES": "false"},
        )  # fmt: skip
        try:
            await _candidate(page, screenshots, tmp_path, identity, portal, review_url,
                             identity_url, sms_url)  # fmt: skip
        except BaseException:
            print_logs(tmp_path)
            raise
    assert console_errors == []


async def _login(page: Page, portal: str, identity: Identity) -> None:
    await page.goto(f"{portal}/login")
    captcha_id = await page.locator('input[name="captcha_id"]').get_attribute("value")
    assert captcha_id
    await page.get_by_label("身份证号或准考证号").fill(ZHANG.id_number)
    await page.get_by_label("登录密码").fill(PASSWORD)
    await page.get_by_label("验证码").fill(await captcha_answer(identity, captcha_id))
    await page.get_by_role("button", name="登录").click()


async def _candidate(
    page: Page,
    shots: Screenshots,
    tmp_path: Path,
    identity: Identity,
    portal: str,
    review_url: str,
    identity_url: str,
    sms_url: str,
) -> None:
    # 考生注册 (获取短信验证码 first: the code is read from the SMS sandbox) and 登录
    await page.goto(f"{portal}/register")
    await page.get_by_label("准考证号").fill(ZHANG.ticket)
    await page.get_by_label("身份证号").fill(ZHANG.id_number)
    await page.get_by_label("姓名").fill(ZHANG.name)
    await page.get_by_label("手机号码").fill("13812345678")
    captcha_id = await page.locator('input[name="captcha_id"]').get_attribute("value")
    assert captcha_id, "the registration form shows a captcha"
    await page.get_by_label("验证码", exact=True).fill(await captcha_answer(identity, captcha_id))
    await page.get_by_role("button", name="获取短信验证码").click()
    await expect(page.get_by_text("验证码已发送至138****5678")).to_be_visible()
    await expect(page.get_by_label("姓名")).to_have_value(ZHANG.name)
    code = await latest_sms_code(sms_url, "13812345678")
    captcha_id = await page.locator('input[name="captcha_id"]').get_attribute("value")
    assert captcha_id, "a new captcha"
    await page.get_by_label("验证码", exact=True).fill(await captcha_answer(identity, captcha_id))
    await page.get_by_label("短信验证码").fill(code)
    await page.get_by_label("登录密码").fill(PASSWORD)
    await page.get_by_label("确认密码").fill(PASSWORD)
    await shots.shot(page, "register")
    await page.get_by_role("button", name="注册").click()
    await expect(page.get_by_text("注册成功")).to_be_visible()
    await shots.shot(page, "login")
    await _login(page, portal, identity)
    await expect(page.get_by_role("heading", name=re.compile("个人中心"))).to_be_visible()
    await expect(page.get_by_text("1401**********2018")).to_be_visible()
    await shots.shot(page, "personal-centre")
    await page.set_viewport_size({"width": 390, "height": 844})  # a phone
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the personal centre scrolls sideways by {overflow}px on a phone"
    await shots.shot(page, "personal-centre-phone")
    await page.set_viewport_size({"width": 1366, "height": 900})

    # 学历验证: the QR code, approved in the CHSI app; the page follows by itself (degrees.js)
    await page.goto(f"{portal}/degrees")
    await page.get_by_role("button", name="获取学信网二维码").click()
    qr = page.locator("img[src^='data:image/png']")
    await expect(qr).to_be_visible()
    await shots.shot(page, "degree-qr")
    link = await page.locator("a[href*='/app/approve/']").first.get_attribute("href")
    assert link
    await approve_in_chsi_app(link, ZHANG, "chsi-rec-0001")
    await expect(page.get_by_text("学信网授权成功")).to_be_visible(timeout=20_000)
    await expect(page.get_by_role("cell", name="山西大学")).to_be_visible()
    await shots.shot(page, "verified-degrees")

    # 免考申请 step 1: point, plan, major
    await page.goto(f"{portal}/apply")
    await page.get_by_label("新计划课程").check()
    await page.wait_for_load_state()
    await page.get_by_label("免考确认点").select_option(POINT)
    await page.get_by_label(re.compile("030101 法学")).check()
    await shots.shot(page, "apply-step1")
    await page.get_by_role("button", name="下一步").click()
    await expect(page.get_by_role("heading", name="免考申请证书课程填报")).to_be_visible()

    # step 2: 新增免考课程 — CET-4, its number checked with the NEEA sandbox, the photo uploaded
    await page.get_by_role("link", name="新增免考课程").click()
    await page.get_by_label(re.compile("全国大学英（日）语等级考试四级")).check()
    await page.wait_for_load_state()
    await page.get_by_label(re.compile("新计划英语课程")).check()
    await page.wait_for_load_state()
    await page.get_by_label(re.compile("证书编号")).fill("121141400100123")
    await page.get_by_label("本人身份证号").fill(ZHANG.id_number)
    await page.get_by_label(re.compile("13000 英语（专升本）")).check()
    await page.get_by_label(re.compile("证书照片")).set_input_files(
        str(certificate_jpeg(tmp_path / "cet4.jpg"))
    )
    await expect(page.locator("#photo-hint")).to_contain_text("符合要求")
    await shots.shot(page, "add-certificate")
    await page.set_viewport_size({"width": 390, "height": 844})
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the certificate form scrolls sideways by {overflow}px on a phone"
    await page.set_viewport_size({"width": 1366, "height": 900})
    await page.get_by_role("button", name="确定").click()
    if await page.get_by_text("正在同步").count():
        await page.get_by_role("button", name="确定").click()
    await expect(page.get_by_text("证书及免考课程已添加")).to_be_visible(timeout=20_000)
    await shots.shot(page, "certificates")

    # step 3: 承诺书 and 提交
    await page.get_by_role("link", name="下一步").click()
    await page.get_by_label("本人已阅读并同意以上承诺").check()
    await shots.shot(page, "confirm")
    await page.get_by_role("button", name="提交").click()
    await expect(page.get_by_text("审核中").first).to_be_visible()
    case_number = await page.locator("text=/MK\\d{10}/").first.inner_text()
    await shots.shot(page, "submitted")
    application_id = page.url.split("/my/applications/")[1].split("?")[0]

    # the point reviewer returns it, through the review service's API
    async with httpx.AsyncClient(timeout=20) as http:
        captcha = (await http.get(f"{identity_url}/api/identity/captcha")).json()
        staff = await http.post(
            f"{identity_url}/api/identity/staff/login",
            json={"username": "xiaodian.reviewer1", "password": STAFF_PASSWORD,
                  "captcha_id": captcha["captcha_id"],
                  "captcha_answer": await captcha_answer(identity, captcha["captcha_id"])},
        )  # fmt: skip
        assert staff.status_code == 200, staff.text
        auth = {"Authorization": f"Bearer {staff.json()['access_token']}"}
        case_url = f"{review_url}/api/review/cases/{application_id}"

        async def arrived() -> bool:
            return (await http.get(case_url, headers=auth)).status_code == 200

        await eventually(arrived, timeout=60, interval=0.5)
        body = {"submission_number": 1}
        assert (await http.post(f"{case_url}/claim", json=body, headers=auth)).status_code == 200
        returned = await http.post(
            f"{case_url}/return", headers=auth,
            json={**body, "reason": "证书照片不清晰，请重新上传"},
        )  # fmt: skip
        assert returned.status_code == 200, returned.text

    # he sees the reason, presses 重新申请, submits again, and prints
    details = f"{portal}/my/applications/{application_id}"

    async def reason_shown() -> bool:
        await page.goto(details)
        return await page.get_by_text("证书照片不清晰，请重新上传").count() > 0

    await eventually(reason_shown, timeout=60, interval=1.0)
    await shots.shot(page, "returned")
    await page.get_by_role("link", name="重新申请").click()
    await expect(page.get_by_text("被退回（退回原因：证书照片不清晰，请重新上传）")).to_be_visible()
    await shots.shot(page, "reapply")
    await page.get_by_role("link", name="下一步").click()
    await page.get_by_label("本人已阅读并同意以上承诺").check()
    await page.get_by_role("button", name="重新提交").click()
    await expect(page.get_by_text("审核中").first).to_be_visible()
    await shots.shot(page, "resubmitted")
    await page.goto(f"{details}/print")
    await expect(page.get_by_text(case_number).first).to_be_visible()
    await expect(page.get_by_text("1401**********2018").first).to_be_visible()
    await shots.shot(page, "print")
    await page.emulate_media(media="print")
    await shots.shot(page, "print-as-printed")
