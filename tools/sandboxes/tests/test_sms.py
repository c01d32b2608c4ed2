"""The SMS gateway sandbox: send with the client secret, read per mobile, newest first."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from sandboxes import sms

pytestmark = pytest.mark.unit

SECRET = "sms-sandbox-secret"
MOBILE = "13812345678"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = sms.create_app(fault_timeout=0.05)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:8203",
        headers={"Authorization": f"Bearer {SECRET}"},
    ) as c:
        yield c


def _send(code: str, mobile: str = MOBILE) -> dict[str, object]:
    return {"mobile": mobile, "template_id": "SMS_REGISTER_CODE", "params": {"code": code}}


async def _messages(client: httpx.AsyncClient, mobile: str = MOBILE) -> list[dict[str, str]]:
    response = await client.post("/_sandbox/messages/search", json={"mobile": mobile})
    assert response.status_code == 200
    messages: list[dict[str, str]] = response.json()["messages"]
    return messages


async def test_sent_messages_are_rendered_and_listed_newest_first(
    client: httpx.AsyncClient,
) -> None:
    first = await client.post("/api/v1/messages", json=_send("111111"))
    assert first.status_code == 200 and first.json()["status"] == "accepted"
    await client.post("/api/v1/messages", json=_send("222222"))
    await client.post("/api/v1/messages", json=_send("333333", "13900001111"))
    messages = await _messages(client)
    assert [m["params"]["code"] for m in messages] == ["222222", "111111"]  # type: ignore[index]
    assert messages[0]["text"] == "【自考免考】您的注册验证码为222222，5分钟内有效。"
    assert messages[1]["message_id"] == first.json()["message_id"]
    assert len(await _messages(client, "13900001111")) == 1
    assert await _messages(client, "13700000000") == []


async def test_the_client_secret_is_required(client: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        refused = await client.post("/api/v1/messages", json=_send("111111"), headers=headers)
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    assert await _messages(client) == []


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({**_send("1"), "mobile": "12345"}, "invalid_mobile"),
        ({**_send("1"), "template_id": "NOPE"}, "unknown_template"),
        ({**_send("1"), "params": {}}, "invalid_params"),
        ({"mobile": MOBILE}, "invalid_request"),
    ],
)
async def test_bad_sends_are_refused_in_the_protocol_shape(
    client: httpx.AsyncClient, body: dict[str, object], error: str
) -> None:
    refused = await client.post("/api/v1/messages", json=body)
    assert refused.status_code in (400, 422) and refused.json()["error"] == error
    assert await _messages(client) == []


async def test_faults_and_reset(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/faults", json={"mode": "error", "count": 1})
    assert (await client.post("/api/v1/messages", json=_send("111111"))).status_code == 500
    assert (await client.post("/api/v1/messages", json=_send("222222"))).status_code == 200
    await client.post("/_sandbox/reset")
    assert await _messages(client) == []
