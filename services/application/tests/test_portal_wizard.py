"""The application wizard's pages: step 1 (point, plan, majors), step 2's list with 删除课程,
step 3's confirmation with the declaration, submit and 重新申请; every refusal on the page."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from portal_support import PortalRig, hidden, portal_rig, ticket

from application_service import bootstrap
from application_service.domain.application import CertificateInput, CourseClaim
from conftest import EvidenceKit, open_window_in, window_times
from contracts.base import CertificateKind, ReviewStage
from eventkit.envelope import Actor, EventEnvelope

pytestmark = pytest.mark.integration


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    async with portal_rig(service, database, tmp_path) as rig:
        yield rig


async def signed_in(
    portal: PortalRig, evidence: EvidenceKit, client: httpx.AsyncClient, i: int = 0
) -> uuid.UUID:
    assert (await portal.register(client, i)).status_code == 303
    assert (await portal.login(client, ticket(i))).status_code == 303
    async with portal.service.pool.acquire() as conn:
        candidate_id = await conn.fetchval(
            "SELECT candidate_id FROM identity.candidate_accounts WHERE ticket_number = $1",
            ticket(i),
        )
    await evidence.registered(candidate_id)  # what the worker learns from identity's event
    return uuid.UUID(str(candidate_id))


async def add_cet4(
    portal: PortalRig, evidence: EvidenceKit, candidate_id: uuid.UUID, application_id: str
) -> None:
    check = await evidence.check(candidate_id, "cet4")
    photo = await evidence.photo(candidate_id)
    await portal.service.applications.add_certificate(
        candidate_id, uuid.UUID(application_id),
        CertificateInput(
            certificate_id=uuid.uuid4(), kind=CertificateKind.CET4_OR_ABOVE, route_id="CET4-NEW",
            courses=[CourseClaim("13000", "030101")], photo_ids=[uuid.UUID(photo)],
            certificate_check_ref=uuid.UUID(check),
        ),
        correlation_id=uuid.uuid4(),
    )  # fmt: skip


def step1_fields(html: str) -> dict[str, str]:
    """The hidden fields of step 1's POST form (the page also has the plan switch's GET form)."""
    return hidden(html[html.index('method="post" action="/apply"') :], "/apply")


def application_id_of(response: httpx.Response) -> str:
    found = re.fullmatch(r"/apply/([0-9a-f-]{36})", response.headers["location"])
    assert found, response.headers["location"]
    return found.group(1)


async def test_the_wizard_from_point_and_majors_to_submission(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    await open_window_in(portal.service)
    async with portal.client() as client:
        candidate_id = await signed_in(portal, evidence, client)
        step1 = await client.get("/apply")
        assert step1.status_code == 200, step1.text
        assert "免考确认点" in step1.text and "专科面向社会开考专业" in step1.text
        assert "本科面向社会开考专业" in step1.text and "580401" in step1.text
        form = step1_fields(step1.text)
        created = await client.post(
            "/apply", data={**form, "point": "140105", "majors": ["030101"], "plan": "new"}
        )
        assert created.status_code == 303, created.text
        application_id = application_id_of(created)
        assert (await client.get("/apply")).headers["location"] == f"/apply/{application_id}"
        step2 = await client.get(f"/apply/{application_id}")
        assert step2.status_code == 200 and "尚未添加证书" in step2.text
        assert "下一步" not in step2.text.split("尚未添加证书")[1]  # nothing to confirm yet

        await add_cet4(portal, evidence, candidate_id, application_id)
        step2 = await client.get(f"/apply/{application_id}")
        assert "13000 英语（专升本）" in step2.text
        confirm = await client.get(f"/apply/{application_id}/confirm")
        assert confirm.status_code == 200 and "承诺书" in confirm.text
        assert "张建国" in confirm.text and "1401" in confirm.text
        action = f"/apply/{application_id}/submit"
        unticked = await client.post(action, data=hidden(confirm.text, action))
        assert unticked.status_code == 422 and "请阅读并勾选承诺书" in unticked.text
        submitted = await client.post(action, data={**hidden(confirm.text, action),
                                                    "declaration": "yes"})  # fmt: skip
        assert submitted.status_code == 303, submitted.text
        assert submitted.headers["location"] == f"/my/applications/{application_id}?done=submitted"
        after = await client.get(f"/apply/{application_id}")
        assert after.status_code == 303  # submitted: the wizard sends to the details


async def test_step_one_refusals_stand_next_to_their_fields(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    await open_window_in(portal.service)
    async with portal.client() as client:
        _ = await signed_in(portal, evidence, client, 1)
        form = step1_fields((await client.get("/apply")).text)
        cases: list[tuple[dict[str, Any], str]] = [
            ({"majors": ["030101"], "plan": "new"}, "请选择免考确认点"),
            ({"point": "999999", "majors": ["030101"], "plan": "new"}, "请选择免考确认点"),
            ({"point": "140105", "plan": "new"}, "请选择免考申请专业"),
            (
                {"point": "140105", "majors": ["030101", "050101", "080901"], "plan": "new"},
                "最多选择2个专业",
            ),
            ({"point": "140105", "majors": ["030101"], "plan": "x"}, "请选择新旧计划"),
            ({"point": "140105", "majors": ["999999"]}, 'class="alert"'),
        ]
        for data, message in cases:
            refused = await client.post("/apply", data={**form, **data})
            assert refused.status_code == 422, (data, refused.text[-500:])
            assert message in refused.text, (data, message)
        async with portal.service.pool.acquire() as conn:
            count = await conn.fetchval("SELECT count(*) FROM application.applications")
        assert count == 0
        no_csrf = await client.post(
            "/apply", data={"point": "140105", "majors": ["030101"], "plan": "new"}
        )
        assert no_csrf.status_code == 403


async def test_a_closed_window_and_another_candidates_application(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    async with portal.client() as stranger:
        assert (await portal.register(stranger, 2)).status_code == 303
    async with portal.client() as client:
        _ = await signed_in(portal, evidence, client)
        closed = await client.get("/apply")
        assert closed.status_code == 200 and "未开放" in closed.text
        times = window_times(datetime.now(UTC) + timedelta(days=2))
        await open_window_in(portal.service, times)
        assert "未开放" in (await client.get("/apply")).text
        unknown = await client.get(f"/apply/{uuid.uuid4()}")
        assert unknown.status_code == 404 and "<html" in unknown.text
        malformed = await client.get("/apply/not-an-id")
        assert malformed.status_code in (404, 422) and "<html" in malformed.text


async def test_a_returned_application_reopens_with_the_reason_then_resubmits(
    portal: PortalRig, evidence: EvidenceKit
) -> None:
    await open_window_in(portal.service)
    async with portal.client() as client:
        candidate_id = await signed_in(portal, evidence, client)
        form = step1_fields((await client.get("/apply")).text)
        created = await client.post(
            "/apply", data={**form, "point": "140105", "majors": ["030101"], "plan": "new"}
        )
        application_id = application_id_of(created)
        await add_cet4(portal, evidence, candidate_id, application_id)
        await portal.service.applications.submit(
            candidate_id, uuid.UUID(application_id), declaration_accepted=True,
            correlation_id=uuid.uuid4(),
        )  # fmt: skip
        cause = EventEnvelope(
            event_id=uuid.uuid4(), event_type="ApplicationReturned", schema_version=1,
            stream_type="review.decision", stream_id=application_id, stream_version=1,
            occurred_at=datetime.now(UTC), correlation_id=uuid.uuid4(),
            actor=Actor(kind="staff", id="reviewer-1"), payload={},
        )  # fmt: skip
        async with portal.service.pool.acquire() as conn, conn.transaction():
            await portal.service.applications.on_returned(
                conn, cause, application_id=uuid.UUID(application_id),
                stage=ReviewStage.CONFIRMATION_POINT, reason="证书照片不清晰，请重新上传",
                submission_number=1,
            )  # fmt: skip
        assert (await client.get("/apply")).headers["location"] == f"/apply/{application_id}"
        step2 = await client.get(f"/apply/{application_id}")
        assert "被退回（退回原因：证书照片不清晰，请重新上传）" in step2.text
        certificate_form = re.search(
            rf'action="(/apply/{application_id}/certificates/[0-9a-f-]+/delete)"', step2.text
        )
        assert certificate_form
        removed = await client.post(
            certificate_form.group(1), data=hidden(step2.text, certificate_form.group(1))
        )
        assert removed.status_code == 303 and removed.headers["location"].endswith("done=removed")
        await add_cet4(portal, evidence, candidate_id, application_id)
        confirm = await client.get(f"/apply/{application_id}/confirm")
        assert "重新提交" in confirm.text
        action = f"/apply/{application_id}/submit"
        again = await client.post(action, data={**hidden(confirm.text, action),
                                                "declaration": "yes"})  # fmt: skip
        assert again.status_code == 303, again.text
        details, _ = await portal.service.applications.details(
            candidate_id, uuid.UUID(application_id)
        )
        assert details.status.value == "submitted" and details.submission_number == 2
