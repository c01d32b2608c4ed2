"""Review's staff API over HTTP on the real database: who may call what, a case's journey from
claim to the province's decision, every `review.*` error a reviewer can meet, the queue's
filters, sorting and paging, and the history trail."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from review_service import bootstrap
from review_service.domain.access import Reviewer
from review_service.domain.case import Verdict
from review_service.domain.errors import staff_label

pytestmark = pytest.mark.integration

BASE = "/api/review"
POINT, OTHER_POINT = "140105", "140106"
ALICE, BOB, SENIOR, SENIOR_2 = (uuid.uuid4() for _ in range(4))
R_ALICE = Reviewer(ALICE, frozenset({"reviewer"}), frozenset({POINT}))
R_SENIOR = Reviewer(SENIOR, frozenset({"senior_reviewer"}))
COURSES = ("00012", "00015")

MakeClient = Callable[..., AbstractAsyncContextManager[tuple[httpx.AsyncClient, Any]]]


def granted(courses: tuple[str, ...] = COURSES) -> list[dict[str, Any]]:
    return [{"course_code": c, "outcome": "granted"} for c in courses]


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


@pytest.fixture
def headers(staff_tokens: Any) -> dict[str, dict[str, str]]:
    return {
        "point": staff_tokens.staff(["reviewer"], [POINT], ALICE),
        "bob": staff_tokens.staff(["reviewer"], [POINT], BOB),
        "elsewhere": staff_tokens.staff(["reviewer"], [OTHER_POINT]),
        "senior": staff_tokens.staff(["senior_reviewer"], [], SENIOR),
        "senior_2": staff_tokens.staff(["senior_reviewer"], [], SENIOR_2),
        "ops": staff_tokens.staff(["ops"]),
        "candidate": staff_tokens.candidate(),
        "anonymous": {},
    }


# --- authorization ------------------------------------------------------------------------------

ENDPOINTS = (
    "case", "history", "claim", "release", "initial-review", "return", "approve",
    "templates",
)  # fmt: skip
_DENIED = dict.fromkeys(ENDPOINTS, 403)
EXPECTED: dict[str, dict[str, int]] = {
    "point": {
        "case": 200, "history": 200, "claim": 200, "release": 200,
        "initial-review": 200, "return": 200, "approve": 403, "templates": 200,
    },
    "elsewhere": {**dict.fromkeys(ENDPOINTS, 404), "templates": 200},
    "senior": {
        "case": 200, "history": 200, "claim": 403,
        "release": 409,  # no claim of theirs to give back: review.claim_required
        "initial-review": 403, "return": 403, "approve": 200, "templates": 200,
    },
    "ops": _DENIED,
    "candidate": _DENIED,
    "anonymous": dict.fromkeys(ENDPOINTS, 401),
}  # fmt: skip


@pytest.mark.parametrize("role", list(EXPECTED))
async def test_authorization_matrix(
    role: str, make_client: MakeClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    got: dict[str, int] = {}
    async with make_client() as (client, service):
        for endpoint in ENDPOINTS:
            payload = await feed.submit(courses=COURSES)
            app_id = uuid.UUID(payload["application_id"])
            if endpoint == "approve":  # the province's stage
                await service.cases.claim(R_ALICE, app_id, submission_number=1)
                await service.cases.complete_initial_review(
                    R_ALICE, app_id, submission_number=1,
                    verdicts=[Verdict(c, "granted") for c in COURSES], note=None,
                )  # fmt: skip
                if role == "senior":
                    await service.cases.claim(R_SENIOR, app_id, submission_number=1)
            elif role == "point" and endpoint in ("release", "initial-review", "return"):
                await service.cases.claim(R_ALICE, app_id, submission_number=1)
            path = f"{BASE}/cases/{app_id}"
            body: dict[str, Any] = {"submission_number": 1}
            if endpoint == "templates":
                response = await client.get(f"{BASE}/templates", headers=headers[role])
            elif endpoint == "case":
                response = await client.get(path, headers=headers[role])
            elif endpoint == "history":
                response = await client.get(f"{path}/history", headers=headers[role])
            else:
                if endpoint in ("initial-review", "approve"):
                    body["decisions"] = granted()
                if endpoint == "return":
                    body["reason"] = "学历证书照片不清晰，请重新上传"
                response = await client.post(f"{path}/{endpoint}", json=body, headers=headers[role])
            got[endpoint] = response.status_code
            if response.status_code >= 400:
                assert response.json()["error"]["code"]
    assert got == EXPECTED[role]


async def test_an_unknown_case_is_404_for_everyone_who_reviews(
    review_client: httpx.AsyncClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    path = f"{BASE}/cases/{uuid.uuid4()}"
    for role in ("point", "senior"):
        for response in (
            await review_client.get(path, headers=headers[role]),
            await review_client.get(f"{path}/history", headers=headers[role]),
            await review_client.post(
                f"{path}/claim", json={"submission_number": 1}, headers=headers[role]
            ),
        ):
            assert response.status_code == 404
            assert error_code(response) == "review.case_not_found"


CASE_ENDPOINTS: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("GET", "", None),
    ("GET", "/evidence", None),
    ("GET", "/history", None),
    ("POST", "/claim", {"submission_number": 1}),
    ("POST", "/release", {"submission_number": 1}),
    ("POST", "/initial-review", {"submission_number": 1, "decisions": granted()}),
    ("POST", "/return", {"submission_number": 1, "reason": "学历证书照片不清晰，请重新上传"}),
    ("POST", "/approve", {"submission_number": 1, "decisions": granted()}),
)


def per_case_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, suffix) of the API's routes under /cases/{application_id}."""
    prefix = f"{BASE}/cases/{{application_id}}"
    return {
        (method, route.path.removeprefix(prefix))
        for route in app.routes
        if getattr(route, "path", "").startswith(prefix)
        for method in getattr(route, "methods", ()) - {"HEAD"}
    }


async def test_a_withdrawn_draft_is_404_exactly_like_an_unknown_id(
    make_client: MakeClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    """Drafted and withdrawn before any submission, an application never became a case: every
    per-case endpoint answers as for an id nobody knows (no 500, nothing that tells it exists)."""
    draft_id = await feed.withdrawn_draft()
    unknown_id = uuid.uuid4()
    async with make_client() as (client, service):
        app = client._transport.app  # type: ignore[attr-defined]
        assert per_case_routes(app) == {(m, s) for m, s, _ in CASE_ENDPOINTS}
        for role in ("point", "senior"):
            for method, suffix, body in CASE_ENDPOINTS:
                answers = []
                for app_id in (draft_id, unknown_id):
                    response = await client.request(
                        method, f"{BASE}/cases/{app_id}{suffix}", json=body,
                        headers=headers[role],
                    )  # fmt: skip
                    answers.append(response)
                draft, unknown = answers
                where = (role, method, suffix)
                assert draft.status_code == unknown.status_code == 404, (where, draft.text)
                assert error_code(draft) == "review.case_not_found", where
                strip = {k: v for k, v in draft.json()["error"].items() if k != "request_id"}
                assert strip == {
                    k: v for k, v in unknown.json()["error"].items() if k != "request_id"
                }, where
        assert await service.cases.lapse_expired([draft_id]) == 0
    async with feed.pool.acquire() as conn:  # nothing was written for it
        assert not await conn.fetchval(
            "SELECT count(*) FROM eventkit.events WHERE stream_id = $1", str(draft_id)
        )


async def test_a_bad_token_is_401(review_client: httpx.AsyncClient) -> None:
    for value in ("Bearer nonsense", "Basic abc", "Bearer a.b.c"):
        response = await review_client.get(f"{BASE}/queue", headers={"Authorization": value})
        assert response.status_code == 401, value


# --- the journey --------------------------------------------------------------------------------


@pytest.mark.parametrize("deadline", ["2101-01-01", "9999-12-31"])
async def test_an_objection_deadline_out_of_the_sane_range_is_refused_naming_the_field(
    deadline: str, make_client: MakeClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    payload = await feed.submit(courses=COURSES)
    app_id = uuid.UUID(payload["application_id"])
    async with make_client() as (client, service):
        await service.cases.claim(R_ALICE, app_id, submission_number=1)
        await service.cases.complete_initial_review(
            R_ALICE, app_id, submission_number=1,
            verdicts=[Verdict(c, "granted") for c in COURSES], note=None,
        )  # fmt: skip
        await service.cases.claim(R_SENIOR, app_id, submission_number=1)
        response = await client.post(
            f"{BASE}/cases/{app_id}/approve",
            json={"submission_number": 1, "decisions": granted(), "objection_deadline": deadline},
            headers=headers["senior"],
        )
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "request.invalid"
        assert [(f["field"], f["code"]) for f in error["fields"]] == [
            ("objection_deadline", "date_out_of_range")
        ]
        case = (await client.get(f"{BASE}/cases/{app_id}", headers=headers["senior"])).json()
        assert case["status"] == "awaiting_province"


async def test_a_window_published_with_dates_out_of_range_leaves_the_queue_readable(
    review_client: httpx.AsyncClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    """Windows opened before dates were held to a range: year 1 in UTC (PostgreSQL stores it
    as -infinity) and in Beijing time (PostgreSQL refuses it). The queue still answers, with
    those cases' deadlines unknown; so it does for a deadline already stored as -infinity."""
    now = datetime.now(UTC)
    ids = []
    for offset in (UTC, timezone(timedelta(hours=8))):
        feed.window_id = uuid.uuid4()
        year_one = datetime(1, 1, 1, 8, tzinfo=offset)
        await feed.window(
            opens_at=year_one, applications_close_at=year_one, point_review_close_at=year_one,
            province_review_close_at=year_one, results_published_at=year_one,
        )  # fmt: skip
        ids.append((await feed.submit(occurred_at=now - timedelta(days=1)))["application_id"])
    feed.window_id = uuid.uuid4()
    await feed.window(
        opens_at=now - timedelta(days=30), applications_close_at=now - timedelta(days=20),
        point_review_close_at=now + timedelta(days=1),
        province_review_close_at=now + timedelta(days=5),
        results_published_at=now + timedelta(days=10),
    )  # fmt: skip
    legacy = (await feed.submit(occurred_at=now - timedelta(days=1)))["application_id"]
    async with feed.pool.acquire() as conn:
        await conn.execute(
            "UPDATE review_queue.cases SET stage_deadline = '-infinity' WHERE application_id = $1",
            uuid.UUID(legacy),
        )
    for sort in ("waiting", "deadline"):
        response = await review_client.get(
            f"{BASE}/queue", params={"sort": sort}, headers=headers["point"]
        )
        assert response.status_code == 200, response.text
        rows = {r["application_id"]: r for r in response.json()["rows"]}
        assert set(rows) == {*ids, legacy}
        assert all(r["deadline"] is None and not r["overdue"] for r in rows.values())


async def test_the_journey_claim_initial_review_and_the_provinces_approval(
    review_client: httpx.AsyncClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    client = review_client
    payload = await feed.submit(courses=COURSES)
    app_id = payload["application_id"]
    path = f"{BASE}/cases/{app_id}"
    one = {"submission_number": 1}

    response = await client.post(f"{path}/claim", json=one, headers=headers["point"])
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["status"] == "awaiting_point" and case["status_label"] == "待确认点初审"
    assert case["claimed_by"] == str(ALICE) and case["claim_expires_at"]
    assert case["acting_stage"] == "confirmation_point"

    response = await client.post(f"{path}/claim", json=one, headers=headers["bob"])
    assert response.status_code == 409
    assert error_code(response) == "review.already_claimed"
    assert f"审核员 {staff_label(ALICE)}" in response.json()["error"]["message"]

    decisions = [
        {"course_code": "00012", "outcome": "granted"},
        {"course_code": "00015", "major_code": "580401", "outcome": "denied",
         "reason": "证书取得时间不在有效期内"},
    ]  # fmt: skip
    response = await client.post(
        f"{path}/initial-review",
        json={**one, "decisions": decisions, "note": "原件已核验"},
        headers=headers["point"],
    )
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["status"] == "awaiting_province" and case["claimed_by"] is None
    assert [d["outcome"] for d in case["point_decisions"]] == ["granted", "denied"]
    assert case["point_note"] == "原件已核验"

    case = (await client.get(path, headers=headers["senior"])).json()
    assert case["acting_stage"] == "provincial"

    response = await client.post(f"{path}/claim", json=one, headers=headers["senior"])
    assert response.status_code == 200 and response.json()["claimed_by"] == str(SENIOR)
    response = await client.post(f"{path}/claim", json=one, headers=headers["senior_2"])
    assert response.status_code == 409 and error_code(response) == "review.already_claimed"
    case = (await client.get(path, headers=headers["point"])).json()
    assert case["claimed_by"] == str(SENIOR)

    response = await client.post(
        f"{path}/approve",
        json={**one, "decisions": granted(), "objection_deadline": None},
        headers=headers["senior"],
    )
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["status"] == "decided" and case["acting_stage"] is None
    assert [d["outcome"] for d in case["final_decisions"]] == ["granted", "granted"]

    response = await client.get(f"{path}/history", headers=headers["point"])
    assert response.status_code == 200
    trail = response.json()["trail"]
    assert [(e["event_type"], e["actor_id"]) for e in trail] == [
        ("ApplicationSubmitted", "review-tests"),
        ("ReviewClaimed", str(ALICE)),
        ("InitialReviewCompleted", str(ALICE)),
        ("ReviewClaimed", str(SENIOR)),
        ("ApplicationApproved", str(SENIOR)),
    ]
    assert [e["actor_kind"] for e in trail[1:]] == ["staff"] * 4
    times = [datetime.fromisoformat(e["occurred_at"]) for e in trail]
    assert all(t.tzinfo is not None for t in times) and times == sorted(times)
    assert all(e["submission_number"] == 1 for e in trail)
    assert response.json()["case"]["status"] == "decided"

    for role in ("point", "senior"):
        response = await client.post(f"{path}/claim", json=one, headers=headers[role])
        assert response.status_code == 409 and error_code(response) == "review.already_decided"


async def test_a_return_with_reason_and_the_resubmission(
    review_client: httpx.AsyncClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    client = review_client
    payload = await feed.submit(courses=COURSES)
    app_id = uuid.UUID(payload["application_id"])
    path = f"{BASE}/cases/{app_id}"
    one = {"submission_number": 1}
    assert (await client.post(f"{path}/claim", json=one, headers=headers["point"])).is_success
    response = await client.post(
        f"{path}/release", json=one, headers=headers["point"]
    )  # give it back, take it again
    assert response.status_code == 200 and response.json()["claimed_by"] is None
    assert (await client.post(f"{path}/claim", json=one, headers=headers["point"])).is_success

    reason = "学历证书照片不清晰，请重新上传"
    response = await client.post(
        f"{path}/return",
        json={**one, "reason": reason, "course_notes": {"00015": "请补充成绩单"}},
        headers=headers["point"],
    )
    assert response.status_code == 200, response.text
    case = response.json()
    assert case["status"] == "returned"
    assert case["last_return"]["reason"] == reason
    assert case["last_return"]["stage"] == "confirmation_point"

    response = await client.post(f"{path}/claim", json=one, headers=headers["point"])
    assert response.status_code == 409 and error_code(response) == "review.not_claimable"
    response = await client.post(
        f"{path}/return", json={**one, "reason": reason}, headers=headers["point"]
    )
    assert response.status_code == 409 and error_code(response) == "review.already_decided"

    await asyncio.sleep(0.01)
    await feed.submit(application_id=app_id, number=2, courses=("00012",))
    await feed.sync()
    case = (await client.get(path, headers=headers["point"])).json()
    assert (case["status"], case["submission_number"], case["earlier_rounds"]) == (
        "awaiting_point", 2, 1,
    )  # fmt: skip
    assert case["changes_since_last_return"]["removed_courses"] == ["00015"]
    response = await client.post(f"{path}/claim", json=one, headers=headers["point"])
    assert response.status_code == 409 and error_code(response) == "review.stale_submission"
    assert case["last_return"]["reason"] == reason
    response = await client.post(
        f"{path}/claim", json={"submission_number": 2}, headers=headers["point"]
    )
    assert response.status_code == 200


# --- every review.* error over HTTP -------------------------------------------------------------


async def test_every_review_error_a_reviewer_can_meet(
    review_client: httpx.AsyncClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    client = review_client
    payload = await feed.submit(courses=COURSES)
    path = f"{BASE}/cases/{payload['application_id']}"
    one = {"submission_number": 1}
    alice = headers["point"]

    async def post(action: str, body: dict[str, Any], who: str = "point") -> httpx.Response:
        return await client.post(f"{path}/{action}", json=body, headers=headers[who])

    def expect(response: httpx.Response, status: int, code: str) -> None:
        assert (response.status_code, error_code(response)) == (status, code), response.text

    expect(await post("claim", {"submission_number": 2}), 409, "review.stale_submission")
    expect(await post("initial-review", {**one, "decisions": granted()}), 409,
           "review.claim_required")  # fmt: skip
    expect(await post("return", {**one, "reason": "x"}), 409, "review.claim_required")
    expect(await post("release", one), 409, "review.claim_required")
    assert (await post("claim", one)).status_code == 200
    expect(await post("claim", one, "bob"), 409, "review.already_claimed")
    expect(await post("initial-review", {**one, "decisions": granted()}, "bob"), 409,
           "review.already_claimed")  # fmt: skip
    expect(await post("initial-review", {**one, "decisions": granted(("00012",))}), 422,
           "review.decision_incomplete")  # fmt: skip
    expect(await post("initial-review", {**one, "decisions": granted((*COURSES, "00099"))}),
           422, "review.decision_incomplete")  # fmt: skip
    twice = {**one, "decisions": [*granted(), {"course_code": "00012", "outcome": "granted"}]}
    expect(await post("initial-review", twice), 422, "review.decision_incomplete")
    wrong_major = [
        {"course_code": "00012", "outcome": "granted", "major_code": "999999"},
        {"course_code": "00015", "outcome": "granted"},
    ]
    expect(await post("initial-review", {**one, "decisions": wrong_major}), 422,
           "review.decision_incomplete")  # fmt: skip
    denied = [{"course_code": "00012", "outcome": "denied"}, *granted(("00015",))]
    expect(await post("initial-review", {**one, "decisions": denied}), 422,
           "review.reason_required")  # fmt: skip
    blank = [{"course_code": "00012", "outcome": "denied", "reason": "   "}, *granted(("00015",))]
    expect(await post("initial-review", {**one, "decisions": blank}), 422,
           "review.reason_required")  # fmt: skip
    expect(await post("return", {**one, "reason": "   "}), 422, "review.reason_required")
    expect(await post("return", {**one, "reason": ""}), 422, "request.invalid")
    expect(await post("return", {**one, "reason": "长" * 501}), 422, "request.invalid")
    expect(await post("return", {**one, "reason": "请补充", "course_notes": {"00012": "长" * 501}}),
           422, "review.reason_too_long")  # fmt: skip
    expect(await post("return", {**one, "reason": "请补充", "course_notes": {"00099": "x"}}),
           422, "review.invalid_input")  # fmt: skip
    too_long = [{"course_code": "00012", "outcome": "denied", "reason": "长" * 501}]
    expect(await post("initial-review", {**one, "decisions": too_long}), 422, "request.invalid")
    expect(await post("approve", {**one, "decisions": granted()}, "senior"), 403,
           "review.forbidden")  # fmt: skip

    assert (await post("initial-review", {**one, "decisions": granted()})).status_code == 200
    expect(await post("initial-review", {**one, "decisions": granted()}), 409,
           "review.already_decided")  # fmt: skip
    expect(await post("claim", one), 403, "review.forbidden")  # the province's stage now
    assert (await post("claim", one, "senior")).status_code == 200
    yesterday = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    expect(await post("approve", {**one, "decisions": granted(), "objection_deadline": yesterday},
                      "senior"), 422, "review.invalid_input")  # fmt: skip
    expect(await post("approve", {**one, "decisions": granted()}, "senior_2"), 409,
           "review.already_claimed")  # fmt: skip
    assert (await post("approve", {**one, "decisions": granted()}, "senior")).status_code == 200
    expect(await post("approve", {**one, "decisions": granted()}, "senior"), 409,
           "review.already_decided")  # fmt: skip
    assert alice  # (the point reviewer saw every refusal above by code)


async def test_an_expired_claim_must_be_taken_again(
    make_client: MakeClient, feed: Any, headers: dict[str, dict[str, str]]
) -> None:
    payload = await feed.submit(courses=COURSES)
    path = f"{BASE}/cases/{payload['application_id']}"
    one = {"submission_number": 1}
    async with make_client(claim_lease_minutes=0.002) as (client, _):  # 0.12 s
        assert (await client.post(f"{path}/claim", json=one, headers=headers["point"])).is_success
        await asyncio.sleep(0.3)
        response = await client.post(
            f"{path}/initial-review", json={**one, "decisions": granted()}, headers=headers["point"]
        )
        assert (response.status_code, error_code(response)) == (409, "review.claim_expired")
        case = (await client.get(path, headers=headers["point"])).json()
        assert case["claimed_by"] is None
        response = await client.post(f"{path}/claim", json=one, headers=headers["bob"])
        assert response.status_code == 200 and response.json()["claimed_by"] == str(BOB)
        response = await client.post(
            f"{path}/initial-review", json={**one, "decisions": granted()}, headers=headers["point"]
        )
        assert (response.status_code, error_code(response)) == (409, "review.already_claimed")
        trail = (await client.get(f"{path}/history", headers=headers["bob"])).json()["trail"]
        assert [e["event_type"] for e in trail] == [
            "ApplicationSubmitted", "ReviewClaimed", "ReviewReleased", "ReviewClaimed",
        ]  # fmt: skip


async def test_malformed_requests_are_422_or_400(
    review_client: httpx.AsyncClient,
    feed: Any,
    headers: dict[str, dict[str, str]],
    staff_tokens: Any,
) -> None:
    client = review_client
    payload = await feed.submit(courses=COURSES)
    path = f"{BASE}/cases/{payload['application_id']}"
    alice = headers["point"]
    for response in (
        await client.get(f"{BASE}/cases/not-a-uuid", headers=alice),
        await client.get(f"{BASE}/cases/1234/history", headers=alice),
        await client.post(f"{BASE}/cases/xyz/claim", json={"submission_number": 1}, headers=alice),
        await client.post(f"{path}/claim", json={"submission_number": 1, "x": 1}, headers=alice),
        await client.post(f"{path}/claim", json={"submission_number": 0}, headers=alice),
        await client.post(f"{path}/claim", json={}, headers=alice),
        await client.post(
            f"{path}/initial-review", json={"submission_number": 1, "decisions": []}, headers=alice
        ),
        await client.post(
            f"{path}/initial-review",
            json={
                "submission_number": 1,
                "decisions": [{"course_code": "00012", "outcome": "maybe"}],
            },
            headers=alice,
        ),
        await client.post(
            f"{path}/initial-review",
            json={
                "submission_number": 1,
                "decisions": [{"course_code": "12", "outcome": "granted"}],
            },
            headers=alice,
        ),
        await client.post(
            f"{path}/approve",
            json={"submission_number": 1, "decisions": granted(), "objection_deadline": "soon"},
            headers=headers["senior"],
        ),
        await client.post(
            f"{path}/return",
            json={"submission_number": 1, "reason": "x", "extra": True},
            headers=alice,
        ),
        await client.get(f"{BASE}/queue?size=0", headers=alice),
        await client.get(f"{BASE}/queue?size=101", headers=alice),
        await client.get(f"{BASE}/queue?status=bogus", headers=alice),
        await client.get(f"{BASE}/queue?sort=bogus", headers=alice),
        await client.get(f"{BASE}/queue?claim=bogus", headers=alice),
        await client.get(f"{BASE}/queue?major=ABC", headers=alice),
    ):
        assert response.status_code == 422, (response.request.url, response.text)
        assert error_code(response) == "request.invalid"
    response = await client.post(
        f"{path}/claim", content=b"{not json", headers={**alice, "Content-Type": "application/json"}
    )
    assert response.status_code == 400

    for query in ("after=garbage", "after=" + "A" * 40):
        response = await client.get(f"{BASE}/queue?{query}", headers=alice)
        assert (response.status_code, error_code(response)) == (400, "review.invalid_query")
    pointless = staff_tokens.staff(["reviewer"], [])
    response = await client.get(f"{BASE}/queue", headers=pointless)
    assert (response.status_code, error_code(response)) == (400, "review.invalid_query")


# --- the queue ----------------------------------------------------------------------------------


ON_SEARCH_PATH = [
    pytest.param(False, id="service-pool"),
    pytest.param(True, id="queue-schema-on-search-path"),
]


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("point", 200),
        ("elsewhere", 200),
        ("senior", 200),
        ("ops", 403),
        ("candidate", 403),
        ("anonymous", 401),
    ],
)
async def test_queue_authorization(
    role: str, status: int, review_client: httpx.AsyncClient, feed: Any,
    headers: dict[str, dict[str, str]],
) -> None:  # fmt: skip
    await feed.submit()
    response = await review_client.get(f"{BASE}/queue", headers=headers[role])
    assert response.status_code == status, response.text[:300]


@pytest.mark.parametrize("on_search_path", ON_SEARCH_PATH)
async def test_queue_filters_sorting_paging_and_counts(
    make_client: MakeClient, feed: Any, headers: dict[str, dict[str, str]], on_search_path: bool
) -> None:
    now = datetime.now(UTC)
    window_a, overdue_window = feed.window_id, uuid.uuid4()
    await feed.window(
        opens_at=now - timedelta(days=30), applications_close_at=now + timedelta(days=1),
        point_review_close_at=now + timedelta(days=10),
        province_review_close_at=now + timedelta(days=20),
        results_published_at=now + timedelta(days=30),
    )  # fmt: skip
    feed.window_id = overdue_window
    await feed.window(
        opens_at=now - timedelta(days=30), applications_close_at=now - timedelta(days=20),
        point_review_close_at=now - timedelta(days=1),
        province_review_close_at=now + timedelta(days=5),
        results_published_at=now + timedelta(days=10),
    )  # fmt: skip
    c2 = await feed.submit(
        occurred_at=now - timedelta(days=2), major_codes=("580402",), route_id="CET6",
        case_number="MK2026000002",
    )  # fmt: skip
    feed.window_id = window_a
    c1 = await feed.submit(occurred_at=now - timedelta(days=3), case_number="MK2026000001")
    c3 = await feed.submit(occurred_at=now - timedelta(days=1), case_number="MK2026000003")
    c4 = await feed.submit(occurred_at=now - timedelta(days=1), point=OTHER_POINT,
                           case_number="MK2026000004")  # fmt: skip
    c5 = await feed.submit(occurred_at=now - timedelta(hours=12), case_number="MK2026000005")
    ids = {name: c["application_id"] for name, c in
           {"c1": c1, "c2": c2, "c3": c3, "c4": c4, "c5": c5}.items()}  # fmt: skip

    async with make_client(queue_on_search_path=on_search_path) as (client, service):
        c3_id = uuid.UUID(ids["c3"])
        await service.cases.claim(R_ALICE, c3_id, submission_number=1)
        await service.cases.return_to_candidate(
            R_ALICE, c3_id, submission_number=1, reason="成绩单未加盖学校公章"
        )
        await feed.sync()  # the return reaches the queue before the resubmission, as in order
        await asyncio.sleep(0.01)
        await feed.submit(application_id=c3_id, number=2, case_number="MK2026000003")
        await service.cases.claim(R_ALICE, uuid.UUID(ids["c5"]), submission_number=1)
        await feed.sync()

        async def queue(query: str = "", who: str = "point") -> dict[str, Any]:
            response = await client.get(f"{BASE}/queue?{query}", headers=headers[who])
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        def names(body: dict[str, Any]) -> list[str]:
            by_id = {v: k for k, v in ids.items()}
            return [by_id[r["application_id"]] for r in body["rows"]]

        body = await queue()
        assert names(body) == ["c1", "c2", "c5", "c3"]  # waiting longest first
        assert body["counts"] == {
            "awaiting_point": 4, "awaiting_province": 0, "returned": 0, "decided": 0,
            "withdrawn": 0,
        }  # fmt: skip
        assert (body["overdue"], body["claimed"], body["next_cursor"]) == (1, 1, None)
        rows = {r["application_id"]: r for r in body["rows"]}
        first = rows[ids["c1"]]
        assert first["days_waiting"] == 3 and not first["overdue"]
        assert datetime.fromisoformat(first["deadline"]) == (now + timedelta(days=10))
        assert rows[ids["c2"]]["overdue"] is True
        assert rows[ids["c5"]]["claimed_by"] == str(ALICE)
        assert rows[ids["c3"]]["resubmissions"] == 1
        assert rows[ids["c3"]]["last_return_reason"] == "成绩单未加盖学校公章"
        assert first["major_codes"] == ["580401"] and first["route_ids"] == ["CET4"]

        assert names(await queue("major=580402")) == ["c2"]
        assert names(await queue("route=CET6")) == ["c2"]
        assert names(await queue("overdue=true")) == ["c2"]
        assert names(await queue("overdue=false")) == ["c1", "c5", "c3"]
        assert names(await queue("claim=mine")) == ["c5"]
        assert names(await queue("claim=claimed")) == ["c5"]
        assert names(await queue("claim=unclaimed")) == ["c1", "c2", "c3"]
        assert names(await queue("claim=mine", who="bob")) == []
        assert names(await queue("q=mk2026000003")) == ["c3"]
        assert names(await queue("q=MK20260000")) == ["c1", "c2", "c5", "c3"]
        assert names(await queue("q=MK99")) == []
        assert names(await queue("sort=resubmissions"))[0] == "c3"
        assert names(await queue("sort=deadline"))[0] == "c2"
        assert names(await queue("sort=case_number")) == ["c1", "c2", "c3", "c5"]
        assert names(await queue("status=returned")) == []
        assert names(await queue("status=awaiting_point&status=returned")) == [
            "c1", "c2", "c5", "c3",
        ]  # fmt: skip

        seen: list[str] = []
        cursor: str | None = ""
        pages = 0
        while cursor is not None:
            body = await queue(f"size=2&sort=case_number&after={cursor}" if cursor else
                               "size=2&sort=case_number")  # fmt: skip
            seen += names(body)
            cursor = body["next_cursor"]
            pages += 1
            assert body["counts"]["awaiting_point"] == 4
        assert (seen, pages) == (["c1", "c2", "c3", "c5"], 2)
        page = await queue("size=2")
        response = await client.get(
            f"{BASE}/queue?sort=case_number&after={page['next_cursor']}", headers=headers["point"]
        )
        assert (response.status_code, error_code(response)) == (400, "review.invalid_query")

        elsewhere = await queue(who="elsewhere")
        assert names(elsewhere) == ["c4"] and elsewhere["counts"]["awaiting_point"] == 1
        province = await queue(who="senior")
        assert names(province) == [] and province["counts"]["awaiting_point"] == 5
        assert (province["overdue"], province["claimed"]) == (0, 0)
        assert names(await queue("status=awaiting_point", who="senior")) == [
            "c1", "c2", "c4", "c5", "c3",
        ]  # fmt: skip


async def test_templates_list_return_and_denial_reasons(
    review_client: httpx.AsyncClient, headers: dict[str, dict[str, str]]
) -> None:
    response = await review_client.get(f"{BASE}/templates", headers=headers["senior"])
    assert response.status_code == 200
    templates = response.json()
    assert (templates and {t["kind"] for t in templates} >= {"return"}) or templates
    assert all(t["template_id"] and t["text"] for t in templates)
    assert len({t["template_id"] for t in templates}) == len(templates)


def _cursor(values: list[Any]) -> str:
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("after=" + _cursor(["resubmissions", 10**12, "2026-01-01T00:00:00+00:00",
                     str(uuid.uuid4())]) + "&sort=resubmissions", id="int-overflow-cursor"),
        pytest.param("q=MK%00", id="nul-in-prefix"),
        pytest.param("route=CET%00", id="nul-in-route"),
        pytest.param("after=" + _cursor(["resubmissions", 3, "2026-01-01T00:00:00+00:00",
                     str(uuid.uuid4())]) + "&sort=resubmissions", id="valid-cursor"),
        pytest.param("q=%25_%5C", id="like-metacharacters"),
    ],
)  # fmt: skip
async def test_hostile_queue_queries_are_refused_not_crashed(
    make_client: MakeClient, headers: dict[str, dict[str, str]], query: str
) -> None:
    async with make_client(queue_on_search_path=True) as (client, _):
        response = await client.get(f"{BASE}/queue?{query}", headers=headers["point"])
    assert response.status_code < 500, response.text


def test_bootstrap_is_importable() -> None:
    assert bootstrap.Review
