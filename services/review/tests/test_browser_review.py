"""The reviewer UI in a real Chromium, on real processes: identity, media and review (APIs and
workers) on the test stack's PostgreSQL, Kafka and S3.

A candidate registers and uploads a certificate photo for real; the application service's and
credential-verify's events are published to Kafka as those services would (issue 9's end-to-end
lane drives them too). Then a point reviewer logs in, claims the case and returns it; the
candidate resubmits; the point reviewer takes it with 下一件 and completes 初审; a senior reviewer
approves it with one course denied. Screenshots of each step are saved (see `screenshots`).
"""

from __future__ import annotations

import io
import os
import uuid
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Browser, Page, expect

from contracts.application import (
    EXEMPTION_STREAM,
    WINDOW_STREAM,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWindowOpened,
)
from contracts.credential import CERTIFICATE_STREAM, CertificateVerified
from contracts.review import DECISION_STREAM
from devstack import browser
from devstack.browser import Screenshots
from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from eventkit.envelope import Actor, EventEnvelope
from eventkit.migrations import migrate
from eventkit.testing import eventually, publish, read_topic
from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.bootstrap import Identity
from identity_service.bootstrap import wire as wire_identity
from identity_service.domain.id_card import check_digit
from identity_service.service_layer.roster import import_roster_file
from identity_service.settings import IdentitySettings
from identity_service.testing import captcha_answer, request_sms_code, sms_sandbox
from servicekit.testing import print_logs, run_module, serve

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ROOT = Path(__file__).resolve().parents[3]
IDENTITY_MIGRATIONS = ROOT / "services/identity/src/identity_service/migrations"
# A point of this test's own: the shared topics carry other tests' cases too (for 140105 …), and
# 下一件 must find this test's case, not one of theirs.
POINT = f"149{uuid.uuid4().int % 1000:03d}"
PASSWORD = "Shenhe#2026pass"
CANDIDATE_PASSWORD = "Zikao#2026"
ROSTER_HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"


def id_number() -> str:
    first17 = "14010519900307123"
    return first17 + check_digit(first17)


def certificate_photo() -> bytes:
    """A 1600x1200 JPEG that looks like a certificate scan."""
    image = Image.new("RGB", (1600, 1200), (250, 246, 232))
    pen = ImageDraw.Draw(image)
    pen.rectangle((40, 40, 1560, 1160), outline=(150, 30, 30), width=12)
    pen.rectangle((80, 80, 1520, 1120), outline=(190, 150, 60), width=4)
    pen.text((640, 200), "CET-4 CERTIFICATE", fill=(20, 20, 20))
    for row in range(6):
        pen.line((300, 420 + row * 90, 1300, 420 + row * 90), fill=(120, 120, 120), width=3)
    pen.ellipse((1180, 820, 1420, 1060), outline=(200, 20, 20), width=10)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


def envelope(event: Any, *, stream_id: str, version: int, actor: Actor) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event.event_type,
        schema_version=1,
        stream_type=event.stream.stream_type,
        stream_id=stream_id,
        stream_version=version,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=actor,
        payload=event.model_dump(mode="json"),
    )


async def log_in(page: Page, base: str, identity: Identity, username: str) -> None:
    await page.goto(f"{base}/queue")
    await expect(page.get_by_role("heading", name="工作人员登录")).to_be_visible()
    captcha_id = await page.locator('input[name="captcha_id"]').get_attribute("value")
    assert captcha_id
    await page.get_by_label("用户名").fill(username)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_label("验证码").fill(await captcha_answer(identity, captcha_id))
    await page.get_by_role("button", name="登录").click()
    await expect(page.get_by_role("heading", name="待审列表")).to_be_visible()


async def test_a_reviewer_claims_returns_and_later_approves_a_case_in_chromium(
    stack: Endpoints,
    chromium: Browser,
    browser_page: Page,
    console_errors: list[str],
    screenshots: Screenshots,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    names = {s: f"bt_{s}_{tag}" for s in ("identity", "media", "review")}
    dsns = {s: await create_database(stack, n) for s, n in names.items()}
    pools: list[asyncpg.Pool] = []
    try:
        await _journey(stack, chromium, browser_page, console_errors, screenshots, tmp_path,
                       dsns, pools)  # fmt: skip
    finally:
        for pool in pools:
            await pool.close()
        for name in names.values():
            await drop_database(stack, name)


async def _journey(
    stack: Endpoints,
    chromium: Browser,
    page: Page,
    console_errors: list[str],
    screenshots: Screenshots,
    tmp_path: Path,
    dsns: dict[str, str],
    pools: list[asyncpg.Pool],
) -> None:
    # --- identity's roster and staff, prepared in process on identity's own database ---------
    await migrate(dsns["identity"], "identity", IDENTITY_MIGRATIONS)
    identity_pool = await create_pool(dsns["identity"], min_size=1, max_size=4)
    pools.append(identity_pool)
    cipher = PiiCipher.from_settings(PiiSettings())
    roster = tmp_path / "roster.csv"
    ticket = f"0101189{uuid.uuid4().int % 10**5:05d}"
    roster.write_text(
        f"{ROSTER_HEADER}\n{ticket},{id_number()},张建国,男,140100,140105,580401,\n",
        encoding="utf-8",
    )
    await import_roster_file(
        roster, pool=identity_pool, cipher=cipher, actor="ops:browser-test", today=date.today()
    )
    identity = wire_identity(identity_pool, IdentitySettings(), cipher)
    await identity.staff.create(
        username="xiaodian.reviewer1", display_name="小店区确认点 王审核",
        roles=["reviewer"], confirmation_points=[POINT], password=PASSWORD, created_by="test",
    )  # fmt: skip
    await identity.staff.create(
        username="province.senior1", display_name="省考试院 李复审",
        roles=["senior_reviewer"], confirmation_points=[], password=PASSWORD, created_by="test",
    )  # fmt: skip

    # --- the processes ------------------------------------------------------------------------
    base_env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
        "EVENTKIT_LOG_JSON": "true",
    }
    with ExitStack() as processes:
        sms_url = processes.enter_context(sms_sandbox(tmp_path / "sms.log"))
        identity_env = {**base_env, "EVENTKIT_PG_DSN": dsns["identity"],
                        "EVENTKIT_SERVICE_NAME": "identity",
                        "IDENTITY_SMS_URL": sms_url}  # fmt: skip
        identity_url = processes.enter_context(
            serve("identity_service.entrypoints.api:app", identity_env, tmp_path / "identity.log")
        )
        processes.enter_context(
            run_module("identity_service.entrypoints.worker", identity_env, tmp_path / "iw.log")
        )
        media_env = {**base_env, "EVENTKIT_PG_DSN": dsns["media"], "EVENTKIT_SERVICE_NAME": "media",
                     "SERVICE_URL_IDENTITY": identity_url}  # fmt: skip
        media_url = processes.enter_context(
            serve("media_service.entrypoints.api:app", media_env, tmp_path / "media.log")
        )
        processes.enter_context(
            run_module("media_service.entrypoints.worker", media_env, tmp_path / "mw.log")
        )
        review_env = {
            **base_env, "EVENTKIT_PG_DSN": dsns["review"], "EVENTKIT_SERVICE_NAME": "review",
            "SERVICE_URL_IDENTITY": identity_url, "SERVICE_URL_MEDIA": media_url,
            "REVIEW_SECURE_COOKIES": "false",
        }  # fmt: skip
        review_url = processes.enter_context(
            serve("review_service.entrypoints.api:app", review_env, tmp_path / "review.log")
        )
        processes.enter_context(
            run_module("review_service.entrypoints.worker", review_env, tmp_path / "rw.log")
        )
        try:
            await _reviewing(
                stack, chromium, page, console_errors, screenshots, identity, identity_url,
                media_url, review_url, dsns, pools, ticket, sms_url,
            )  # fmt: skip
        except BaseException:
            print_logs(tmp_path)
            raise


async def _reviewing(
    stack: Endpoints,
    chromium: Browser,
    page: Page,
    console_errors: list[str],
    screenshots: Screenshots,
    identity: Identity,
    identity_url: str,
    media_url: str,
    review_url: str,
    dsns: dict[str, str],
    pools: list[asyncpg.Pool],
    ticket: str,
    sms_url: str,
) -> None:
    # --- the candidate registers, logs in and uploads the certificate photo, for real ---------
    async with httpx.AsyncClient(timeout=20, base_url=identity_url) as identity_http:
        sms_code = await request_sms_code(identity_http, identity, sms_url, "13812345678")
    async with httpx.AsyncClient(timeout=20) as http:
        captcha = (await http.get(f"{identity_url}/api/identity/captcha")).json()
        created = await http.post(
            f"{identity_url}/api/identity/candidates",
            json={"ticket_number": ticket, "id_number": id_number(), "name": "张建国",
                  "password": CANDIDATE_PASSWORD, "mobile": "13812345678", "sms_code": sms_code,
                  "captcha_id": captcha["captcha_id"],
                  "captcha_answer": await captcha_answer(identity, captcha["captcha_id"])},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        candidate_id = uuid.UUID(created.json()["candidate_id"])
        captcha = (await http.get(f"{identity_url}/api/identity/captcha")).json()
        login = await http.post(
            f"{identity_url}/api/identity/login",
            json={"identifier": ticket, "password": CANDIDATE_PASSWORD,
                  "captcha_id": captcha["captcha_id"],
                  "captcha_answer": await captcha_answer(identity, captcha["captcha_id"])},
        )  # fmt: skip
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        uploaded = await http.post(
            f"{media_url}/api/media/photos",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("cet4.jpg", certificate_photo(), "image/jpeg")},
        )
        assert uploaded.status_code == 201, uploaded.text
        photo_id = uploaded.json()["photo_id"]
        clearer = await http.post(
            f"{media_url}/api/media/photos",
            headers={"Authorization": f"Bearer {token}"},
            files={"file": ("cet4-clear.jpg", certificate_photo(), "image/jpeg")},
        )
        assert clearer.status_code == 201, clearer.text
        second_photo_id = clearer.json()["photo_id"]

    # --- what the application service and credential-verify publish --------------------------
    now = datetime.now(UTC)
    window_id, application_id, check_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    case_number = f"MK2026{uuid.uuid4().int % 10**6:06d}"
    window_example = ApplicationWindowOpened.model_json_schema()["examples"][0]
    window = ApplicationWindowOpened.model_validate(
        {**window_example, "window_id": str(window_id),
         "opens_at": (now - timedelta(days=3)).isoformat(),
         "applications_close_at": (now + timedelta(days=10)).isoformat(),
         "point_review_close_at": (now + timedelta(days=15)).isoformat(),
         "province_review_close_at": (now + timedelta(days=25)).isoformat(),
         "results_published_at": (now + timedelta(days=30)).isoformat()}
    )  # fmt: skip
    check = CertificateVerified.model_validate(
        {**CertificateVerified.model_json_schema()["examples"][0],
         "check_id": str(check_id), "candidate_id": str(candidate_id)}
    )  # fmt: skip

    def snapshot(number: int, courses: list[tuple[str, str]], photo: str) -> dict[str, Any]:
        example = ApplicationSubmitted.model_json_schema()["examples"][0]
        certificate = {
            "certificate_id": str(uuid.uuid5(application_id, "cet")),
            "kind": "cet4_or_above",
            "route_id": "CET4",
            "certificate_check_ref": str(check_id),
            "photo_ids": [photo],
            "courses": [
                {"course_code": code, "course_name": name, "major_code": "580401"}
                for code, name in courses
            ],
        }
        return {
            **example,
            "application_id": str(application_id),
            "case_number": case_number,
            "candidate_id": str(candidate_id),
            "window_id": str(window_id),
            "confirmation_point_id": POINT,
            "major_codes": ["580401"],
            "certificates": [certificate],
            "course_codes": [code for code, _ in courses],
            "photo_ids": [photo],
            "submission_number": number,
        }

    first = ApplicationSubmitted.model_validate(
        snapshot(1, [("00012", "英语(一)"), ("00015", "英语(二)")], photo_id)
    )
    candidate = Actor(kind="candidate", id=str(candidate_id))
    await publish(
        stack.kafka_bootstrap,
        WINDOW_STREAM.topic,
        [envelope(window, stream_id=str(window_id), version=1, actor=Actor.system("ops"))],
    )
    await publish(
        stack.kafka_bootstrap,
        CERTIFICATE_STREAM.topic,
        [envelope(check, stream_id=str(check_id), version=1, actor=candidate)],
    )
    await publish(
        stack.kafka_bootstrap,
        EXEMPTION_STREAM.topic,
        [envelope(first, stream_id=str(application_id), version=5, actor=candidate)],
    )

    review_pool = await create_pool(dsns["review"], min_size=1, max_size=2)
    pools.append(review_pool)

    async def queued(submission: int) -> bool:
        try:
            number = await review_pool.fetchval(
                "SELECT submission_number FROM review_queue.cases WHERE application_id = $1",
                application_id,
            )
            known = await review_pool.fetchval(
                "SELECT count(*) FROM review_people.candidates WHERE candidate_id = $1",
                candidate_id,
            )
            checks = await review_pool.fetchval(
                "SELECT count(*) FROM review_evidence.checks WHERE check_id = $1", check_id
            )
        except asyncpg.PostgresError:
            return False
        return number == submission and known == 1 and checks == 1

    await eventually(lambda: queued(1), timeout=90, interval=0.5)

    # --- the point reviewer: log in, queue, case, photo viewer, claim, return -----------------
    await log_in(page, review_url, identity, "xiaodian.reviewer1")
    await expect(page.get_by_text(case_number)).to_be_visible()
    await screenshots.shot(page, "queue")
    await page.get_by_role("link", name=case_number).click()
    await expect(page.get_by_role("heading", name=f"办件编号 {case_number}")).to_be_visible()
    await expect(page.locator(".candidate-name")).to_have_text("张建国")
    await expect(page.get_by_text("核验通过")).to_be_visible()
    thumbnail = page.locator("a.photo img")
    await expect(thumbnail).to_be_visible()
    assert await thumbnail.evaluate("img => img.complete && img.naturalWidth > 0")
    await screenshots.shot(page, "case")
    await page.locator("a.photo").click()
    viewer_image = page.locator("#viewer-image")
    await expect(viewer_image).to_be_visible()
    await expect(viewer_image).to_have_js_property("complete", True)
    fitted = await viewer_image.evaluate("img => img.getBoundingClientRect().width")
    await page.get_by_role("button", name="放大").click()
    zoomed = await viewer_image.evaluate("img => img.offsetWidth")
    assert zoomed == pytest.approx(fitted * 1.25, abs=2)  # fitted first, then 125 %
    await page.get_by_role("button", name="向右旋转").click()
    assert await viewer_image.evaluate("img => img.style.transform") == "rotate(90deg)"
    await page.wait_for_timeout(400)  # the rotation's transition, for the screenshot
    await screenshots.shot(page, "photo-viewer")
    await page.keyboard.press("Escape")

    await page.get_by_role("button", name="领取办理").click()
    await expect(page.get_by_text("已领取该申请")).to_be_visible()
    await page.get_by_label("常用退回原因").select_option("R01")
    await expect(page.get_by_label("退回原因（考生可见）")).to_have_value(
        "证书照片不清晰，请重新上传"
    )
    page.once("dialog", lambda dialog: dialog.accept())
    await screenshots.shot(page, "return-form")
    await page.get_by_role("button", name="退回考生").click()
    await expect(page.get_by_text("已退回考生")).to_be_visible()
    await expect(page.locator(".timeline")).to_contain_text("小店区确认点 王审核")
    await screenshots.shot(page, "returned")

    # --- the candidate fixes it: a resubmission (a clearer photo) --------------------------------
    second = ApplicationResubmitted.model_validate(
        snapshot(2, [("00012", "英语(一)"), ("00015", "英语(二)")], second_photo_id)
    )
    await publish(
        stack.kafka_bootstrap,
        EXEMPTION_STREAM.topic,
        [envelope(second, stream_id=str(application_id), version=9, actor=candidate)],
    )
    await eventually(lambda: queued(2), timeout=90, interval=0.5)

    # --- 下一件: the point reviewer takes it again and completes 初审 ---------------------------
    await page.goto(f"{review_url}/queue")
    await page.get_by_role("button", name="下一件").click()
    await expect(page.get_by_text("已领取该申请")).to_be_visible()
    await expect(page.get_by_text("上次退回")).to_be_visible()
    await expect(page.locator(".changes")).to_contain_text("修改证书")
    await expect(page.locator("a.photo img")).to_be_visible()
    await page.get_by_role("button", name="全部同意免考").click()
    await page.get_by_label("初审意见（可选，省级复审可见）").fill("照片已重新上传，清晰可辨")
    await screenshots.shot(page, "initial-review")
    await page.get_by_role("button", name="提交初审意见").click()
    await expect(page.get_by_text("初审意见已提交")).to_be_visible()

    # --- the senior reviewer approves, denying one course -------------------------------------
    context = await browser.new_context(chromium)
    try:
        senior = await context.new_page()
        await log_in(senior, review_url, identity, "province.senior1")
        await expect(senior.get_by_text(case_number)).to_be_visible()
        await senior.get_by_role("link", name=case_number).click()
        await senior.get_by_role("button", name="领取办理").click()
        await expect(senior.get_by_text("已领取该申请")).to_be_visible()
        rows = senior.locator("table.courses tbody tr")
        await rows.filter(has_text="00012").get_by_label("同意免考").check()
        denied = rows.filter(has_text="00015")
        await denied.get_by_label("不同意", exact=True).check()
        await screenshots.shot(senior, "province-incomplete")
        await senior.get_by_role("button", name="确认复审结果并发布").click()
        await expect(senior.get_by_text("不同意免考时请填写原因")).to_be_visible()
        await denied.get_by_label("不同意原因").fill("证书级别或成绩未达到免考要求")
        await senior.get_by_role("button", name="确认复审结果并发布").click()
        await expect(senior.get_by_text("复审结果已确认")).to_be_visible()
        await expect(senior.locator(".timeline")).to_contain_text("省考试院 李复审")
        await screenshots.shot(senior, "approved")
    finally:
        await context.close()
    assert console_errors == []

    async def approved_published() -> bool:
        messages = await read_topic(stack.kafka_bootstrap, DECISION_STREAM.topic)
        return any(
            m.envelope is not None
            and m.envelope.stream_id == str(application_id)
            and m.envelope.event_type == "ApplicationApproved"
            and m.envelope.payload["decisions"][1]["outcome"] == "denied"
            for m in messages
        )

    await eventually(approved_published, timeout=60, interval=0.5)
