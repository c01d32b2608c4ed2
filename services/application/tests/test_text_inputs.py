"""Texts the application API takes: a NUL (or another control character) in a window's name, a
close reason or a withdraw reason is a 422 naming the field with nothing recorded; a required
text made only of invisible characters is blank."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from test_api_errors import Wizard, refused

pytestmark = pytest.mark.integration

BASE = "/api/applications"
CONTROLS = ("\x00", "\x08", "\x1b", "\x7f")
INVISIBLE = ("\u200b", "\ufeff", "\u200b\u200c\u200d", " \u2060\u3000 ")


@pytest.fixture
async def wizard(
    client: httpx.AsyncClient, tokens: Any, evidence: Any, open_window: str, service: Any
) -> Wizard:
    me = uuid.uuid4()
    await evidence.registered(me)
    return Wizard(client, me, tokens(me), open_window, evidence, service)


def window_body(name: str) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "name": name,
        "opens_at": now.isoformat(),
        "applications_close_at": (now + timedelta(days=5)).isoformat(),
        "point_review_close_at": (now + timedelta(days=15)).isoformat(),
        "province_review_close_at": (now + timedelta(days=25)).isoformat(),
        "results_published_at": (now + timedelta(days=30)).isoformat(),
    }


def field_of(response: httpx.Response) -> tuple[str, str]:
    first = response.json()["error"]["fields"][0]
    return first["field"], first["code"]


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
async def test_control_characters_in_window_texts_are_refused(
    client: httpx.AsyncClient, tokens: Any, counts: Any, open_window: str, control: str
) -> None:
    ops = tokens(uuid.uuid4(), "staff", ["ops"])
    response = await refused(
        counts,
        client.post("/api/windows", json=window_body(f"2027年{control}上半年"), headers=ops),
        422,
        "request.invalid",
    )
    assert field_of(response) == ("name", "string_control_character")
    response = await refused(
        counts,
        client.post(
            f"/api/windows/{open_window}/close", json={"reason": f"维护{control}"}, headers=ops
        ),
        422,
        "request.invalid",
    )
    assert field_of(response) == ("reason", "string_control_character")


@pytest.mark.parametrize("invisible", INVISIBLE, ids=repr)
async def test_invisible_window_texts_are_blank(
    client: httpx.AsyncClient, tokens: Any, counts: Any, open_window: str, invisible: str
) -> None:
    ops = tokens(uuid.uuid4(), "staff", ["ops"])
    response = await refused(
        counts,
        client.post("/api/windows", json=window_body(invisible), headers=ops),
        422,
        "request.invalid",
    )
    assert field_of(response) == ("name", "string_blank")
    response = await refused(
        counts,
        client.post(f"/api/windows/{open_window}/close", json={"reason": invisible}, headers=ops),
        422,
        "request.invalid",
    )
    assert field_of(response) == ("reason", "string_blank")


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
async def test_a_control_character_in_a_withdraw_reason_is_refused(
    wizard: Any, counts: Any, control: str
) -> None:
    application_id = await wizard.draft()
    response = await refused(
        counts,
        wizard.client.post(
            f"{BASE}/{application_id}/withdraw",
            json={"reason": f"暂不{control}申请"},
            headers=wizard.headers,
        ),
        422,
        "request.invalid",
    )
    assert field_of(response) == ("reason", "string_control_character")
    still = await wizard.client.get(f"{BASE}/{application_id}", headers=wizard.headers)
    assert still.json()["status"] == "draft"


async def test_an_invisible_withdraw_reason_is_no_reason(wizard: Any) -> None:
    application_id = await wizard.draft()
    response = await wizard.client.post(
        f"{BASE}/{application_id}/withdraw", json={"reason": "\u200b\ufeff"}, headers=wizard.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["withdrawn_reason"] is None
