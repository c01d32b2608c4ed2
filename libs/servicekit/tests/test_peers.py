"""PeerClient: a service's client of another service's API, with refusals and unavailability."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from eventkit.logs import correlation_id
from servicekit.errors import AppError
from servicekit.peers import (
    PeerClient,
    PeerFieldError,
    PeerRefused,
    PeerUnavailable,
    field_errors_of,
    retry_after_of,
)

pytestmark = pytest.mark.unit

TOKEN = "eyJhbGciOiJFZERTQSJ9.secret-token.sig"


class Thing(PeerClient):
    peer = "thing"
    unavailable_message = "某服务暂时不可用"


def client_of(
    respond: Callable[[httpx.Request], httpx.Response], seen: list[httpx.Request]
) -> Thing:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return respond(request)

    return Thing("http://thing/", transport=httpx.MockTransport(handler), timeout=1.0)


def answer(status: int, body: Any = None, **headers: str) -> Callable[..., httpx.Response]:
    def respond(_: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return respond


async def test_a_call_sends_the_token_accept_and_request_id() -> None:
    seen: list[httpx.Request] = []
    client = client_of(answer(200, {"ok": True}), seen)
    reset = correlation_id.set("req-123")
    try:
        response = await client._call("POST", "/x", json={"a": 1}, token=TOKEN)
    finally:
        correlation_id.reset(reset)
    assert client._json(response) == {"ok": True}
    request = seen[0]
    assert str(request.url) == "http://thing/x"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept"] == "application/json"
    assert request.headers["x-request-id"] == "req-123"
    await client.aclose()


async def test_without_token_or_request_id_no_such_headers() -> None:
    seen: list[httpx.Request] = []
    client = client_of(answer(204), seen)
    await client._call("DELETE", "/x")
    assert "authorization" not in seen[0].headers
    assert "x-request-id" not in seen[0].headers
    await client.aclose()


async def test_a_refusal_keeps_code_message_fields_and_retry_after() -> None:
    body = {
        "error": {
            "code": "request.invalid",
            "message": "提交的信息有误，请检查后重试",
            "fields": [
                {"field": "mobile", "code": "string_too_short", "message": "长度不能少于 1 个字符"},
                {"field": "x", "code": 5},  # malformed: skipped
            ],
            "request_id": "r",
        }
    }
    client = client_of(answer(422, body, **{"Retry-After": "7"}), [])
    with pytest.raises(PeerRefused) as caught:
        await client._call("POST", "/x")
    refused = caught.value
    assert (refused.status, refused.code, refused.message, refused.retry_after) == (
        422,
        "request.invalid",
        "提交的信息有误，请检查后重试",
        7,
    )
    assert refused.fields == (
        PeerFieldError("mobile", "string_too_short", "长度不能少于 1 个字符"),
    )
    await client.aclose()


def test_a_single_field_becomes_a_field_error() -> None:
    error = {"code": "x.bad", "message": "不对", "field": "email"}
    assert field_errors_of(error) == [PeerFieldError("email", "x.bad", "不对")]
    assert field_errors_of({"code": "x", "message": "y"}) == []


@pytest.mark.parametrize(
    ("value", "expected"), [("30", 30), (" 5 ", 5), ("soon", None), ("-1", None), (None, None)]
)
def test_retry_after_of(value: str | None, expected: int | None) -> None:
    headers = {"Retry-After": value} if value is not None else {}
    assert retry_after_of(httpx.Response(503, headers=headers)) == expected


@pytest.mark.parametrize(
    "respond",
    [
        answer(500, {"error": {"code": "internal", "message": "系统繁忙"}}),
        answer(502, b"bad gateway"),
        answer(404, b"<html>not found</html>"),
        answer(400, {"detail": "no envelope"}),
        answer(400, {"error": "just a string"}),
        answer(400, {"error": {"code": 5, "message": "x"}}),
    ],
)
async def test_server_errors_and_nonsense_are_unavailable(respond: Any) -> None:
    client = client_of(respond, [])
    with pytest.raises(PeerUnavailable) as caught:
        await client._call("GET", "/x")
    error = caught.value
    assert isinstance(error, AppError)
    assert (error.status, error.code, error.message) == (
        503,
        "web.thing_unavailable",
        "某服务暂时不可用",
    )
    assert error.headers == {"Retry-After": "10"}
    await client.aclose()


async def test_a_503_keeps_the_peers_code_message_and_retry_after() -> None:
    body = {"error": {"code": "thing.busy", "message": "当前上传人数较多，请稍后再试"}}
    client = client_of(answer(503, body, **{"Retry-After": "5"}), [])
    with pytest.raises(PeerUnavailable) as caught:
        await client._call("POST", "/x")
    error = caught.value
    assert (error.code, error.peer_code, error.retry_after) == (
        "web.thing_unavailable",
        "thing.busy",
        5,
    )
    assert error.message == "当前上传人数较多，请稍后再试"
    assert error.headers == {"Retry-After": "5"}
    await client.aclose()


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError]
)
async def test_an_unreachable_peer_is_unavailable_and_the_token_is_not_logged(
    failure: type[httpx.TransportError], caplog: pytest.LogCaptureFixture
) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise failure("down", request=request)

    client = Thing("http://thing", transport=httpx.MockTransport(boom))
    with caplog.at_level(logging.DEBUG), pytest.raises(PeerUnavailable) as caught:
        await client._call("GET", "/x", token=TOKEN, json={"id_number": "140105199003152018"})
    assert isinstance(caught.value.__cause__, failure)
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "peer unreachable" in logged
    assert TOKEN not in logged and "140105199003152018" not in logged
    await client.aclose()


async def test_not_json_and_not_an_object_are_unavailable() -> None:
    client = client_of(answer(200, b"<html>"), [])
    with pytest.raises(PeerUnavailable):
        client._json(await client._call("GET", "/x"))
    listed = client_of(answer(200, [1, 2]), [])
    with pytest.raises(PeerUnavailable):
        listed._json(await listed._call("GET", "/x"))
    await client.aclose()
    await listed.aclose()


async def test_a_per_call_timeout_is_used() -> None:
    seen: list[httpx.Request] = []
    client = client_of(answer(200, {}), seen)
    await client._call("POST", "/upload", timeout=30.0)
    await client._call("GET", "/x")
    assert seen[0].extensions["timeout"]["read"] == 30.0
    assert seen[1].extensions["timeout"]["read"] == 1.0
    await client.aclose()
