"""End to end, scenario 2: workers killed mid-flow lose nothing and double nothing.

Three sandbox people (李晓燕, 刘芳, 王磊; 张建国 is the journey's) each register, upload a
certificate photo, have a CET or NCRE certificate checked, draft an application, add the
certificate and submit — through the services' JSON APIs. Each service's worker (relay and
consumers in one process) is SIGKILLed once, right where its events are in flight, and started
again:

- identity's, right after the registrations (CandidateRegistered not yet relayed, perhaps);
- media's, right after the uploads (PhotoUploaded);
- credential-verify's, right after the certificate checks (CertificateVerified);
- application's, right after the submissions, before review has seen them;
- review's, right after the point and province decisions, before the application has them.

The point reviewer returns 李晓燕's case (she submits again) and completes 初审 on all; the
senior reviewer decides all. Then: every submission reached review exactly once, every decision
reached the application exactly once, media pinned exactly the submitted photos,
credential-verify knows each candidate once, there are no dead letters, and every projection
rebuilt from Kafka equals the live one (`ops rebuild --verify`).
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import pytest
from e2e_support import (
    CANDIDATE_PASSWORD,
    LI,
    LIU,
    POINT,
    WANG,
    Person,
    RunningSystem,
    captcha_answer,
    certificate_jpeg,
    login,
    sms_code,
    verify_every_projection,
)

from devstack.demo import STAFF_PASSWORD
from eventkit.testing import eventually

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@dataclass
class Applicant:
    """A sandbox person on their way through the system."""

    person: Person
    major: str
    course: str
    exam: str
    certificate: str
    kind: str = "cet4_or_above"
    route: str = "CET4-NEW"
    candidate_id: str = ""
    auth: dict[str, str] = field(default_factory=dict)
    photo_id: str = ""
    check_id: str = ""
    application_id: str = ""
    case_number: str = ""


def applicants() -> list[Applicant]:
    return [
        Applicant(LI, "120203", "13000", "cet6", "112261400200456"),
        Applicant(LIU, "530605", "13124", "cet4", "191214010300645"),
        Applicant(WANG, "530605", "00018", "ncre", "163214010200791", "ncre2_or_above", "NCRE2"),
    ]


async def test_workers_killed_mid_flow_lose_and_double_nothing(e2e_system: RunningSystem) -> None:
    system = e2e_system
    identity, application = system.url("identity"), system.url("application")
    media, credential = system.url("media"), system.url("credential-verify")
    review = system.url("review")
    people = applicants()
    async with httpx.AsyncClient(timeout=30) as http:
        # --- registrations; identity's worker killed while they are in flight --------------
        for index, a in enumerate(people):
            mobile = f"1371234560{index}"
            code = await sms_code(http, system, mobile)
            captcha = (await http.get(f"{identity}/api/identity/captcha")).json()
            created = await http.post(
                f"{identity}/api/identity/candidates",
                json={"ticket_number": a.person.ticket, "id_number": a.person.id_number,
                      "name": a.person.name, "password": CANDIDATE_PASSWORD,
                      "mobile": mobile, "sms_code": code, "captcha_id": captcha["captcha_id"],
                      "captcha_answer": await captcha_answer(
                          system.dsn("identity"), captcha["captcha_id"])},
            )  # fmt: skip
            assert created.status_code == 201, created.text
            a.candidate_id = created.json()["candidate_id"]
        kill_and_restart(system, "identity")
        for a in people:
            a.auth = await login(system, http, a.person.ticket, CANDIDATE_PASSWORD)

        # --- photos; media's worker killed ---------------------------------------------------
        for i, a in enumerate(people):
            uploaded = await http.post(
                f"{media}/api/media/photos",
                headers=a.auth,
                files={"file": (f"cert-{i}.jpg", certificate_jpeg(seed=10 + i), "image/jpeg")},
            )
            assert uploaded.status_code == 201, uploaded.text
            a.photo_id = uploaded.json()["photo_id"]
        kill_and_restart(system, "media")

        # --- certificate checks (once credential-verify knows the candidate); its worker killed
        for a in people:
            a.check_id = await certificate_check(http, credential, a)
        kill_and_restart(system, "credential-verify")

        # --- draft, add the certificate, submit; application's worker killed -----------------
        window_id = await open_window(http, application)
        for a in people:
            await apply(http, application, a, window_id)
        kill_and_restart(system, "application")

        # --- the point reviewer: returns 李晓燕's, completes 初审 on the others ----------------
        reviewer = await login(system, http, "xiaodian.reviewer1", STAFF_PASSWORD, staff=True)
        senior = await login(system, http, "province.senior1", STAFF_PASSWORD, staff=True)
        first, *others = people
        for a in people:
            await until_in_review(http, review, reviewer, a, submission=1)
        await decide(http, review, reviewer, first, "return", 1)
        for a in others:
            await decide(http, review, reviewer, a, "initial-review", 1)

        # --- 李晓燕 sees the return and submits again ------------------------------------------
        async def returned() -> bool:
            found = await http.get(f"{application}/api/applications/{first.application_id}",
                                   headers=first.auth)  # fmt: skip
            return bool(found.json()["status"] == "returned")

        await eventually(returned, timeout=90, interval=0.5)
        again = await http.post(
            f"{application}/api/applications/{first.application_id}/submit",
            headers=first.auth, json={"declaration_accepted": True},
        )  # fmt: skip
        assert again.status_code == 200, again.text
        await until_in_review(http, review, reviewer, first, submission=2)
        await decide(http, review, reviewer, first, "initial-review", 2)

        # --- the senior reviewer decides all; review's worker killed right after ---------------
        for a in people:
            await until_in_review(http, review, senior, a, submission=2 if a is first else 1,
                                  status="provincial")  # fmt: skip
            await decide(http, review, senior, a, "approve", 2 if a is first else 1)
        kill_and_restart(system, "review")

        # --- every decision reached the application exactly once -----------------------------
        for a in people:
            await until_decided(http, application, a)
            details = (await http.get(f"{application}/api/applications/{a.application_id}",
                                      headers=a.auth)).json()  # fmt: skip
            events = Counter(t["event_type"] for t in details["timeline"])
            returns = 1 if a is first else 0
            assert events["ApplicationSubmitted"] == 1, details["timeline"]
            assert events["ApplicationResubmitted"] == returns, details["timeline"]
            assert events["ApplicationReturnedToCandidate"] == returns, details["timeline"]
            assert events["ApplicationDecided"] == 1, details["timeline"]
            assert [d["course_code"] for d in details["decisions"]] == [a.course]

            # --- media pinned the submitted photo ----------------------------------------------
            photo = await http.get(f"{media}/api/media/photos/{a.photo_id}", headers=a.auth)
            assert photo.status_code == 200 and photo.json()["pinned"] is True, photo.text

        # --- review: every submission once, its own trail right ---------------------------------
        for a in people:
            history = await http.get(
                f"{review}/api/review/cases/{a.application_id}/history", headers=senior
            )
            assert history.status_code == 200, history.text
            trail = Counter(t["event_type"] for t in history.json()["trail"])
            assert history.json()["case"]["submission_number"] == (2 if a is first else 1)
            assert trail["ApplicationApproved"] == 1, trail
            assert trail["InitialReviewCompleted"] == 1, trail
            assert trail["ApplicationReturned"] == (1 if a is first else 0), trail

    await check_projections(system, people)
    assert system.exited() == [], system.exited()
    assert sorted(system.restarts) == sorted(
        f"{s} worker" for s in ("identity", "media", "credential-verify", "application", "review")
    ), system.restarts

    # --- no dead letters about these people's events -------------------------------------------
    letters = system.ops("dead-letters", "list", "--status", "all", "--json")
    if letters.returncode != 2:  # 2: no such command (yet)
        assert letters.returncode == 0, letters.stderr
        ours = [ids for ids in mine(people) if ids in letters.stdout]
        assert not ours, f"dead letters about this test's events:\n{letters.stdout[:3000]}"

    # --- every projection rebuilt from its events equals the live one ---------------------------
    listed = system.ops("projections", "--json")
    if listed.returncode != 2:
        verify_every_projection(system, listed)


# --- steps ---------------------------------------------------------------------------------------


def kill_and_restart(system: RunningSystem, service: str) -> None:
    """SIGKILL the service's worker and start it again at once (it resumes from its database)."""
    system.kill_worker(service)
    system.restart_worker(service)


async def certificate_check(http: httpx.AsyncClient, credential: str, a: Applicant) -> str:
    """证书核验 with the NEEA sandbox; retried while credential-verify does not yet know the
    candidate (its registration is still on its way from identity)."""
    result: dict[str, Any] = {}

    async def checked() -> bool:
        done = await http.post(
            f"{credential}/api/credentials/certificate-checks", headers=a.auth,
            json={"exam": a.exam, "certificate_number": a.certificate,
                  "id_number": a.person.id_number},
        )  # fmt: skip
        if done.status_code == 201:
            result.update(done.json())
            return True
        assert done.status_code in (404, 409, 422, 503), done.text
        return False

    await eventually(checked, timeout=90, interval=0.5)
    assert result["outcome"] == "verified", result
    return str(result["check_id"])


async def open_window(http: httpx.AsyncClient, application: str) -> str:
    windows = (await http.get(f"{application}/api/windows")).json()
    [window] = [w for w in windows if w["stage"] == "applying"] or windows[:1]
    return str(window["window_id"])


async def apply(http: httpx.AsyncClient, application: str, a: Applicant, window_id: str) -> None:
    """Draft (once the application service knows the candidate), add the certificate (once it
    has the photo and the check), submit."""
    base = f"{application}/api/applications"
    drafted: dict[str, Any] = {}

    async def draft() -> bool:
        done = await http.post(
            base, headers=a.auth,
            json={"window_id": window_id, "confirmation_point_id": POINT, "plan": "new",
                  "major_codes": [a.major]},
        )  # fmt: skip
        if done.status_code == 201:
            drafted.update(done.json())
            return True
        assert done.status_code in (404, 409, 422), done.text
        return False

    await eventually(draft, timeout=90, interval=0.5)
    a.application_id = str(drafted["application_id"])

    async def add() -> bool:
        done = await http.post(
            f"{base}/{a.application_id}/certificates", headers=a.auth,
            json={"kind": a.kind, "route_id": a.route,
                  "courses": [{"course_code": a.course, "major_code": a.major}],
                  "photo_ids": [a.photo_id], "certificate_check_ref": a.check_id},
        )  # fmt: skip
        if done.status_code == 201:
            return True
        # the check's and the photo's events still on their way to the application service
        syncing = done.status_code == 404 and "not_found" in done.text
        assert syncing or done.status_code in (409, 422), done.text
        return False

    await eventually(add, timeout=90, interval=0.5)
    submitted = await http.post(
        f"{base}/{a.application_id}/submit", headers=a.auth, json={"declaration_accepted": True}
    )
    assert submitted.status_code == 200, submitted.text
    a.case_number = submitted.json()["case_number"]


async def until_in_review(
    http: httpx.AsyncClient, review: str, staff: dict[str, str], a: Applicant, *,
    submission: int, status: str | None = None,
) -> None:  # fmt: skip
    """Until review has the submission (and, with `status`, the case is at that stage)."""

    async def arrived() -> bool:
        found = await http.get(f"{review}/api/review/cases/{a.application_id}", headers=staff)
        if found.status_code != 200:
            return False
        case = found.json()
        at_stage = status is None or case["acting_stage"] == status
        return case["submission_number"] == submission and at_stage

    await eventually(arrived, timeout=90, interval=0.5)


async def decide(
    http: httpx.AsyncClient, review: str, staff: dict[str, str], a: Applicant, action: str,
    submission: int,
) -> None:  # fmt: skip
    """Claim, then 退回 / 初审 (grant) / 复审 (grant) the case."""
    case = f"{review}/api/review/cases/{a.application_id}"
    body: dict[str, Any] = {"submission_number": submission}
    claimed = await http.post(f"{case}/claim", headers=staff, json=body)
    assert claimed.status_code == 200, claimed.text
    if action == "return":
        body["reason"] = "证书照片不清晰，请重新上传"
    else:
        body["decisions"] = [{"course_code": a.course, "major_code": a.major,
                              "outcome": "granted"}]  # fmt: skip
    done = await http.post(f"{case}/{action}", headers=staff, json=body)
    assert done.status_code == 200, done.text


async def until_decided(http: httpx.AsyncClient, application: str, a: Applicant) -> None:
    async def decided() -> bool:
        found = await http.get(f"{application}/api/applications/{a.application_id}",
                               headers=a.auth)  # fmt: skip
        return bool(found.json()["status"] == "decided")

    await eventually(decided, timeout=90, interval=0.5)


def mine(people: list[Applicant]) -> list[str]:
    """The ids of this test's candidates, photos, checks and applications."""
    return [i for a in people for i in (a.candidate_id, a.photo_id, a.check_id, a.application_id)]


async def check_projections(system: RunningSystem, people: list[Applicant]) -> None:
    """What the consumers built, read from the projections themselves: each thing once."""
    candidates = [uuid.UUID(a.candidate_id) for a in people]
    applications = [uuid.UUID(a.application_id) for a in people]
    photos = [uuid.UUID(a.photo_id) for a in people]
    cv = await asyncpg.connect(system.dsn("credential-verify"))
    try:
        known = await cv.fetch(
            "SELECT candidate_id FROM credential_candidates.candidates"
            " WHERE candidate_id = ANY($1::uuid[])", candidates,
        )  # fmt: skip
        assert sorted(r["candidate_id"] for r in known) == sorted(candidates)
    finally:
        await cv.close()
    md = await asyncpg.connect(system.dsn("media"))
    try:
        pins = await md.fetch(
            "SELECT photo_id, application_id, first_submission FROM media_usage.pins"
            " WHERE application_id = ANY($1::uuid[])", applications,
        )  # fmt: skip
        assert sorted(r["photo_id"] for r in pins) == sorted(photos), pins
        assert all(r["first_submission"] == 1 for r in pins), pins
    finally:
        await md.close()
    rv = await asyncpg.connect(system.dsn("review"))
    try:
        rows = await rv.fetch(
            "SELECT application_id, envelope FROM review_submissions.inputs"
            " WHERE application_id = ANY($1::uuid[])", applications,
        )  # fmt: skip
        kinds = Counter((r["application_id"], _event_type(r["envelope"])) for r in rows)
        first = applications[0]
        for application_id in applications:
            assert kinds[(application_id, "ApplicationSubmitted")] == 1, kinds
            expected = 1 if application_id == first else 0
            assert kinds[(application_id, "ApplicationResubmitted")] == expected, kinds
        queued = await rv.fetch(
            "SELECT application_id FROM review_queue.cases WHERE application_id = ANY($1::uuid[])",
            applications,
        )
        assert sorted(r["application_id"] for r in queued) == sorted(applications)
    finally:
        await rv.close()


def _event_type(envelope: Any) -> str:
    doc = json.loads(envelope) if isinstance(envelope, str) else envelope
    return str(doc["event_type"])
