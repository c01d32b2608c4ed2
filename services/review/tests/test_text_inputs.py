"""Reasons and notes a reviewer writes: a NUL (or another control character) is refused with a
422 naming the field and nothing is recorded; a reason made only of invisible characters (zero-
width space, BOM, joiners) is as blank as "" and refused where a reason is required."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

BASE = "/api/review"
POINT = "140105"
ALICE = uuid.uuid4()
COURSES = ("00012", "00015")
INVISIBLE = ("\u200b", "\ufeff", "\u200b\u200d\u2060", " \u200e\u3000 ")
CONTROLS = ("\x00", "\x1b", "\x7f")


@pytest.fixture
def point(staff_tokens: Any) -> dict[str, str]:
    return dict(staff_tokens.staff(["reviewer"], [POINT], ALICE))


async def claimed_case(client: httpx.AsyncClient, feed: Any, point: dict[str, str]) -> str:
    payload = await feed.submit(courses=COURSES)
    path = f"{BASE}/cases/{payload['application_id']}"
    response = await client.post(f"{path}/claim", json={"submission_number": 1}, headers=point)
    assert response.status_code == 200, response.text
    return path


async def nothing_decided(client: httpx.AsyncClient, path: str, point: dict[str, str]) -> None:
    case = (await client.get(path, headers=point)).json()
    assert case["status"] != "returned" and not case["point_decisions"], case
    history = (await client.get(f"{path}/history", headers=point)).json()
    assert [e["event_type"] for e in history["trail"]] == ["ApplicationSubmitted", "ReviewClaimed"]


def _denied(reason: str) -> list[dict[str, Any]]:
    return [
        {"course_code": "00012", "outcome": "denied", "reason": reason},
        {"course_code": "00015", "outcome": "granted"},
    ]


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
async def test_control_characters_in_reasons_and_notes_are_refused_naming_the_field(
    review_client: httpx.AsyncClient, feed: Any, point: dict[str, str], control: str
) -> None:
    client = review_client
    path = await claimed_case(client, feed, point)
    one = {"submission_number": 1}
    attempts = [
        ("return", {**one, "reason": f"照片{control}不清晰"}, "reason"),
        ("return", {**one, "reason": "请补充", "course_notes": {"00012": f"a{control}"}},
         "course_notes"),
        ("initial-review", {**one, "decisions": _denied(f"不{control}符")}, "decisions.0.reason"),
        ("initial-review", {**one, "decisions": _denied("不符"), "note": f"备注{control}"}, "note"),
    ]  # fmt: skip
    for action, body, field in attempts:
        response = await client.post(f"{path}/{action}", json=body, headers=point)
        assert response.status_code == 422, (action, response.text)
        error = response.json()["error"]
        assert error["code"] == "request.invalid"
        assert error["fields"][0]["field"] == field, error
        assert error["fields"][0]["code"] == "string_control_character"
    await nothing_decided(client, path, point)


@pytest.mark.parametrize("invisible", INVISIBLE, ids=repr)
async def test_a_reason_of_only_invisible_characters_is_blank(
    review_client: httpx.AsyncClient, feed: Any, point: dict[str, str], invisible: str
) -> None:
    client = review_client
    path = await claimed_case(client, feed, point)
    one = {"submission_number": 1}
    response = await client.post(f"{path}/return", json={**one, "reason": invisible}, headers=point)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in {"review.reason_required", "request.invalid"}
    response = await client.post(
        f"{path}/initial-review", json={**one, "decisions": _denied(invisible)}, headers=point
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "review.reason_required"
    await nothing_decided(client, path, point)


async def test_a_reason_is_stored_without_its_invisible_edges(
    review_client: httpx.AsyncClient, feed: Any, point: dict[str, str]
) -> None:
    client = review_client
    path = await claimed_case(client, feed, point)
    response = await client.post(
        f"{path}/return",
        json={"submission_number": 1, "reason": "\ufeff\u200b请重新上传照片\u200b "},
        headers=point,
    )
    assert response.status_code == 200, response.text
    assert response.json()["last_return"]["reason"] == "请重新上传照片"
