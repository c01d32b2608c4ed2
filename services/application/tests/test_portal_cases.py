"""The portal's case pages over HTTP: 免考申请信息详情 in every state (draft, submitted, returned
with 重新申请, decided with per-course results), the print view, photos that media cannot link,
and the 404 for anything that is not the visitor's own case. On the real identity app (in
process) and applications made through the service layer."""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from portal_support import NAMES, PortalRig, id_number, portal_rig, ticket

from application_service import bootstrap
from application_service.adapters.peers import MediaPeer
from application_service.domain.application import CertificateInput, CourseClaim
from conftest import EvidenceKit, open_window_in
from contracts.base import CertificateKind, CourseDecision, CourseOutcome, ReviewStage
from eventkit.envelope import Actor, EventEnvelope
from servicekit.webui import beijing

pytestmark = pytest.mark.integration

RETURN_REASON = "学历证书照片不清晰，请重新上传"
DENIED_REASON = "成绩单课程学时不足"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    """The rig, with media on a closed port (media does not run here)."""
    async with portal_rig(service, database, tmp_path) as rig:
        service.media = MediaPeer(f"http://127.0.0.1:{closed_port()}", timeout=2)
        try:
            yield rig
        finally:
            await service.media.aclose()


@dataclass
class Candidate:
    """A candidate registered and logged in through the pages, known to the service."""

    rig: PortalRig
    client: httpx.AsyncClient
    candidate_id: uuid.UUID
    index: int
    evidence: EvidenceKit

    @property
    def service(self) -> bootstrap.ApplicationService:
        return self.rig.service


async def sign_in(
    rig: PortalRig, client: httpx.AsyncClient, i: int, evidence: EvidenceKit
) -> Candidate:
    assert (await rig.register(client, i)).status_code == 303
    assert (await rig.login(client, ticket(i))).status_code == 303
    candidate_id = await rig.service.pool.fetchval(
        "SELECT candidate_id FROM identity.candidate_accounts WHERE ticket_number = $1", ticket(i)
    )
    await evidence.registered(candidate_id, NAMES[i])
    return Candidate(rig, client, candidate_id, i, evidence)


async def degree_draft(who: Candidate, window_id: uuid.UUID) -> uuid.UUID:
    """A draft under 580401 (old plan) with a degree certificate claiming 00242 and 00245."""
    evidence = who.evidence
    degree_ref = await evidence.degree(who.candidate_id)
    photo = await evidence.photo(who.candidate_id)
    drafted = await who.service.applications.draft(
        who.candidate_id, window_id=window_id, confirmation_point_id="140105", plan="old",
        major_codes=["580401"], correlation_id=uuid.uuid4(),
    )  # fmt: skip
    certificate = CertificateInput(
        certificate_id=uuid.uuid4(), kind=CertificateKind.DEGREE, route_id="DEGREE",
        courses=[CourseClaim("00242", "580401", "民法学"),
                 CourseClaim("00245", "580401", "刑法学")],
        photo_ids=[uuid.UUID(photo)], degree_ref=uuid.UUID(degree_ref),
    )  # fmt: skip
    await who.service.applications.add_certificate(
        who.candidate_id, drafted.application_id, certificate, correlation_id=uuid.uuid4()
    )
    return drafted.application_id


async def cet_draft(who: Candidate, window_id: uuid.UUID) -> uuid.UUID:
    """A draft under 530605 (new plan) with a CET-4 certificate claiming 13124."""
    evidence = who.evidence
    check = await evidence.check(who.candidate_id)
    photo = await evidence.photo(who.candidate_id)
    drafted = await who.service.applications.draft(
        who.candidate_id, window_id=window_id, confirmation_point_id="140105", plan="new",
        major_codes=["530605"], correlation_id=uuid.uuid4(),
    )  # fmt: skip
    certificate = CertificateInput(
        certificate_id=uuid.uuid4(), kind=CertificateKind.CET4_OR_ABOVE, route_id="CET4-NEW",
        courses=[CourseClaim("13124", "530605")], photo_ids=[uuid.UUID(photo)],
        certificate_check_ref=uuid.UUID(check),
    )  # fmt: skip
    await who.service.applications.add_certificate(
        who.candidate_id, drafted.application_id, certificate, correlation_id=uuid.uuid4()
    )
    return drafted.application_id


async def submit(who: Candidate, application_id: uuid.UUID) -> str:
    submitted = await who.service.applications.submit(
        who.candidate_id, application_id, declaration_accepted=True, correlation_id=uuid.uuid4()
    )
    assert submitted.case_number is not None
    return submitted.case_number


def review_cause(application_id: uuid.UUID) -> EventEnvelope:
    return EventEnvelope(
        event_id=uuid.uuid4(), event_type="ApplicationReturned", schema_version=1,
        stream_type="review.decision", stream_id=str(application_id), stream_version=1,
        occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
        actor=Actor(kind="staff", id="reviewer-1"), payload={},
    )  # fmt: skip


async def returned(who: Candidate, application_id: uuid.UUID) -> None:
    async with who.service.pool.acquire() as conn, conn.transaction():
        await who.service.applications.on_returned(
            conn, review_cause(application_id), application_id=application_id,
            stage=ReviewStage.CONFIRMATION_POINT, reason=RETURN_REASON, submission_number=1,
        )  # fmt: skip


async def decided(who: Candidate, application_id: uuid.UUID, deadline: date) -> None:
    decisions = [
        CourseDecision(course_code="00242", major_code="580401", outcome=CourseOutcome.GRANTED),
        CourseDecision(course_code="00245", major_code="580401", outcome=CourseOutcome.DENIED,
                       reason=DENIED_REASON),
    ]  # fmt: skip
    async with who.service.pool.acquire() as conn, conn.transaction():
        await who.service.applications.on_decided(
            conn, review_cause(application_id), application_id=application_id,
            decisions=decisions, objection_deadline=deadline,
        )  # fmt: skip


def text_of(html: str) -> str:
    """The page's text, tags dropped and white space squeezed (for phrases split by markup)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_a_submitted_case_shows_its_content_timeline_and_photo_placeholder(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    window_id = await _window(portal)
    async with portal.client() as client:
        me = await sign_in(portal, client, 0, evidence)
        application_id = await degree_draft(me, window_id)
        case_number = await submit(me, application_id)
        page = await client.get(f"/my/applications/{application_id}")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    html, text = page.text, text_of(page.text)
    assert "免考申请信息详情" in html
    assert case_number in html
    assert "审核中" in text
    assert "太原市小店区" in text and "旧计划" in text
    assert "580401 法律事务(专科)(旧)" in text
    assert "学历证书（专科及以上）" in text and "学历证书（成绩单课程）" in text
    assert "山西大学" in text and "专科" in text
    assert "00242" in text and "民法学" in text and "00245" in text and "刑法学" in text
    # Media is down: a placeholder with the reason, no broken image, no 500.
    assert "照片1暂时无法查看" in text and "照片服务暂时不可用" in text
    assert "<img" not in html
    # 办件进度, in Beijing time.
    _, timeline = await me.service.applications.details(me.candidate_id, application_id)
    assert "办件进度" in text
    for label in ("创建申请", "新增免考课程", "提交申请"):
        assert label in text
    for entry in timeline:
        assert beijing(entry.occurred_at) in text
    assert f'href="/my/applications/{application_id}/print"' in html
    assert 'href="/centre"' in html and "返回个人中心" in text
    assert "重新申请" not in text and "不同意" not in text
    assert not INLINE_SCRIPT.search(html)


async def test_photos_link_to_media_and_a_refused_photo_is_a_placeholder(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    window_id = await _window(portal)
    async with portal.client() as client:
        me = await sign_in(portal, client, 0, evidence)
        application_id = await degree_draft(me, window_id)
        # A second certificate whose photo media refuses (e.g. deleted at media's end).
        refused = await second_degree_certificate(me, application_id)
        application, _ = await me.service.applications.details(me.candidate_id, application_id)
        good = next(p for p in application.photo_ids if p != refused)

        def answer(request: httpx.Request) -> httpx.Response:
            assert request.headers["authorization"].startswith("Bearer ")
            if request.url.path == "/api/media/photos/views":  # newest first
                return httpx.Response(200, json={"views": [
                    {"photo_id": str(good), "viewed_at": "2026-11-20T02:30:00Z",
                     "given": "links", "roles": ["senior_reviewer"]},
                    {"photo_id": str(uuid.uuid4()), "viewed_at": "2026-11-19T01:00:00Z",
                     "given": "links", "roles": ["reviewer"]},
                    {"photo_id": str(good), "viewed_at": "2026-11-18T01:00:00Z",
                     "given": "display", "roles": ["reviewer"]},
                ]})  # fmt: skip
            if request.url.path == f"/api/media/photos/{good}/links":
                return httpx.Response(200, json={
                    "display": f"https://photos.example/{good}/display?sig=1",
                    "thumbnail": f"https://photos.example/{good}/thumb?sig=1",
                    "original": f"https://photos.example/{good}/original?sig=1",
                    "expires_at": "2030-01-01T00:00:00Z",
                })  # fmt: skip
            return httpx.Response(
                404, json={"error": {"code": "media.not_found", "message": "照片不存在或已删除"}}
            )

        old = me.service.media
        me.service.media = MediaPeer("http://media", transport=httpx.MockTransport(answer))
        try:
            page = await client.get(f"/my/applications/{application_id}")
        finally:
            await me.service.media.aclose()
            me.service.media = old
    assert page.status_code == 200, page.text
    html, text = page.text, text_of(page.text)
    assert f'href="https://photos.example/{good}/display?sig=1"' in html
    assert f'src="https://photos.example/{good}/thumb?sig=1"' in html
    assert "查看照片" in text
    assert "照片1暂时无法查看：照片不存在或已删除" in text
    # media's record of the reviewers given the photo, by role, in Beijing time
    assert "审核人员已查看 2 次，最近一次 2026-11-20 10:30（省级复审人员）" in text
    assert text.count("审核人员已查看") == 1  # the photo media refused says nothing of views


async def second_degree_certificate(me: Candidate, application_id: uuid.UUID) -> uuid.UUID:
    """Add a second degree certificate to `application_id` (course 05679 宪法学); its photo."""
    evidence = me.evidence
    degree_ref = await evidence.degree(me.candidate_id)
    photo = uuid.UUID(await evidence.photo(me.candidate_id))
    certificate = CertificateInput(
        certificate_id=uuid.uuid4(), kind=CertificateKind.DEGREE, route_id="DEGREE",
        courses=[CourseClaim("05679", "580401", "宪法学")], photo_ids=[photo],
        degree_ref=uuid.UUID(degree_ref),
    )  # fmt: skip
    await me.service.applications.add_certificate(
        me.candidate_id, application_id, certificate, correlation_id=uuid.uuid4()
    )
    return photo


async def test_a_draft_says_so_and_links_to_the_wizard(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    window_id = await _window(portal)
    async with portal.client() as client:
        me = await sign_in(portal, client, 0, evidence)
        application_id = await degree_draft(me, window_id)
        page = await client.get(f"/my/applications/{application_id}")
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert "草稿" in text and "提交后生成" in text
    assert f'href="/apply/{application_id}"' in page.text and "继续填写" in text


async def test_a_returned_case_shows_the_reason_and_reapply(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    window_id = await _window(portal)
    async with portal.client() as client:
        me = await sign_in(portal, client, 0, evidence)
        application_id = await degree_draft(me, window_id)
        await submit(me, application_id)
        await returned(me, application_id)
        page = await client.get(f"/my/applications/{application_id}")
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert f"被退回（退回原因：{RETURN_REASON}）" in text
    assert "免考确认点初审" in text
    assert re.search(
        rf'<a class="btn primary" href="/apply/{application_id}">重新申请</a>', page.text
    )
    assert 'role="alert"' in page.text


async def test_a_decided_case_shows_per_course_results(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    window_id = await _window(portal)
    async with portal.client() as client:
        me = await sign_in(portal, client, 0, evidence)
        application_id = await degree_draft(me, window_id)
        await submit(me, application_id)
        await decided(me, application_id, date(2027, 1, 15))
        page = await client.get(f"/my/applications/{application_id}")
        printed = await client.get(f"/my/applications/{application_id}/print")
    assert page.status_code == 200, page.text
    text = text_of(page.text)
    assert "已出结果" in text and "审核完成" in text
    assert "同意免考 1 门，不同意 1 门" in text
    assert re.search(r"00242 民法学 同意免考", text)
    assert re.search(rf"00245 刑法学 不同意 {DENIED_REASON}", text)
    assert "2027年01月15日" in text
    assert "重新申请" not in text
    assert printed.status_code == 200, printed.text
    printed_text = text_of(printed.text)
    assert "同意免考" in printed_text and f"原因：{DENIED_REASON}" in printed_text
    assert "2027年01月15日" in printed_text


async def test_the_print_view_has_the_candidate_masked_and_no_inline_script(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    window_id = await _window(portal)
    async with portal.client() as client:
        me = await sign_in(portal, client, 1, evidence)
        application_id = await cet_draft(me, window_id)
        case_number = await submit(me, application_id)
        printed = await client.get(f"/my/applications/{application_id}/print")
        script = await client.get("/static/print.js")
        styles = await client.get("/static/print.css")
    assert printed.status_code == 200, printed.text
    html, text = printed.text, text_of(printed.text)
    assert "山西省高等教育自学考试免考申请信息" in text
    assert NAMES[1] in text and ticket(1) in text
    assert id_number(1) not in html
    assert re.search(r"1401\*+\d{3}[\dX]", text)
    assert case_number in text and "审核中" in text
    assert "全国大学英语四级及以上" in text and "13124" in text and "530605" in text
    assert "大学英语四级" in text and "480分" in text
    assert 'id="print-button"' in html and '<script src="/static/print.js"' in html
    assert not INLINE_SCRIPT.search(html)
    assert "onclick" not in html.lower()
    assert "script-src 'self'" in printed.headers["content-security-policy"]
    script_src = printed.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assert "'unsafe-inline'" not in script_src
    assert script.status_code == 200 and "window.print()" in script.text
    assert styles.status_code == 200 and "@page" in styles.text and "A4" in styles.text


async def test_another_candidates_case_unknown_and_malformed_ids_are_404_pages(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    window_id = await _window(portal)
    async with portal.client() as owner_client, portal.client() as other_client:
        owner = await sign_in(portal, owner_client, 0, evidence)
        application_id = await degree_draft(owner, window_id)
        case_number = await submit(owner, application_id)
        await sign_in(portal, other_client, 2, evidence)
        answers = {
            "another's": await other_client.get(f"/my/applications/{application_id}"),
            "another's print": await other_client.get(f"/my/applications/{application_id}/print"),
            "unknown": await other_client.get(f"/my/applications/{uuid.uuid4()}"),
            "unknown print": await other_client.get(f"/my/applications/{uuid.uuid4()}/print"),
            "malformed": await other_client.get("/my/applications/not-a-uuid"),
            "malformed print": await other_client.get("/my/applications/1%27%20or%201=1/print"),
        }
        # The owner still sees it.
        assert (await owner_client.get(f"/my/applications/{application_id}")).status_code == 200
    bodies = set()
    for name, answer in answers.items():
        assert answer.status_code == 404, (name, answer.status_code, answer.text)
        assert answer.headers["content-type"].startswith("text/html"), name
        assert "未找到该页面" in answer.text and "免考申请不存在" in answer.text, name
        assert case_number not in answer.text and NAMES[0] not in answer.text, name
        bodies.add(re.sub(r"请求编号 \S+", "", text_of(answer.text)))
    assert len(bodies) == 1  # another's case reads exactly like one that does not exist


async def test_case_pages_need_a_signed_in_candidate(portal: PortalRig) -> None:
    async with portal.client() as client:
        for path in (f"/my/applications/{uuid.uuid4()}", f"/my/applications/{uuid.uuid4()}/print",
                     "/my/applications/not-a-uuid"):  # fmt: skip
            answer = await client.get(path)
            assert answer.status_code == 303, (path, answer.status_code)
            assert answer.headers["location"].startswith("/login")


async def _window(portal: PortalRig) -> uuid.UUID:
    return await open_window_in(portal.service)
