"""CHSI sandbox: authorisation lifecycle through the approve page, and verification codes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from sandboxes import chsi

pytestmark = pytest.mark.unit

ZHANG = {"id_number": "140105199003152018", "password": "sandbox-zhang"}
STATE = "3f1c2a9e-8d4b-4c7a-9e21-5b6f0d2c7a10"
CALLBACK = "https://apply.example.test/chsi/callback"


def _session(html: str) -> str:
    match = re.search(r'name="session" value="([^"]+)"', html)
    assert match, "records page has no session field"
    return match.group(1)


async def _create(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/authorizations", json={"state": STATE, "callback_url": CALLBACK}
    )
    assert response.status_code == 201
    body: dict[str, Any] = response.json()
    return body


async def _sign_in(client: httpx.AsyncClient, page: str, creds: dict[str, str] = ZHANG) -> str:
    response = await client.post(page, data={"action": "login", **creds})
    assert response.status_code == 200, response.text
    assert "同意授权" in response.text
    assert "拒绝" in response.text
    return _session(response.text)


def _page_path(created: dict[str, Any]) -> str:
    return str(httpx.URL(created["qr_content"]).path)


async def test_api_requires_the_client_secret(chsi_client: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        response = await chsi_client.post(
            "/api/v1/authorizations",
            json={"state": STATE, "callback_url": CALLBACK},
            headers=headers,
        )
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"
    response = await chsi_client.get("/api/v1/authorizations/x", headers={"Authorization": ""})
    assert response.status_code == 401


async def test_healthz_and_page_need_no_secret(chsi_client: httpx.AsyncClient) -> None:
    response = await chsi_client.get("/healthz", headers={"Authorization": ""})
    assert response.json() == {"status": "ok"}


async def test_create_returns_ticket_and_qr_content(chsi_client: httpx.AsyncClient) -> None:
    created = await _create(chsi_client)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", created["ticket"])
    assert created["qr_content"] == f"http://127.0.0.1:8201/app/approve/{created['ticket']}"
    assert created["expires_at"] == "2026-05-20T02:05:00Z"


async def test_invalid_create_body_uses_error_shape(chsi_client: httpx.AsyncClient) -> None:
    response = await chsi_client.post(
        "/api/v1/authorizations", json={"state": STATE, "callback_url": "ftp://x"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    response = await chsi_client.post("/api/v1/authorizations", json={"state": STATE})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_unknown_ticket_is_404(chsi_client: httpx.AsyncClient) -> None:
    response = await chsi_client.get("/api/v1/authorizations/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    page = await chsi_client.get("/app/approve/nope")
    assert page.status_code == 404
    assert "授权请求不存在" in page.text


async def test_approve_flow_returns_only_chosen_records(
    chsi_client: httpx.AsyncClient, chsi_app: Any, callbacks: Any
) -> None:
    created = await _create(chsi_client)
    ticket = created["ticket"]
    polled = (await chsi_client.get(f"/api/v1/authorizations/{ticket}")).json()
    assert polled["status"] == "pending"
    assert polled["records"] == []
    assert polled["decided_at"] is None

    page = await chsi_client.get(_page_path(created))
    assert page.status_code == 200
    assert "身份证号" in page.text
    assert "<script" not in page.text
    assert "style=" not in page.text
    assert "<style" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]

    session = await _sign_in(chsi_client, _page_path(created))
    approved = await chsi_client.post(
        _page_path(created),
        data={"action": "approve", "session": session, "record_id": ["chsi-rec-0001"]},
    )
    assert approved.status_code == 200
    assert "授权成功" in approved.text

    polled = (await chsi_client.get(f"/api/v1/authorizations/{ticket}")).json()
    assert polled["status"] == "approved"
    assert polled["decided_at"] == "2026-05-20T02:00:00Z"
    assert [r["record_id"] for r in polled["records"]] == ["chsi-rec-0001"]
    record = polled["records"][0]
    assert record["id_number"] == ZHANG["id_number"]
    assert any(c["code"] == "00242" and c["name"] == "民法学" for c in record["transcript"])

    await chsi_app.state.sandbox.drain()
    assert len(callbacks.requests) == 1
    request = callbacks.requests[0]
    assert str(request.url) == CALLBACK
    body = request.content
    assert json.loads(body) == {
        "ticket": ticket,
        "state": STATE,
        "status": "approved",
        "decided_at": "2026-05-20T02:00:00Z",
    }
    assert b"14010" not in body
    t, v1 = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", request.headers["x-chsi-signature"]).groups()
    expected = hmac.new(b"chsi-sandbox-secret", f"{t}.".encode() + body, hashlib.sha256)
    assert hmac.compare_digest(v1, expected.hexdigest())


async def test_approve_both_records(chsi_client: httpx.AsyncClient) -> None:
    created = await _create(chsi_client)
    session = await _sign_in(chsi_client, _page_path(created))
    await chsi_client.post(
        _page_path(created),
        data={
            "action": "approve",
            "session": session,
            "record_id": ["chsi-rec-0002", "chsi-rec-0001"],
        },
    )
    polled = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    assert [r["record_id"] for r in polled["records"]] == ["chsi-rec-0001", "chsi-rec-0002"]


async def test_deny(chsi_client: httpx.AsyncClient, chsi_app: Any, callbacks: Any) -> None:
    created = await _create(chsi_client)
    session = await _sign_in(chsi_client, _page_path(created))
    denied = await chsi_client.post(
        _page_path(created), data={"action": "deny", "session": session}
    )
    assert denied.status_code == 200
    assert "已拒绝授权" in denied.text
    polled = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    assert polled["status"] == "denied"
    assert polled["records"] == []
    await chsi_app.state.sandbox.drain()
    assert json.loads(callbacks.requests[0].content)["status"] == "denied"


async def test_wrong_password_and_unknown_person(chsi_client: httpx.AsyncClient) -> None:
    created = await _create(chsi_client)
    for creds in (
        {"id_number": ZHANG["id_number"], "password": "wrong"},
        {"id_number": "110101199001010011", "password": "sandbox-zhang"},
    ):
        response = await chsi_client.post(_page_path(created), data={"action": "login", **creds})
        assert response.status_code == 401
        assert "身份证号或密码错误" in response.text
        assert creds["id_number"] not in response.text


async def test_approve_needs_session_and_a_record(chsi_client: httpx.AsyncClient) -> None:
    created = await _create(chsi_client)
    path = _page_path(created)
    no_session = await chsi_client.post(
        path, data={"action": "approve", "record_id": ["chsi-rec-0001"]}
    )
    assert no_session.status_code == 403
    session = await _sign_in(chsi_client, path)
    nothing = await chsi_client.post(path, data={"action": "approve", "session": session})
    assert nothing.status_code == 400
    assert "请至少勾选一条学历信息" in nothing.text
    foreign = await chsi_client.post(
        path, data={"action": "approve", "session": session, "record_id": ["chsi-rec-0003"]}
    )
    assert foreign.status_code == 400
    polled = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    assert polled["status"] == "pending"


async def test_expiry_with_injected_clock(chsi_client: httpx.AsyncClient, clock: Any) -> None:
    created = await _create(chsi_client)
    path = _page_path(created)
    session = await _sign_in(chsi_client, path)
    clock.advance(timedelta(minutes=5))
    polled = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    assert polled["status"] == "expired"
    page = await chsi_client.get(path)
    assert page.status_code == 410
    assert "二维码已过期" in page.text
    refused = await chsi_client.post(
        path, data={"action": "approve", "session": session, "record_id": ["chsi-rec-0001"]}
    )
    assert refused.status_code == 410
    login = await chsi_client.post(path, data={"action": "login", **ZHANG})
    assert login.status_code == 410
    polled = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    assert polled["status"] == "expired"
    assert polled["records"] == []
    assert polled["decided_at"] is None


async def test_double_approval_changes_nothing(
    chsi_client: httpx.AsyncClient, chsi_app: Any, callbacks: Any, clock: Any
) -> None:
    created = await _create(chsi_client)
    path = _page_path(created)
    session = await _sign_in(chsi_client, path)
    first = await chsi_client.post(
        path, data={"action": "approve", "session": session, "record_id": ["chsi-rec-0001"]}
    )
    assert first.status_code == 200
    before = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    clock.advance(timedelta(seconds=30))
    again = await chsi_client.post(
        path, data={"action": "approve", "session": session, "record_id": ["chsi-rec-0002"]}
    )
    assert again.status_code == 409
    assert "该授权已处理" in again.text
    deny = await chsi_client.post(path, data={"action": "deny", "session": session})
    assert deny.status_code == 409
    relogin = await chsi_client.post(path, data={"action": "login", **ZHANG})
    assert relogin.status_code == 409
    page = await chsi_client.get(path)
    assert page.status_code == 409
    after = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    assert after == before
    await chsi_app.state.sandbox.drain()
    assert len(callbacks.requests) == 1


async def test_callback_retried_on_500(
    chsi_client: httpx.AsyncClient, chsi_app: Any, callbacks: Any
) -> None:
    callbacks.statuses.extend([500, 503])
    created = await _create(chsi_client)
    session = await _sign_in(chsi_client, _page_path(created))
    await chsi_client.post(_page_path(created), data={"action": "deny", "session": session})
    await chsi_app.state.sandbox.drain()
    assert len(callbacks.requests) == 3
    assert len({r.content for r in callbacks.requests}) == 1


async def test_callback_gives_up_after_three_retries(
    chsi_client: httpx.AsyncClient, chsi_app: Any, callbacks: Any
) -> None:
    callbacks.statuses.extend([500] * 10)
    created = await _create(chsi_client)
    session = await _sign_in(chsi_client, _page_path(created))
    await chsi_client.post(_page_path(created), data={"action": "deny", "session": session})
    await chsi_app.state.sandbox.drain()
    assert len(callbacks.requests) == 4


async def test_former_name_record(chsi_client: httpx.AsyncClient) -> None:
    created = await _create(chsi_client)
    session = await _sign_in(
        chsi_client,
        _page_path(created),
        {"id_number": "14010919870611502X", "password": "sandbox-zhao"},
    )
    await chsi_client.post(
        _page_path(created),
        data={"action": "approve", "session": session, "record_id": ["chsi-rec-0006"]},
    )
    polled = (await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")).json()
    assert polled["records"][0]["name"] == "赵小敏"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("A7K3Q9X2M5T8B4RZ", 200, None),
        ("202405318812", 200, None),
        ("H2N6P4W8C1D5F7JQ", 410, "expired"),
        ("ZZZZZZZZZZZZZZZZ", 404, "not_found"),
        ("000000000000", 404, "not_found"),
    ],
)
async def test_verification_codes(
    chsi_client: httpx.AsyncClient, code: str, status: int, error: str | None
) -> None:
    response = await chsi_client.post("/api/v1/verification-codes/lookup", json={"code": code})
    assert response.status_code == status
    body = response.json()
    if error:
        assert body["error"] == error
    else:
        assert body["code"] == code
        assert body["valid_until"] > "2026-05-20"
        assert body["record"]["record_id"].startswith("chsi-rec-")


async def test_reset_forgets_authorisations(chsi_client: httpx.AsyncClient) -> None:
    created = await _create(chsi_client)
    reset = await chsi_client.post("/_sandbox/reset")
    assert reset.status_code == 200
    response = await chsi_client.get(f"/api/v1/authorizations/{created['ticket']}")
    assert response.status_code == 404
    lookup = await chsi_client.post(
        "/api/v1/verification-codes/lookup", json={"code": "A7K3Q9X2M5T8B4RZ"}
    )
    assert lookup.status_code == 200


async def test_stylesheet_served(chsi_client: httpx.AsyncClient) -> None:
    response = await chsi_client.get("/app/static/approve.css")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")


class _GatedTransport(httpx.AsyncBaseTransport):
    """A callback receiver that answers only once the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await self.gate.wait()
        self.requests.append(request)
        return httpx.Response(204)


async def test_page_does_not_wait_for_the_callback() -> None:
    transport = _GatedTransport()
    app = chsi.create_app(callback_transport=transport, callback_backoff=(0.01, 0.01, 0.01))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:8201",
        headers={"Authorization": "Bearer chsi-sandbox-secret"},
    ) as client:
        created = await _create(client)
        session = await _sign_in(client, _page_path(created))
        page = await asyncio.wait_for(
            client.post(_page_path(created), data={"action": "deny", "session": session}), 2
        )
        assert page.status_code == 200
        assert transport.requests == []
        transport.gate.set()
        await asyncio.wait_for(app.state.sandbox.drain(), 2)
    assert len(transport.requests) == 1
