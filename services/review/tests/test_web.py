"""The reviewer UI over HTTP: login through identity, sessions, CSRF, the queue and the case
pages, every action and what a reviewer sees when something is wrong."""

from __future__ import annotations

import re
import uuid
from typing import Any

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
