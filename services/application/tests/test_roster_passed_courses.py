"""What the enrolment roster says a candidate passed (已合格课程) reaches the application service
through identity's events, and such a course is never claimed (application.course_already_passed):
identity's real roster import and registration, its events relayed to the evidence projection as
the worker does, then the application API on the same database."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from portal_support import (
    NAMES,
    PASSWORD,
    ROSTER_HEADER,
    PortalRig,
    id_number,
    portal_rig,
    ticket,
)

from application_service import bootstrap
from application_service.adapters.evidence import EVIDENCE_SCHEMA, EvidenceProjection
from conftest import open_window_in
from eventkit.envelope import EventEnvelope
from eventkit.projection import use_schema
from identity_service.service_layer.accounts import RegisterCandidate
from identity_service.service_layer.roster import import_roster_file
from identity_service.testing import captcha_answer, sms_code_via

pytestmark = pytest.mark.integration

BASE = "/api/applications"
MOBILE = "13812345678"


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    async with portal_rig(service, database, tmp_path) as rig:
        yield rig


async def import_roster(portal: PortalRig, tmp_path: Path, passed: str) -> None:
    """Import the roster again, candidate 0 now listing `passed` as 已合格课程."""
    roster = tmp_path / f"roster-{uuid.uuid4().hex[:8]}.csv"
    rows = [
        f"{ticket(i)},{id_number(i)},{NAMES[i]},男,140100,140105,580401,{passed if i == 0 else ''}"
        for i in range(3)
    ]
    roster.write_text("\n".join([ROSTER_HEADER, *rows]) + "\n", encoding="utf-8")
    report = await import_roster_file(
        roster, pool=portal.service.pool, cipher=portal.identity.accounts._cipher,
        actor="ops:test", today=date(2026, 11, 28),
    )  # fmt: skip
    assert report.rejected == 0, report.errors


async def candidate_events(portal: PortalRig, candidate_id: uuid.UUID) -> list[EventEnvelope]:
    events: list[EventEnvelope] = await portal.identity.accounts._store.load(
        "identity.candidate", str(candidate_id)
    )
    return events


async def relay(portal: PortalRig, events: list[EventEnvelope]) -> None:
    """Apply identity's events to the evidence projection, one transaction each, as the
    application's worker does."""
    for envelope in events:
        async with portal.service.pool.acquire() as conn, conn.transaction():
            await use_schema(conn, EVIDENCE_SCHEMA)
            await EvidenceProjection().apply(conn, envelope)


def no_personal_numbers(envelope: EventEnvelope) -> None:
    text = json.dumps(envelope.payload, ensure_ascii=False)
    assert id_number(0) not in text and MOBILE not in text, text


async def test_the_rosters_passed_courses_reach_the_application_and_are_never_claimed(
    portal: PortalRig,
    tmp_path: Path,
    client: httpx.AsyncClient,
    tokens: Callable[..., dict[str, str]],
    evidence: Any,
    counts: Callable[[], Any],
) -> None:
    await import_roster(portal, tmp_path, "13124")  # 已合格: 英语（专）
    captcha = await portal.identity.captchas.issue()
    await portal.identity.accounts.register(
        RegisterCandidate(
            ticket_number=ticket(0), id_number=id_number(0), name=NAMES[0], password=PASSWORD,
            mobile=MOBILE, sms_code=await sms_code_via(portal.identity, MOBILE),
            captcha_id=captcha.captcha_id,
            captcha_answer=await captcha_answer(portal.identity, captcha.captcha_id),
            client="10.7.7.7",
        )
    )  # fmt: skip
    candidate_id = await portal.candidate_id(ticket(0))

    [registered] = await candidate_events(portal, candidate_id)
    assert registered.event_type == "CandidateRegistered"
    assert registered.payload["passed_course_codes"] == ["13124"]
    no_personal_numbers(registered)
    await relay(portal, [registered])

    window = await open_window_in(portal.service)
    me = tokens(candidate_id)
    drafted = await client.post(
        BASE,
        json={"window_id": str(window), "confirmation_point_id": "140105", "plan": "new",
              "major_codes": ["530605"]},
        headers=me,
    )  # fmt: skip
    assert drafted.status_code == 201, drafted.text
    application_id = drafted.json()["application_id"]

    offered = await client.get(
        "/api/catalogue/routes/CET4-NEW/courses", params={"major": "530605", "plan": "new"},
        headers=me,
    )  # fmt: skip
    assert offered.status_code == 200 and offered.json()["courses"] == []

    async def claim(
        kind: str, route_id: str, course: str, exam: str, **facts: Any
    ) -> httpx.Response:
        body = {
            "kind": kind, "route_id": route_id,
            "certificate_check_ref": await evidence.check(candidate_id, exam, **facts),
            "photo_ids": [await evidence.photo(candidate_id)],
            "courses": [{"course_code": course, "major_code": "530605"}],
        }  # fmt: skip
        return await client.post(f"{BASE}/{application_id}/certificates", json=body, headers=me)

    before = await counts()
    refused = await claim("cet4_or_above", "CET4-NEW", "13124", "cet4")
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "application.course_already_passed"
    assert await counts() == before

    # The roster is imported again: 00018 is now passed too; identity says so in an event.
    await import_roster(portal, tmp_path, "13124;00018")
    events = await candidate_events(portal, candidate_id)
    assert [e.event_type for e in events] == [
        "CandidateRegistered",
        "CandidatePassedCoursesRecorded",
    ]
    recorded = events[1]
    assert recorded.payload["passed_course_codes"] == ["00018", "13124"]
    assert recorded.payload["admission_ticket_number"] == ticket(0)
    no_personal_numbers(recorded)
    await relay(portal, [recorded])
    refused = await claim("ncre1_or_above", "NCRE1", "00018", "ncre", level=1)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "application.course_already_passed"

    # The same roster again changes nothing and says nothing.
    await import_roster(portal, tmp_path, "13124;00018")
    assert len(await candidate_events(portal, candidate_id)) == 2

    # A correction that drops 00018 from the roster frees it again.
    await import_roster(portal, tmp_path, "13124")
    events = await candidate_events(portal, candidate_id)
    assert events[-1].payload["passed_course_codes"] == ["13124"]
    await relay(portal, events[2:])
    accepted = await claim("ncre1_or_above", "NCRE1", "00018", "ncre", level=1)
    assert accepted.status_code == 201, accepted.text
